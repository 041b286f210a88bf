"""Tests for gr_core.render: the standalone HTML page of an explanation graph."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gr_core.categories import CATEGORIES
from gr_core.colours import CATEGORY_COLOURS, ROLE_COLOURS
from gr_core.config import DEFAULT
from gr_core.explain import Explainer
from gr_core.explanation import Explanation, ExplanationRow
from gr_core.graph import PREDICTION_KEY, explanation_graph
from gr_core.render import graph_html
from gr_core.runs import load_run_with_dataset, save_run
from gr_core.training import train
from tests.browser import CHROMIUM, CHROMIUM_ARGS

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(2)</script>"
QUOTES = "a\"b'c\\d"
HOSTILE_RELATION = "<b>rel</b> & </script>"


def embedded(html, name):
    """Return the list a page hands to ``new vis.DataSet(...)`` for ``nodes`` or ``edges``."""
    opening = f"var {name} = new vis.DataSet("
    start = html.index(opening) + len(opening)
    return json.loads(html[start : html.index(");\n", start)])


class LegendParser(HTMLParser):
    """Collect (kind, colour, text) of every legend row of a page."""

    def __init__(self):
        super().__init__()
        self.rows, self.current = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("class") == "legend-row":
            self.current = [attrs["data-kind"], attrs["data-colour"], ""]

    def handle_data(self, data):
        if self.current is not None:
            self.current[2] += data

    def handle_endtag(self, tag):
        if tag == "div" and self.current is not None:
            self.rows.append((self.current[0], self.current[1], self.current[2].strip()))
            self.current = None


def legend_rows(html):
    parser = LegendParser()
    parser.feed(html)
    return parser.rows


class ScriptCounter(HTMLParser):
    """Count the script elements a browser's tokenizer would see."""

    def __init__(self):
        super().__init__()
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"


def script_blocks(html):
    counter = ScriptCounter()
    counter.feed(html)
    return counter.scripts


@pytest.fixture(scope="module")
def nations_graph(nations, tmp_path_factory):
    """The graph explaining Nations' (usa, embassy, ?), from a default run trained once."""
    result = train(nations, DEFAULT)
    path = save_run(tmp_path_factory.mktemp("render") / "run", nations, DEFAULT, result)
    explainer = Explainer(*load_run_with_dataset(path))
    return explanation_graph(explainer.explain("usa", "embassy", k=10))


@pytest.fixture(scope="module")
def nations_html(nations_graph):
    return graph_html(nations_graph)


def hostile_explanation():
    """Explain (IMG, HOSTILE_RELATION, SCRIPT) with two parallel triples and a third entity."""
    names = {0: IMG, 1: SCRIPT, 2: QUOTES}

    def row(rank, head, tail, category, influence):
        return ExplanationRow(
            rank=rank,
            triple_index=100 + rank,
            head=head,
            relation=0,
            tail=tail,
            head_name=names[head],
            relation_name=HOSTILE_RELATION,
            tail_name=names[tail],
            influence=influence,
            probability_after=0.25,
            category=category,
        )

    rows = [
        row(1, 0, 1, "head-tail link", 0.4),
        row(2, 2, 1, "shared tail", 0.2),
        row(3, 0, 2, "shared head", 0.1),
    ]
    return Explanation(
        method="GR-3",
        head=0,
        relation=0,
        tail=1,
        head_name=IMG,
        relation_name=HOSTILE_RELATION,
        tail_name=SCRIPT,
        probability=0.5,
        num_neighbours=3,
        rows=rows,
    )


def test_one_node_per_entity_with_name_and_role_colour(nations_graph, nations_html):
    nodes = {node["id"]: node for node in embedded(nations_html, "nodes")}

    assert set(nodes) == set(nations_graph.nodes)
    for entity, attributes in nations_graph.nodes(data=True):
        assert nodes[entity]["label"] == attributes["name"]
        assert nodes[entity]["color"]["background"] == ROLE_COLOURS[attributes["role"]]
        assert attributes["name"] in nodes[entity]["title"]


def test_head_and_tail_are_larger_than_the_rest(nations_graph, nations_html):
    sizes = {node["id"]: node["size"] for node in embedded(nations_html, "nodes")}
    head, _, tail = nations_graph.graph["query"]

    others = [sizes[e] for e in nations_graph.nodes if e not in (head, tail)]
    assert min(sizes[head], sizes[tail]) > max(others)


def test_one_edge_per_graph_edge_with_category_colour(nations_graph, nations_html):
    edges = embedded(nations_html, "edges")
    graph_edges = list(nations_graph.edges(keys=True, data=True))

    assert len(edges) == len(graph_edges) == nations_graph.number_of_edges()
    for edge, (head, tail, _, attributes) in zip(edges, graph_edges, strict=True):
        assert (edge["from"], edge["to"]) == (head, tail)
        assert edge["color"]["color"] == CATEGORY_COLOURS[attributes["category"]]
        assert edge["label"].startswith(attributes["relation_name"])


def test_predicted_edge_is_dashed_and_rows_are_not(nations_graph, nations_html):
    edges = embedded(nations_html, "edges")
    keys = [key for _, _, key in nations_graph.edges(keys=True)]
    predicted = edges[keys.index(PREDICTION_KEY)]

    assert predicted["dashes"] is True
    assert predicted["label"] == "embassy (predicted)"
    assert f"{nations_graph.graph['probability']:.4f}" in predicted["title"]
    assert [edge["dashes"] for edge in edges].count(True) == 1


def test_row_tooltip_names_rank_category_and_numbers(nations_graph, nations_html):
    edges = embedded(nations_html, "edges")
    for edge, (_, _, attributes) in zip(edges, nations_graph.edges(data=True), strict=True):
        if attributes["predicted"]:
            continue
        assert edge["title"].startswith(f"#{attributes['rank']} ")
        assert f"category: {attributes['category']}" in edge["title"]
        assert f"influence: {attributes['influence']:.4g}" in edge["title"]
        assert f"removal: {attributes['probability_after']:.4f}" in edge["title"]


def test_widths_grow_with_influence(nations_graph, nations_html):
    edges = embedded(nations_html, "edges")
    pairs = sorted(
        (attributes["influence"], edge["width"])
        for edge, (_, _, attributes) in zip(edges, nations_graph.edges(data=True), strict=True)
        if not attributes["predicted"]
    )
    widths = [width for _, width in pairs]

    assert widths == sorted(widths)
    assert widths[-1] == pytest.approx(8.0)
    assert widths[0] >= 1.0


def test_widths_spread_from_one_pixel_on_a_hand_built_graph():
    edges = embedded(graph_html(explanation_graph(hostile_explanation())), "edges")
    widths = {edge["title"][:2]: edge["width"] for edge in edges if not edge["dashes"]}

    # influences 0.4, 0.2 and 0.1 of a top 0.4: 1 + 7 * share
    assert widths == pytest.approx({"#1": 8.0, "#2": 4.5, "#3": 2.75})


def test_legend_lists_present_categories_with_scheme_colours(nations_graph, nations_html):
    rows = legend_rows(nations_html)
    present = {attributes["category"] for _, _, attributes in nations_graph.edges(data=True)}

    edge_rows = [(colour, text) for kind, colour, text in rows if kind == "edge"]
    expected = [(CATEGORY_COLOURS[c], c) for c in CATEGORIES if c in present]
    expected.append((CATEGORY_COLOURS["prediction"], "predicted link (dashed)"))
    assert edge_rows == expected
    assert len(expected) >= 4  # the query has a path, a shared head and more

    roles = {attributes["role"] for _, attributes in nations_graph.nodes(data=True)}
    node_rows = [(colour, text) for kind, colour, text in rows if kind == "node"]
    assert node_rows == [(ROLE_COLOURS[r], r) for r in ROLE_COLOURS if r in roles]


def test_page_references_no_remote_resource(nations_html):
    assert not re.search(r"<script[^>]*\ssrc\s*=", nations_html, re.IGNORECASE)
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']?(https?:)?//", nations_html, re.IGNORECASE)
    assert not re.search(r"""\s(src|href)\s*=\s*["']?(https?:)?//""", nations_html)
    assert "vis.Network" in nations_html and "bootstrap" not in nations_html


def test_hostile_names_stay_escaped_and_parse_back():
    graph = explanation_graph(hostile_explanation())
    html = graph_html(graph)

    for raw in (IMG, SCRIPT, "</script><script>alert(2)", "<b>rel</b>", HOSTILE_RELATION):
        assert raw not in html
    assert script_blocks(html) == 2  # vis-network's and ours: no name broke out

    labels = {node["id"]: node["label"] for node in embedded(html, "nodes")}
    assert labels == {0: IMG, 1: SCRIPT, 2: QUOTES}
    edge_labels = [edge["label"] for edge in embedded(html, "edges")]
    assert edge_labels.count(HOSTILE_RELATION) == 3
    assert f"{HOSTILE_RELATION} (predicted)" in edge_labels
    assert "&lt;b&gt;rel&lt;/b&gt; &amp; &lt;/script&gt;" in html  # the legend caption


def test_parallel_edges_bend_apart():
    graph = explanation_graph(hostile_explanation())
    edges = embedded(graph_html(graph), "edges")
    between = [edge for edge in edges if {edge["from"], edge["to"]} == {0, 1}]

    # the head-tail triple and the predicted link both join entities 0 and 1
    assert len(between) == 2
    bends = [(edge["smooth"]["type"], edge["smooth"]["roundness"]) for edge in between]
    assert bends[0] != bends[1]
    assert all(edge["smooth"]["enabled"] for edge in between)


@pytest.fixture(scope="module")
def browser():
    """A headless chromium; the test using it is skipped where Debian's chromium is missing."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class OpenedPage:
    """A page loaded from disk that records dialogs and every request it makes."""

    def __init__(self, browser, html, path):
        path.write_text(html, encoding="utf-8")
        self.dialogs, self.requests = [], []
        self.page = browser.new_page(viewport={"width": 1000, "height": 620})
        self.page.on("dialog", self.record_dialog)
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(path.as_uri())
        settled = "document.body.getAttribute('data-settled') === 'true'"
        self.page.wait_for_function(settled, timeout=20_000)

    def record_dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def labels(self):
        return self.page.evaluate("network.body.data.nodes.get().map(node => node.label)")

    def remote_requests(self):
        return [url for url in self.requests if not url.startswith("file:")]

    def tooltip_of(self, entity):
        """Hover an entity and return the text of the tooltip vis-network shows."""
        point = self.page.evaluate(
            """(id) => {
                const dom = network.canvasToDOM(network.getPositions([id])[id]);
                const box = document.getElementById("mynetwork").getBoundingClientRect();
                return {x: box.left + dom.x, y: box.top + dom.y};
            }""",
            entity,
        )
        self.page.mouse.move(point["x"], point["y"])
        tooltip = self.page.locator("div.vis-tooltip")
        tooltip.wait_for(state="visible", timeout=5_000)
        return tooltip.inner_text()

    def screenshot(self, name):
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_nations_page_draws_in_a_real_browser(browser, nations_graph, nations_html, tmp_path):
    opened = OpenedPage(browser, nations_html, tmp_path / "graph.html")
    names = [attributes["name"] for _, attributes in nations_graph.nodes(data=True)]

    assert sorted(opened.labels()) == sorted(names)
    assert opened.remote_requests() == []
    assert opened.dialogs == []
    opened.screenshot("graph")  # look at it: test-artifacts/graph.png


def test_hostile_page_shows_names_as_text_in_a_real_browser(browser, tmp_path):
    html = graph_html(explanation_graph(hostile_explanation()), height=420)
    opened = OpenedPage(browser, html, tmp_path / "hostile.html")

    assert sorted(opened.labels()) == sorted([IMG, SCRIPT, QUOTES])
    assert opened.tooltip_of(0) == f"{IMG}\nhead of the query"
    legend = opened.page.locator("#legend .legend-caption").inner_text()
    assert legend == f"{IMG} —{HOSTILE_RELATION}→ {SCRIPT}"

    opened.page.wait_for_timeout(300)  # give an injected handler time to fire
    assert opened.page.locator("img").count() == 0
    assert opened.dialogs == [] and opened.remote_requests() == []
    opened.screenshot("hostile")

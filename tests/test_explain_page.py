"""The Explain page driven through app.py with AppTest.

One Nations run (the default preset) is trained once for the module; each test
opens the page with a link (query parameters) and compares what the page shows
with what ``Explainer`` computes on its own for the same query.
"""

import json
import re
from functools import partial

import pytest
from streamlit.testing.v1 import AppTest

from gr_core import PRESETS, Explainer, load_dataset, load_run_with_dataset
from tests.pages import (
    HOSTILE,
    SHORT,
    open_page,
    save_trained,
    use_runs_folder,
    write_hostile_graph,
)

RUN = "nations-distmult"
VIS_DATA = re.compile(r"var (nodes|edges) = new vis\.DataSet\((.*?)\);\n")


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory, nations):
    """A runs folder holding one Nations run trained with the default preset."""
    root = tmp_path_factory.mktemp("explain") / "runs"
    save_trained(root / RUN, nations, PRESETS["default"])
    return root


@pytest.fixture(scope="module")
def explainer(runs_folder):
    return Explainer(*load_run_with_dataset(runs_folder / RUN))


@pytest.fixture
def runs_root(runs_folder, monkeypatch):
    return use_runs_folder(runs_folder, monkeypatch)


open_explain = partial(open_page, "explain")


def table_with(app: AppTest, column: str):
    """Return the one table on the page that has ``column``."""
    (table,) = [frame.value for frame in app.dataframe if column in frame.value.columns]
    return table


def shown_rows(app: AppTest) -> list[tuple]:
    """Return the explanation table as (rank, head, relation, tail, category) tuples."""
    table = table_with(app, "influence")
    columns = ["rank", "head", "relation", "tail", "category"]
    return [tuple(row) for row in table[columns].itertuples(index=False)]


def expected_rows(explanation) -> list[tuple]:
    return [
        (row.rank, row.head_name, row.relation_name, row.tail_name, row.category)
        for row in explanation.rows
    ]


def graph_page(app: AppTest) -> str:
    """Return the HTML of the page's graph iframe."""
    (frame,) = app.get("iframe")
    return frame.proto.srcdoc


def vis_data(html: str) -> dict[str, list[dict]]:
    """Return the nodes and edges the graph page hands to vis-network."""
    return {name: json.loads(data) for name, data in VIS_DATA.findall(html)}


def test_link_shows_the_explanation_that_explainer_computes(runs_root, explainer):
    app = open_explain(run=RUN, head="usa", relation="embassy", method="gr", k=5)

    expected = explainer.explain("usa", "embassy", method="gr", k=5)
    assert len(expected.rows) == 5
    assert shown_rows(app) == expected_rows(expected)
    table = table_with(app, "influence")
    influences = [row.influence for row in expected.rows]
    assert list(table["influence"]) == pytest.approx(influences, rel=1e-9)
    after = [row.probability_after for row in expected.rows]
    assert list(table["probability after removal"]) == pytest.approx(after, rel=1e-9)

    predictions = explainer.predict("usa", "embassy", k=10, filtered=True)
    shown = table_with(app, "probability")
    assert list(shown["tail"]) == [p.name for p in predictions]
    assert list(shown["probability"]) == pytest.approx([p.probability for p in predictions])
    assert app.selectbox(key="explain_tail").value == predictions[0].name == expected.tail_name


def test_graph_draws_the_explanation_entities_and_triples(runs_root, explainer):
    app = open_explain(run=RUN, head="usa", relation="embassy", method="gr", k=5)

    expected = explainer.explain("usa", "embassy", method="gr", k=5)
    data = vis_data(graph_page(app))
    labels = {node["id"]: node["label"] for node in data["nodes"]}
    entities = {(row.head, row.head_name) for row in expected.rows}
    entities |= {(row.tail, row.tail_name) for row in expected.rows}
    entities |= {(expected.head, "usa"), (expected.tail, expected.tail_name)}
    assert set(labels.items()) == entities

    edges = sorted((edge["from"], edge["to"], edge["label"]) for edge in data["edges"])
    triples = [(row.head, row.tail, row.relation_name) for row in expected.rows]
    predicted = (expected.head, expected.tail, "embassy (predicted)")
    assert edges == sorted([*triples, predicted])


def test_gr_o_explains_with_triples_that_end_in_the_predicted_tail(runs_root, explainer):
    app = open_explain(run=RUN, head="usa", relation="embassy", method="gr", k=5)
    gr_rows = shown_rows(app)
    tail = app.selectbox(key="explain_tail").value

    app.segmented_control(key="explain_method").set_value("gr-o").run()

    assert not app.exception
    assert app.query_params["method"] == "gr-o"
    rows = shown_rows(app)
    assert rows and rows != gr_rows
    assert {row[3] for row in rows} == {tail}
    assert rows == expected_rows(explainer.explain("usa", "embassy", tail, method="gr-o", k=5))


def test_link_restores_every_choice(runs_root, explainer):
    second = explainer.predict("china", "treaties", k=2)[1].name
    app = open_explain(
        run=RUN, head="china", relation="treaties", tail=second, method="first-order", k=3, top=4
    )

    assert not app.warning
    assert app.selectbox(key="explain_head").value == "china"
    assert app.selectbox(key="explain_relation").value == "treaties"
    assert app.selectbox(key="explain_tail").value == second
    assert app.segmented_control(key="explain_method").value == "first-order"
    assert app.number_input(key="explain_k").value == 3
    assert len(table_with(app, "probability")) == 4
    expected = explainer.explain("china", "treaties", second, method="first-order", k=3)
    assert shown_rows(app) == expected_rows(expected)


def test_choices_are_written_back_to_the_link(runs_root, explainer):
    app = open_explain(run=RUN, head="usa", relation="embassy")
    assert app.query_params["tail"] == explainer.predict("usa", "embassy", k=1)[0].name

    app.selectbox(key="explain_head").set_value("china").run()
    assert app.query_params["head"] == "china"
    # A new query starts at its own filtered top-1.
    assert app.query_params["tail"] == explainer.predict("china", "embassy", k=1)[0].name

    app.number_input(key="explain_k").set_value(4).run()
    app.segmented_control(key="explain_method").set_value("all-positive").run()
    assert app.query_params["k"] == "4"
    assert app.query_params["method"] == "all-positive"
    expected = explainer.explain("china", "embassy", method="all-positive")
    assert shown_rows(app) == expected_rows(expected)


def test_bad_link_values_fall_back_with_a_warning_that_does_not_echo_them(runs_root, explainer):
    app = open_explain(run=RUN, head="**nowhere**", relation="embassy", k="many", method="gr")

    assert len(app.warning) == 1
    assert "nowhere" not in app.warning[0].value
    first_test_head = explainer.entities[int(explainer.dataset.test[0, 0])]
    assert app.selectbox(key="explain_head").value == first_test_head
    assert app.query_params["head"] == first_test_head
    assert app.query_params["k"] == "10"


def test_verify_by_retraining_shows_six_checks(runs_root, explainer):
    app = open_explain(run=RUN, head="usa", relation="embassy")

    app.button(key="verify").click().run()

    assert not app.exception
    assert not app.error
    checks = table_with(app, "triples removed").set_index("set")
    assert list(checks.index) == ["GR-1", "GR-10", "GR-ALL", "NH-1", "NH-10", "NH-ALL"]
    gr_all = checks.loc["GR-ALL"]
    assert gr_all["probability after"] < gr_all["probability before"]
    assert gr_all["dropped"]


def test_downloads_offer_csv_json_and_the_graph(runs_root):
    app = open_explain(run=RUN, head="usa", relation="embassy", k=5)

    keys = [button.key for button in app.get("download_button")]
    assert keys == ["download_csv", "download_json", "download_html"]


@pytest.fixture
def small_graph(tmp_path, monkeypatch):
    """A run on five people, one of them named like an HTML tag, one with a readable label."""
    folder = write_hostile_graph(tmp_path / "hostile", entity_names="ann\tAnn Arbor\n")
    root = tmp_path / "runs"
    save_trained(root / "hostile", load_dataset(folder), PRESETS["default"].replace(epochs=5))
    return use_runs_folder(root, monkeypatch)


def test_hostile_names_are_shown_as_text_and_escaped_in_the_graph(small_graph):
    app = open_explain(run="hostile", head=HOSTILE, relation="likes")

    assert not app.error
    assert not app.warning
    assert app.selectbox(key="explain_head").value == HOSTILE
    html = graph_page(app)
    assert HOSTILE not in html
    labels = {node["label"] for node in vis_data(html)["nodes"]}
    assert HOSTILE in labels  # escaped in the page, the name itself once parsed
    assert HOSTILE in set(table_with(app, "influence")[["head", "tail"]].stack())


def test_readable_labels_are_shown_and_accepted_in_the_link(small_graph):
    app = open_explain(run="hostile", head="Ann Arbor", relation="knows")

    assert not app.warning
    assert app.selectbox(key="explain_head").value == "ann"
    assert app.query_params["head"] == "ann"
    shown = set(table_with(app, "influence")[["head", "tail"]].stack())
    assert "Ann Arbor" in shown
    assert "ann" not in shown


def test_run_without_a_ledger_shows_an_error(tmp_path, monkeypatch, nations):
    config = PRESETS["default"].replace(epochs=2, ledger="off")
    root = use_runs_folder(tmp_path / "runs", monkeypatch)
    save_trained(root / "no-ledger", nations, config)

    app = open_explain(run="no-ledger")

    assert len(app.error) == 1
    assert "ledger" in app.error[0].value
    assert not app.get("iframe")


def test_empty_runs_folder_points_to_the_runs_page(tmp_path, monkeypatch):
    use_runs_folder(tmp_path / "runs", monkeypatch)

    app = open_explain()

    assert not app.error
    assert "No runs yet" in app.info[0].value


def test_sidebar_names_the_run_and_its_data_set(runs_root):
    app = open_explain(run=RUN)

    assert app.sidebar.selectbox(key="selected_run").value == RUN
    assert any("nations" in caption.value for caption in app.sidebar.caption)


def test_criage_is_offered_for_sigmoid_runs_only(tmp_path, monkeypatch, nations, runs_root):
    # The softmax run: a link asking for CRIAGE falls back to GR with a warning.
    app = open_page("explain", run=RUN, head="usa", relation="embassy", method="criage")
    assert "criage" not in app.segmented_control(key="explain_method").options
    assert app.segmented_control(key="explain_method").value == "gr" and len(app.warning) == 1

    sigmoid = save_trained(tmp_path / "runs" / "sigmoid", nations, SHORT.replace(loss="bce"))
    use_runs_folder(sigmoid.parent, monkeypatch)
    app = open_page("explain", run="sigmoid", head="usa", relation="embassy", method="criage")
    assert not app.warning
    assert app.segmented_control(key="explain_method").value == "criage"
    explainer = Explainer(*load_run_with_dataset(sigmoid))
    expected = explainer.explain("usa", "embassy", method="criage", k=10)
    assert shown_rows(app) == expected_rows(expected)
    assert all(row[3] == expected.tail_name for row in shown_rows(app))

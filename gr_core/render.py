"""Draw an explanation graph as one standalone, interactive HTML page.

pyvis turns the networkx graph of :func:`gr_core.graph.explanation_graph` into the
nodes, edges and options of vis-network; the page around them is our own template,
so that it works offline and as a download:

* vis-network's script and style sheet are copied into the page from the files
  pyvis ships; the page references nothing remote (pyvis' own template links
  bootstrap from a CDN even in its ``in_line`` mode, which is why we do not use it).
* Names can hold any text. Labels are drawn on the canvas, and vis-network 9.1 puts a
  string tooltip into the page with ``innerText``, so both are plain text. The node
  and edge data reach the script as JSON written by Jinja's ``tojson``, which turns
  ``<``, ``>``, ``&`` and ``'`` into ``\\u`` escapes, so a name holding ``</script>``
  cannot end the script early and still parses back to itself. The legend and the
  title are HTML, escaped by Jinja's autoescape.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

import networkx as nx
import pyvis
from jinja2 import DictLoader, Environment
from markupsafe import Markup
from pyvis.network import Network

from gr_core import colours
from gr_core.categories import CATEGORIES, OTHER

VIS_FILES = Path(pyvis.__file__).parent / "templates" / "lib" / "vis-9.1.2"
PAGE_NAME = "explanation_graph.html"

FOCUS_ROLES = ("head", "tail", "head+tail")
NODE_SIZES = {"head": 26, "tail": 26, "head+tail": 26, "via": 18, "other": 12}
ROLE_WORDS = {
    "head": "head of the query",
    "tail": "predicted tail",
    "head+tail": "head of the query and predicted tail",
    "via": "middle of a two-hop path",
    "other": "other entity",
}
MAX_EXTRA_WIDTH = 7  # the most influential triple is drawn 1 + 7 pixels wide
CURVE_STEP = 0.35  # roundness between neighbouring parallel edges
FIT_MARGIN = 70  # pixels around the outermost nodes, room for their labels

OPTIONS = {
    "layout": {"randomSeed": 7},  # the same graph is laid out the same way every time
    "physics": {
        "enabled": True,
        "solver": "forceAtlas2Based",
        "forceAtlas2Based": {
            "gravitationalConstant": -160,
            "centralGravity": 0.012,
            "springLength": 210,
            "springConstant": 0.06,
            "damping": 0.5,
            "avoidOverlap": 0.8,
        },
        "stabilization": {"enabled": True, "iterations": 300, "fit": True},
    },
    "nodes": {"shape": "dot", "font": {"face": "sans-serif", "color": colours.TEXT_COLOUR}},
    "edges": {
        "arrows": {"to": {"enabled": True, "scaleFactor": 0.6}},
        "font": {
            "face": "sans-serif",
            "size": 12,
            "color": colours.TEXT_COLOUR,
            "strokeWidth": 4,
            "strokeColor": colours.BACKGROUND_COLOUR,
        },
        "selectionWidth": 2,
    },
    "interaction": {"hover": True, "tooltipDelay": 150},
}

# Our page around pyvis' data. Everything in {{ }} is escaped unless marked safe.
PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ caption }}</title>
<style>{{ vis_style }}</style>
<script>{{ vis_script }}</script>
<style>
  body { margin: 0; font-family: sans-serif; color: {{ palette.text }}; }
  #graph-frame { position: relative; width: {{ width }}; height: {{ height }}; }
  #mynetwork {
    width: 100%; height: 100%; box-sizing: border-box;
    background: {{ palette.background }}; border: 1px solid {{ palette.frame }};
  }
  #legend {
    position: absolute; top: 8px; left: 8px; padding: 6px 10px; font-size: 12px;
    background: rgba(255, 255, 255, 0.88); border: 1px solid {{ palette.frame }};
    border-radius: 4px; pointer-events: none; line-height: 1.5;
  }
  #legend .legend-caption {
    font-weight: bold; margin-bottom: 2px; max-width: 240px; overflow-wrap: anywhere;
  }
  #legend .legend-heading { color: {{ palette.quiet }}; margin-top: 4px; }
  #legend .swatch { display: inline-block; vertical-align: middle; margin-right: 6px; }
  #legend .line { width: 22px; height: 0; border-top-width: 3px; }
  #legend .dot { width: 10px; height: 10px; border-radius: 50%; margin: 0 12px 0 6px; }
</style>
</head>
<body>
<div id="graph-frame">
  <div id="mynetwork"></div>
  <div id="legend">
    <div class="legend-caption">{{ caption }}</div>
    <div class="legend-heading">triples (width: influence)</div>
    {%- for entry in legend.edges %}
    <div class="legend-row" data-kind="edge" data-colour="{{ entry.colour }}">
      <span class="swatch line"
        style="border-top-style: {{ entry.line }}; border-top-color: {{ entry.colour }}"></span>
      {{- entry.label -}}
    </div>
    {%- endfor %}
    <div class="legend-heading">entities</div>
    {%- for entry in legend.nodes %}
    <div class="legend-row" data-kind="node" data-colour="{{ entry.colour }}">
      <span class="swatch dot" style="background: {{ entry.colour }}"></span>
      {{- entry.label -}}
    </div>
    {%- endfor %}
  </div>
</div>
<script>
  var nodes = new vis.DataSet({{ nodes|tojson }});
  var edges = new vis.DataSet({{ edges|tojson }});
  var options = {{ options|safe }};
  var network = new vis.Network(
    document.getElementById("mynetwork"), {nodes: nodes, edges: edges}, options);

  // Fit the drawing into the room the legend leaves, never above 1:1 so that a small
  // graph keeps its natural size. Node positions miss the labels, hence the margin.
  function fitBesideLegend() {
    var frame = document.getElementById("mynetwork");
    var legend = document.getElementById("legend");
    var points = Object.values(network.getPositions());
    if (points.length === 0) { return; }
    var xs = points.map(function (point) { return point.x; });
    var ys = points.map(function (point) { return point.y; });
    var left = Math.min.apply(null, xs), right = Math.max.apply(null, xs);
    var top = Math.min.apply(null, ys), bottom = Math.max.apply(null, ys);
    var beside = legend.offsetLeft + legend.offsetWidth;
    if (frame.clientWidth - beside < frame.clientWidth / 2) { beside = 0; }
    var scale = Math.min(
      (frame.clientWidth - beside) / (right - left + 2 * {{ margin }}),
      frame.clientHeight / (bottom - top + 2 * {{ margin }}),
      1);
    network.moveTo({
      position: {x: (left + right) / 2, y: (top + bottom) / 2},
      scale: scale,
      offset: {x: beside / 2, y: 0},
    });
  }

  // Once the layout has settled, stop the simulation so the picture stands still.
  network.once("stabilizationIterationsDone", function () {
    network.setOptions({physics: {enabled: false}});
    fitBesideLegend();
    document.body.setAttribute("data-settled", "true");
  });
</script>
</body>
</html>
"""


def graph_html(graph: nx.MultiDiGraph, *, height: int = 560) -> str:
    """Return a standalone HTML page that draws an explanation graph with vis-network.

    ``graph`` is the output of :func:`gr_core.graph.explanation_graph`. Nodes are
    coloured by role, triples by category and drawn wider the more influence they
    have; the predicted link is dashed. The page needs no network access.
    """
    network = Network(
        height=f"{height}px",
        width="100%",
        directed=True,
        cdn_resources="in_line",
        select_menu=False,
        filter_menu=False,
    )

    for entity, attributes in graph.nodes(data=True):
        network.add_node(entity, **node_style(attributes))
        # pyvis shows the id in place of an empty label; keep the name as it is.
        network.get_node(entity)["label"] = attributes["name"]

    top_influence = max_influence(graph)
    shapes = edge_shapes(graph)
    for number, (head, tail, key, attributes) in enumerate(graph.edges(keys=True, data=True)):
        style = edge_style(graph, head, tail, attributes, top_influence)
        style.update(shapes[head, tail, key])
        network.add_edge(head, tail, id=f"edge-{number}", **style)

    # pyvis renders whatever template its environment holds; give it ours.
    network.options = OPTIONS
    network.templateEnv = page_environment(graph)
    network.path = PAGE_NAME
    return network.generate_html()


def node_style(attributes: dict) -> dict:
    """Return the vis-network fields of one entity: label, tooltip, colour and size."""
    role = attributes["role"]
    fill = colours.role_colour(role)
    focus = role in FOCUS_ROLES
    border = colours.FOCUS_BORDER_COLOUR if focus else colours.QUIET_BORDER_COLOUR
    return {
        "label": attributes["name"],
        "title": f"{attributes['name']}\n{ROLE_WORDS.get(role, role)}",
        "shape": "dot",
        "color": {
            "background": fill,
            "border": border,
            "highlight": {"background": fill, "border": colours.FOCUS_BORDER_COLOUR},
            "hover": {"background": fill, "border": colours.FOCUS_BORDER_COLOUR},
        },
        "size": NODE_SIZES.get(role, NODE_SIZES["other"]),
        "borderWidth": 3 if focus else 1,
        "mass": 2.5 if focus else 1,  # heavier nodes push the rest away from their labels
        "font": {
            "size": 18 if focus else 14,
            "strokeWidth": 0,
            "background": colours.LABEL_BACKING_COLOUR,  # hides edges running under it
        },
    }


def max_influence(graph: nx.MultiDiGraph) -> float:
    """Return the largest influence of a triple in the graph, 0 if none is positive."""
    influences = [
        attributes["influence"]
        for _, _, attributes in graph.edges(data=True)
        if not attributes.get("predicted")
    ]
    return max([0.0, *influences])


def edge_width(influence: float, top_influence: float) -> float:
    """Return the drawn width of a triple: 1 pixel plus its share of the top influence."""
    if top_influence <= 0:
        return 1.0
    return 1.0 + MAX_EXTRA_WIDTH * max(influence, 0.0) / top_influence


def edge_style(graph, head, tail, attributes: dict, top_influence: float) -> dict:
    """Return the vis-network fields of one triple or of the predicted link."""
    head_name, tail_name = graph.nodes[head]["name"], graph.nodes[tail]["name"]
    relation = attributes["relation_name"]
    triple = f"{head_name} —{relation}→ {tail_name}"

    if attributes.get("predicted"):
        colour = colours.CATEGORY_COLOURS[colours.PREDICTION]
        return {
            "label": f"{relation} (predicted)",
            "title": f"predicted: {triple}\nprobability: {attributes['probability']:.4f}",
            "color": {"color": colour, "highlight": colour, "hover": colour},
            "width": 2.0,
            "dashes": True,
        }

    colour = colours.category_colour(attributes["category"])
    tooltip = "\n".join(
        (
            f"#{attributes['rank']}  {triple}",
            f"category: {attributes['category']}",
            f"influence: {attributes['influence']:.4g}",
            f"probability after removal: {attributes['probability_after']:.4f}",
        )
    )
    return {
        "label": relation,
        "title": tooltip,
        "color": {"color": colour, "highlight": colour, "hover": colour},
        "width": edge_width(attributes["influence"], top_influence),
        "dashes": False,
    }


def edge_shapes(graph: nx.MultiDiGraph) -> dict[tuple, dict]:
    """Return the vis-network shape fields of every edge, keyed by (head, tail, key).

    Parallel edges between two entities (either direction) bend to alternate sides by
    growing amounts, so none hides another; a lone edge is straight. Self-loops of one
    entity get growing loop sizes instead.
    """
    bundles: dict[frozenset, list[tuple]] = defaultdict(list)
    for head, tail, key in graph.edges(keys=True):
        bundles[frozenset((head, tail))].append((head, tail, key))

    shapes: dict[tuple, dict] = {}
    for edges in bundles.values():
        first_head = edges[0][0]
        for position, (head, tail, key) in enumerate(edges):
            offset = (position - (len(edges) - 1) / 2) * CURVE_STEP
            if head == tail:
                loop = {"size": 16 + 10 * position, "angle": 0.8 * position}
                shapes[head, tail, key] = {"smooth": False, "selfReference": loop}
            elif offset == 0:
                shapes[head, tail, key] = {"smooth": False}
            else:
                # "Clockwise" is relative to the edge's direction: flip it for reversed edges.
                clockwise = (offset > 0) == (head == first_head)
                bend = "curvedCW" if clockwise else "curvedCCW"
                smooth = {"enabled": True, "type": bend, "roundness": round(abs(offset), 3)}
                shapes[head, tail, key] = {"smooth": smooth}
    return shapes


def legend_entries(graph: nx.MultiDiGraph) -> dict[str, list[dict]]:
    """Return the legend rows: categories and roles present in the graph, in fixed order."""
    categories = {attributes["category"] for _, _, attributes in graph.edges(data=True)}
    roles = {attributes["role"] for _, attributes in graph.nodes(data=True)}

    edge_rows = [
        {"label": category, "colour": colours.category_colour(category), "line": "solid"}
        for category in (*CATEGORIES, OTHER)
        if category in categories
    ]
    if colours.PREDICTION in categories:
        colour = colours.CATEGORY_COLOURS[colours.PREDICTION]
        edge_rows.append({"label": "predicted link (dashed)", "colour": colour, "line": "dashed"})

    node_rows = [
        {"label": role, "colour": colour}
        for role, colour in colours.ROLE_COLOURS.items()
        if role in roles
    ]
    return {"edges": edge_rows, "nodes": node_rows}


def caption(graph: nx.MultiDiGraph) -> str:
    """Return "head —relation→ tail" of the predicted link, or a plain title without one."""
    for head, tail, attributes in graph.edges(data=True):
        if attributes.get("predicted"):
            names = graph.nodes[head]["name"], graph.nodes[tail]["name"]
            return f"{names[0]} —{attributes['relation_name']}→ {names[1]}"
    return "explanation graph"


@functools.cache
def vis_library() -> tuple[Markup, Markup]:
    """Return vis-network's script and style sheet, as shipped with pyvis."""
    script = (VIS_FILES / "vis-network.min.js").read_text(encoding="utf-8")
    style = (VIS_FILES / "vis-network.css").read_text(encoding="utf-8")
    return Markup(script), Markup(style)


def page_environment(graph: nx.MultiDiGraph) -> Environment:
    """Return a Jinja environment holding our page template and this graph's legend."""
    environment = Environment(loader=DictLoader({PAGE_NAME: PAGE_TEMPLATE}), autoescape=True)
    script, style = vis_library()
    environment.globals.update(
        vis_script=script,
        vis_style=style,
        legend=legend_entries(graph),
        caption=caption(graph),
        margin=FIT_MARGIN,
        palette={
            "text": colours.TEXT_COLOUR,
            "background": colours.BACKGROUND_COLOUR,
            "frame": colours.FRAME_COLOUR,
            "quiet": colours.QUIET_BORDER_COLOUR,
        },
    )
    return environment

"""Tests for gr_core.graph: nodes, roles and edges of hand-built explanations."""

import networkx as nx

from gr_core.explanation import Explanation, ExplanationRow, Path
from gr_core.graph import explanation_graph

NAMES = {0: "alice", 1: "bob", 2: "carol", 3: "dave", 4: "erin", 5: "frank"}
RELATION_NAMES = {0: "knows", 1: "likes", 2: "mentors"}
HOSTILE = "<img src=x onerror=alert(1)>"


def row(rank, triple_index, head, relation, tail, category, via=None, names=NAMES):
    """Build an ExplanationRow with made-up influence numbers derived from the rank."""
    return ExplanationRow(
        rank=rank,
        triple_index=triple_index,
        head=head,
        relation=relation,
        tail=tail,
        head_name=names[head],
        relation_name=RELATION_NAMES[relation],
        tail_name=names[tail],
        influence=1.0 / rank,
        probability_after=0.5 + rank / 100,
        category=category,
        via=via,
    )


def explanation(rows, paths=(), head=0, relation=1, tail=5, names=NAMES):
    return Explanation(
        method="GR-10",
        head=head,
        relation=relation,
        tail=tail,
        head_name=names[head],
        relation_name=RELATION_NAMES[relation],
        tail_name=names[tail],
        probability=0.75,
        num_neighbours=42,
        rows=list(rows),
        paths=list(paths),
    )


def alice_likes_frank():
    """Explain (alice, likes, ?) -> frank with one of each category and a path via carol."""
    rows = [
        row(1, 10, 0, 0, 5, "head-tail link"),
        row(2, 11, 0, 0, 2, "two-hop path", via=2),
        row(3, 12, 2, 2, 5, "two-hop path", via=2),
        row(4, 13, 1, 0, 0, "shared head"),
        row(5, 14, 4, 0, 5, "shared tail"),
        row(6, 15, 3, 1, 4, "shared relation"),
        row(7, 16, 0, 1, 5, "head-tail link"),  # parallel to row 1, other relation
    ]
    paths = [Path(via=2, via_name="carol", head_side=(2,), tail_side=(3,))]
    return explanation(rows, paths)


def test_graph_attributes():
    graph = explanation_graph(alice_likes_frank())
    assert isinstance(graph, nx.MultiDiGraph)
    assert graph.graph == {"method": "GR-10", "probability": 0.75, "query": (0, 1, 5)}


def test_nodes_have_names_and_roles():
    graph = explanation_graph(alice_likes_frank())
    assert sorted(graph.nodes) == [0, 1, 2, 3, 4, 5]
    assert {node: data["name"] for node, data in graph.nodes(data=True)} == NAMES
    roles = {node: data["role"] for node, data in graph.nodes(data=True)}
    assert roles == {0: "head", 1: "other", 2: "via", 3: "other", 4: "other", 5: "tail"}


def test_one_edge_per_row_plus_the_prediction():
    source = alice_likes_frank()
    graph = explanation_graph(source)
    assert graph.number_of_edges() == len(source.rows) + 1

    for expected in source.rows:
        data = graph.edges[expected.head, expected.tail, expected.triple_index]
        assert data == {
            "relation": expected.relation,
            "relation_name": expected.relation_name,
            "influence": expected.influence,
            "probability_after": expected.probability_after,
            "category": expected.category,
            "rank": expected.rank,
            "predicted": False,
        }


def test_predicted_edge():
    graph = explanation_graph(alice_likes_frank())
    assert graph.edges[0, 5, "prediction"] == {
        "relation": 1,
        "relation_name": "likes",
        "probability": 0.75,
        "category": "prediction",
        "predicted": True,
    }
    predicted = [key for _, _, key, flag in graph.edges(keys=True, data="predicted") if flag]
    assert predicted == ["prediction"]


def test_parallel_edges_are_all_kept():
    graph = explanation_graph(alice_likes_frank())
    # Rows 1 and 7 and the prediction all run alice -> frank.
    assert set(graph[0][5]) == {10, 16, "prediction"}
    assert {graph.edges[0, 5, key]["relation_name"] for key in (10, 16)} == {"knows", "likes"}


def test_head_equal_to_tail_is_one_node():
    rows = [row(1, 3, 0, 0, 2, "head-tail link"), row(2, 4, 2, 2, 0, "head-tail link")]
    graph = explanation_graph(explanation(rows, head=0, tail=0))
    assert graph.nodes[0]["role"] == "head+tail"
    assert graph.nodes[2]["role"] == "other"
    assert graph.has_edge(0, 0, "prediction")
    assert graph.number_of_edges() == 3


def test_empty_explanation_still_shows_the_prediction():
    graph = explanation_graph(explanation([]))
    assert sorted(graph.nodes(data="role")) == [(0, "head"), (5, "tail")]
    assert list(graph.edges(keys=True)) == [(0, 5, "prediction")]


def test_hostile_names_are_stored_unchanged():
    names = {**NAMES, 3: HOSTILE, 5: HOSTILE + "&amp;"}
    rows = [row(1, 7, 3, 1, 4, "shared relation", names=names)]
    graph = explanation_graph(explanation(rows, names=names))
    assert graph.nodes[3]["name"] == HOSTILE
    assert graph.nodes[5]["name"] == HOSTILE + "&amp;"


def test_labels_replace_data_file_names_in_the_graph():
    row = ExplanationRow(1, 7, 0, 0, 1, "/m/01", "/r/x", "/m/02", 0.5, 0.1, "head-tail link")
    explanation = Explanation("gr", 0, 0, 1, "/m/01", "/r/x", "/m/02", 0.6, 3, [row])
    graph = explanation_graph(explanation, {"/m/01": "Paris", "/m/02": "France"}, {"/r/x": "in"})
    assert graph.nodes[0]["name"] == "Paris" and graph.nodes[1]["name"] == "France"
    assert {data["relation_name"] for *_, data in graph.edges(data=True)} == {"in"}
    plain = explanation_graph(explanation)
    assert plain.nodes[0]["name"] == "/m/01"

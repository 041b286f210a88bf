"""Turn an explanation into a networkx graph that a renderer can draw.

Nodes are entities, one edge per explanation triple (key = its ``triple_index``)
plus the predicted link (key ``"prediction"``). Names are stored as they are;
escaping them for HTML or JavaScript is the renderer's job.
"""

from __future__ import annotations

import networkx as nx

from gr_core.explanation import Explanation

PREDICTION_KEY = "prediction"
ROLES = ("head", "tail", "head+tail", "via", "other")


def entity_names(explanation: Explanation) -> dict[int, str]:
    """Map every entity id of the explanation to its name."""
    names: dict[int, str] = {}
    for row in explanation.rows:
        names[row.head] = row.head_name
        names[row.tail] = row.tail_name
    for path in explanation.paths:
        names[path.via] = path.via_name

    # The query's own names win if a row spells them differently.
    names[explanation.head] = explanation.head_name
    names[explanation.tail] = explanation.tail_name
    return names


def entity_role(explanation: Explanation, entity: int, vias: set[int]) -> str:
    """Return the role of one entity: head, tail, head+tail, via or other."""
    is_head = entity == explanation.head
    is_tail = entity == explanation.tail
    if is_head and is_tail:
        return "head+tail"
    if is_head:
        return "head"
    if is_tail:
        return "tail"
    return "via" if entity in vias else "other"


def explanation_graph(
    explanation: Explanation,
    entity_labels: dict[str, str] | None = None,
    relation_labels: dict[str, str] | None = None,
) -> nx.MultiDiGraph:
    """Build the graph of an explanation: its triples and the predicted link.

    Graph attributes: ``method``, ``probability`` and ``query`` (head, relation,
    tail ids). Node attributes: ``name`` and ``role``. Row edges carry
    ``relation``, ``relation_name``, ``influence``, ``probability_after``,
    ``category``, ``rank`` and ``predicted=False``. ``entity_labels`` and
    ``relation_labels`` map data-file names to what the graph shows (readable
    labels, such as FB15k-237's names for its MIDs); names they lack stay.
    """
    entity_labels, relation_labels = entity_labels or {}, relation_labels or {}
    graph = nx.MultiDiGraph(
        method=explanation.method,
        probability=explanation.probability,
        query=(explanation.head, explanation.relation, explanation.tail),
    )

    # Nodes: every entity named by the query, a row or a path.
    vias = {path.via for path in explanation.paths}
    vias.update(row.via for row in explanation.rows if row.via is not None)
    for entity, name in entity_names(explanation).items():
        role = entity_role(explanation, entity, vias)
        graph.add_node(entity, name=entity_labels.get(name, name), role=role)

    for row in explanation.rows:
        graph.add_edge(
            row.head,
            row.tail,
            key=row.triple_index,
            relation=row.relation,
            relation_name=relation_labels.get(row.relation_name, row.relation_name),
            influence=row.influence,
            probability_after=row.probability_after,
            category=row.category,
            rank=row.rank,
            predicted=False,
        )

    graph.add_edge(
        explanation.head,
        explanation.tail,
        key=PREDICTION_KEY,
        relation=explanation.relation,
        relation_name=relation_labels.get(explanation.relation_name, explanation.relation_name),
        probability=explanation.probability,
        category="prediction",
        predicted=True,
    )
    return graph

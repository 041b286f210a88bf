"""The neighbourhood index against a plain Python scan of the training triples."""

import torch

from gr_core.neighbours import NeighbourhoodIndex


def scan_neighbours(triples, head, relation, tail):
    return sorted(
        i
        for i, (h, r, t) in enumerate(triples.tolist())
        if head in (h, t) or tail in (h, t) or r == relation
    )


def test_neighbours_equal_a_scan_on_nations(nations):
    index = NeighbourhoodIndex(nations.train, nations.num_entities, nations.num_relations)
    for head, relation, tail in nations.test[:20].tolist():
        found = index.neighbours(head, relation, tail)
        assert found.tolist() == scan_neighbours(nations.train, head, relation, tail)
    assert 300 < len(found) < len(nations.train)


def test_self_loops_are_listed_once_and_degrees_count_triples():
    triples = torch.tensor([[0, 0, 0], [0, 1, 2], [2, 0, 1], [1, 1, 1], [3, 2, 0]])
    index = NeighbourhoodIndex(triples, num_entities=5, num_relations=3)

    assert index.of_entity(0).tolist() == [0, 1, 4]
    assert index.of_entity(1).tolist() == [2, 3]
    assert index.of_entity(4).tolist() == []
    assert index.of_relation(1).tolist() == [1, 3]
    assert [index.degree(e) for e in range(5)] == [3, 2, 2, 1, 0]
    assert index.neighbours(4, 2, 4).tolist() == [4]
    assert index.neighbours(0, 1, 1).tolist() == scan_neighbours(triples, 0, 1, 1)

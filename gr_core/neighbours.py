"""Which training triples sit next to a triple: the candidates of an explanation.

The neighbours of ``(h, r, t)`` are the training triples that contain ``h`` or
``t`` in either slot, or have relation ``r`` (Lawrence et al. 2021, and the
original code). The index keeps, for every entity and every relation, the
sorted ids (rows of the training file) of the triples that contain it, as two
compressed-sparse-row arrays: ``offsets`` (n + 1,) and ``triple_ids``.
"""

from __future__ import annotations

import torch


def _grouped(keys: torch.Tensor, triple_ids: torch.Tensor, num_keys: int):
    """Return CSR arrays ``(offsets (num_keys + 1,), ids)`` grouping ids by key."""
    order = torch.argsort(keys * (len(triple_ids) + 1) + triple_ids)
    counts = torch.bincount(keys, minlength=num_keys)
    offsets = torch.zeros(num_keys + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(counts, 0)
    return offsets, triple_ids[order]


class NeighbourhoodIndex:
    """Triples by entity (either slot) and by relation, built once per run."""

    def __init__(self, train_triples: torch.Tensor, num_entities: int, num_relations: int):
        train_triples = train_triples.cpu()
        ids = torch.arange(len(train_triples))
        head, relation, tail = train_triples.unbind(1)

        # A self-loop names its entity twice; list it once.
        not_loop = head != tail
        entity_keys = torch.cat((head, tail[not_loop]))
        entity_ids = torch.cat((ids, ids[not_loop]))
        self.entity_offsets, self.entity_triples = _grouped(entity_keys, entity_ids, num_entities)
        self.relation_offsets, self.relation_triples = _grouped(relation, ids, num_relations)
        self.train_triples = train_triples

    def of_entity(self, entity: int) -> torch.Tensor:
        """Return the sorted ids of the training triples that contain ``entity``."""
        start, stop = self.entity_offsets[entity], self.entity_offsets[entity + 1]
        return self.entity_triples[start:stop]

    def of_relation(self, relation: int) -> torch.Tensor:
        """Return the sorted ids of the training triples with ``relation``."""
        start, stop = self.relation_offsets[relation], self.relation_offsets[relation + 1]
        return self.relation_triples[start:stop]

    def neighbours(self, head: int, relation: int, tail: int) -> torch.Tensor:
        """Return the sorted, distinct ids of the neighbours of ``(head, relation, tail)``.

        If the triple itself is a training triple, it is among its neighbours.
        """
        parts = (self.of_entity(head), self.of_entity(tail), self.of_relation(relation))
        return torch.unique(torch.cat(parts))

    def degree(self, entity: int) -> int:
        """Return how many training triples contain ``entity``."""
        return int(self.entity_offsets[entity + 1] - self.entity_offsets[entity])

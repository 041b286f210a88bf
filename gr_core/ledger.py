"""The rollback ledger: what each training triple did to its own rows.

For the training triple in row ``i`` of the training file, ``head[i]``,
``relation[i]`` and ``tail[i]`` sum the updates that the triple's own gradient
made to its head entity row, its relation row and its tail entity row over the
whole training (``gamma`` in Lawrence, Sztyler & Niepert, AAAI 2021). Rolling a
triple back means subtracting these three vectors from the rows it names.

Memory is exactly ``3 * width * num_train_triples`` numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ROLES = ("head", "relation", "tail")


@dataclass(eq=False)
class Ledger:
    """Three tables of shape (num_train_triples, width), row i = training triple i."""

    head: torch.Tensor
    relation: torch.Tensor
    tail: torch.Tensor

    @classmethod
    def zeros(cls, num_triples: int, width: int, dtype=torch.float32, device=None) -> Ledger:
        def table():
            return torch.zeros(num_triples, width, dtype=dtype, device=device)

        return cls(table(), table(), table())

    @property
    def num_triples(self) -> int:
        return self.head.shape[0]

    @property
    def width(self) -> int:
        return self.head.shape[1]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tables().values())

    def tables(self) -> dict[str, torch.Tensor]:
        """Return the three tables keyed by role, in the order of ``ROLES``."""
        return {"head": self.head, "relation": self.relation, "tail": self.tail}

    def record(
        self,
        rows: torch.Tensor,
        head: torch.Tensor,
        relation: torch.Tensor,
        tail: torch.Tensor,
    ) -> None:
        """Add updates (batch, width) to the ledger rows ``rows`` (batch,) of each role."""
        self.head.index_add_(0, rows, head)
        self.relation.index_add_(0, rows, relation)
        self.tail.index_add_(0, rows, tail)

    def clone(self) -> Ledger:
        return Ledger(self.head.clone(), self.relation.clone(), self.tail.clone())

    def to(self, device=None, dtype=None) -> Ledger:
        return Ledger(*(t.to(device=device, dtype=dtype) for t in self.tables().values()))

    def row_sums(self, triples: torch.Tensor, num_entities: int, num_relations: int):
        """Sum the ledger onto the rows it names.

        ``triples`` (num_triples, 3) are the training triples the ledger belongs to.
        Returns ``(entity_sum (num_entities, width), relation_sum (num_relations, width))``:
        for every entity row the sum of the head and tail entries that name it, for
        every relation row the sum of the relation entries that name it.
        """
        entity_sum = self.head.new_zeros(num_entities, self.width)
        entity_sum.index_add_(0, triples[:, 0], self.head)
        entity_sum.index_add_(0, triples[:, 2], self.tail)
        relation_sum = self.relation.new_zeros(num_relations, self.width)
        relation_sum.index_add_(0, triples[:, 1], self.relation)
        return entity_sum, relation_sum

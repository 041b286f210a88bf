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
    """The updates of every training triple to its own rows.

    ``table`` (num_train_triples, 3, width) holds, for row i = training triple i,
    the head, relation and tail updates; ``head``, ``relation`` and ``tail`` are
    (num_train_triples, width) views of it. One table lets a training step
    record a whole batch with a single scatter.
    """

    table: torch.Tensor

    @classmethod
    def zeros(cls, num_triples: int, width: int, dtype=torch.float32, device=None) -> Ledger:
        return cls(torch.zeros(num_triples, len(ROLES), width, dtype=dtype, device=device))

    @classmethod
    def from_tables(cls, head: torch.Tensor, relation: torch.Tensor, tail: torch.Tensor):
        """Build a ledger from three (num_train_triples, width) tables."""
        return cls(torch.stack((head, relation, tail), dim=1))

    @property
    def head(self) -> torch.Tensor:
        return self.table[:, 0]

    @property
    def relation(self) -> torch.Tensor:
        return self.table[:, 1]

    @property
    def tail(self) -> torch.Tensor:
        return self.table[:, 2]

    @property
    def num_triples(self) -> int:
        return self.table.shape[0]

    @property
    def width(self) -> int:
        return self.table.shape[2]

    @property
    def dtype(self) -> torch.dtype:
        return self.table.dtype

    @property
    def nbytes(self) -> int:
        return self.table.numel() * self.table.element_size()

    def tables(self) -> dict[str, torch.Tensor]:
        """Return the three (num_train_triples, width) views keyed by role."""
        return {"head": self.head, "relation": self.relation, "tail": self.tail}

    def gather(self, ids: torch.Tensor, device=None, dtype=None) -> torch.Tensor:
        """Return the rows ``ids`` (n,) as (n, 3, width) on ``device`` in ``dtype``.

        Indexing happens where the table lives; only the gathered rows move.
        """
        return self.table[ids.to(self.table.device)].to(device=device, dtype=dtype)

    def record(self, rows: torch.Tensor, updates: torch.Tensor, alpha: float = 1.0) -> None:
        """Add ``alpha * updates`` (batch, 3, width) to the ledger rows ``rows`` (batch,)."""
        flat = self.table.view(self.num_triples, -1)
        flat.index_add_(0, rows, updates.reshape(len(rows), -1), alpha=alpha)

    def clone(self) -> Ledger:
        return Ledger(self.table.clone())

    def to(self, device=None, dtype=None) -> Ledger:
        return Ledger(self.table.to(device=device, dtype=dtype))

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

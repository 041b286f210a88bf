"""Profile a data set: its sizes, how often each relation occurs, entity degrees, neighbourhoods.

Everything but the split sizes is counted on the training triples: they are the
graph the model learns from and the pool explanations draw their neighbours from.

* The **degree** of an entity is the number of training triples that contain it,
  in either slot; a self-loop counts once (as in ``NeighbourhoodIndex.degree``).
* The **neighbourhood size** of a test triple ``(head, relation, tail)`` is the
  number of training triples that share its head or tail (either slot) or its
  relation: DESIGN.md section 5. An explanation's candidates are the neighbours
  of the explained triple ``(head, relation, predicted tail)``; the true tail
  stands in for the prediction here, which needs no model and is the same
  triple whenever the prediction is right.

The results are plain pandas tables and dicts, ready to chart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from gr_core.data import Dataset

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class DatasetProfile:
    """The counts that describe one data set."""

    sizes: dict[str, int]  # entities, relations, train, valid, test
    relations: pd.DataFrame  # relation, label, triples, share; most frequent first
    degrees: pd.DataFrame  # entity, label, degree; in id order
    neighbourhoods: pd.DataFrame  # head, relation, tail, neighbours; one row per test triple

    @property
    def mean_neighbourhood(self) -> float:
        """Return the mean neighbourhood size of the test triples (NaN when there are none)."""
        return float(self.neighbourhoods["neighbours"].mean())


def dataset_sizes(dataset: Dataset) -> dict[str, int]:
    """Return the number of entities, relations and triples per split."""
    return {
        "entities": dataset.num_entities,
        "relations": dataset.num_relations,
        "train": len(dataset.train),
        "valid": len(dataset.valid),
        "test": len(dataset.test),
    }


def relation_frequencies(dataset: Dataset) -> pd.DataFrame:
    """Return each relation's number of training triples and their share, most frequent first.

    Equal counts keep id order.
    """
    counts = torch.bincount(dataset.train[:, 1], minlength=dataset.num_relations)
    table = pd.DataFrame(
        {
            "relation": list(dataset.relations),
            "label": list(dataset.relation_labels),
            "triples": counts.tolist(),
            "share": (counts.double() / max(len(dataset.train), 1)).tolist(),
        }
    )
    return table.sort_values("triples", ascending=False, kind="stable").reset_index(drop=True)


def entity_degrees(dataset: Dataset) -> pd.DataFrame:
    """Return each entity's degree: the training triples that contain it, in id order."""
    head, _, tail = dataset.train.unbind(1)
    not_loop = head != tail
    degree = torch.bincount(head, minlength=dataset.num_entities)
    degree += torch.bincount(tail[not_loop], minlength=dataset.num_entities)
    return pd.DataFrame(
        {
            "entity": list(dataset.entities),
            "label": list(dataset.entity_labels),
            "degree": degree.tolist(),
        }
    )


def neighbourhood_sizes(
    dataset: Dataset, triples: torch.Tensor | None = None, on_progress: Progress | None = None
) -> pd.DataFrame:
    """Return the number of training neighbours of each triple (default: the test triples).

    ``triples`` is (n, 3) ids; the table has the names of head, relation and tail
    and ``neighbours``, one row per triple in the given order. ``on_progress`` is
    called once, with (n, n), when the counts are done.

    The neighbours of ``(h, r, t)`` are the union of the training triples that
    contain ``h`` (A), contain ``t`` (B) or have relation ``r`` (C). Its size
    comes by inclusion-exclusion from counts of the training triples, without
    listing any neighbourhood: one pass instead of one index lookup per triple.
    """
    triples = dataset.test if triples is None else triples
    heads, relations, tails = triples.T
    counts = _Counts(dataset.train, dataset.num_entities)
    same = heads == tails
    a, b, c = counts.degree[heads], counts.degree[tails], counts.relation[relations]
    a_c, b_c = counts.with_relation(relations, heads), counts.with_relation(relations, tails)
    a_b = torch.where(same, a, counts.pair(heads, tails))
    a_b_c = torch.where(same, a_c, counts.pair_with_relation(relations, heads, tails))
    sizes = a + b + c - a_b - a_c - b_c + a_b_c
    if on_progress is not None:
        on_progress(len(triples), len(triples))

    return pd.DataFrame(
        {
            "head": [dataset.entities[head] for head in heads.tolist()],
            "relation": [dataset.relations[relation] for relation in relations.tolist()],
            "tail": [dataset.entities[tail] for tail in tails.tolist()],
            "neighbours": sizes.tolist(),
        }
    )


class _Counts:
    """How many training triples contain an entity, a pair, or either with a relation."""

    def __init__(self, train: torch.Tensor, num_entities: int):
        head, relation, tail = train.T
        self.entities = num_entities
        loop = head == tail
        self.degree = torch.bincount(head, minlength=num_entities)
        self.degree += torch.bincount(tail[~loop], minlength=num_entities)
        self.relation = torch.bincount(relation)
        low, high = torch.minimum(head, tail), torch.maximum(head, tail)
        # A self-loop contains its entity once: count it with the head only.
        as_head = self._key(relation, head)
        as_tail = self._key(relation[~loop], tail[~loop])
        self.relation_keys = _Table(torch.cat((as_head, as_tail)))
        self.pair_keys = _Table(self._key(low, high)[~loop])
        self.triple_keys = _Table(self._key(self._key(relation, low), high)[~loop])

    def _key(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return first.long() * self.entities + second.long()

    def with_relation(self, relation, entity) -> torch.Tensor:
        return self.relation_keys.count(self._key(relation, entity))

    def pair(self, first, second) -> torch.Tensor:
        low, high = torch.minimum(first, second), torch.maximum(first, second)
        return self.pair_keys.count(self._key(low, high))

    def pair_with_relation(self, relation, first, second) -> torch.Tensor:
        low, high = torch.minimum(first, second), torch.maximum(first, second)
        return self.triple_keys.count(self._key(self._key(relation, low), high))


class _Table:
    """Counts of integer keys, looked up many at a time."""

    def __init__(self, keys: torch.Tensor):
        self.keys, self.counts = torch.unique(keys, return_counts=True)

    def count(self, queries: torch.Tensor) -> torch.Tensor:
        """Return how often each query key (n,) occurred; 0 for unseen keys."""
        if len(self.keys) == 0:
            return torch.zeros_like(queries)
        position = torch.searchsorted(self.keys, queries).clamp(max=len(self.keys) - 1)
        return torch.where(self.keys[position] == queries, self.counts[position], 0)


def profile_dataset(dataset: Dataset, on_progress: Progress | None = None) -> DatasetProfile:
    """Return every count of the profile; ``on_progress`` follows the neighbourhood sizes."""
    return DatasetProfile(
        sizes=dataset_sizes(dataset),
        relations=relation_frequencies(dataset),
        degrees=entity_degrees(dataset),
        neighbourhoods=neighbourhood_sizes(dataset, on_progress=on_progress),
    )

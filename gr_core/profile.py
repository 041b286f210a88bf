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
from gr_core.neighbours import NeighbourhoodIndex

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
    called after each triple with (done, total).
    """
    triples = dataset.test if triples is None else triples
    index = NeighbourhoodIndex(dataset.train, dataset.num_entities, dataset.num_relations)
    sizes = []
    for done, (head, relation, tail) in enumerate(triples.tolist(), start=1):
        sizes.append(len(index.neighbours(head, relation, tail)))
        if on_progress is not None:
            on_progress(done, len(triples))

    return pd.DataFrame(
        {
            "head": [dataset.entities[head] for head in triples[:, 0].tolist()],
            "relation": [dataset.relations[relation] for relation in triples[:, 1].tolist()],
            "tail": [dataset.entities[tail] for tail in triples[:, 2].tolist()],
            "neighbours": sizes,
        }
    )


def profile_dataset(dataset: Dataset, on_progress: Progress | None = None) -> DatasetProfile:
    """Return every count of the profile; ``on_progress`` follows the neighbourhood sizes."""
    return DatasetProfile(
        sizes=dataset_sizes(dataset),
        relations=relation_frequencies(dataset),
        degrees=entity_degrees(dataset),
        neighbourhoods=neighbourhood_sizes(dataset, on_progress=on_progress),
    )

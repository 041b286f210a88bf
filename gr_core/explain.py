"""Predict tails for a query and explain a prediction with gradient rollback.

``Explainer`` is built once per run (it indexes the neighbourhoods and the
known tails) and answers queries fast:

* ``predict(head, relation, k)``: the top-k tails with their probabilities,
  filtered (tails that train or valid already give the query are removed) or
  not (they are kept and marked ``known``); either way only the data set's
  tail candidates are shown (MovieLens: movies, never users);
* ``explain(head, relation, tail, method, k)``: the training triples that made
  the model predict ``tail``, ranked by influence, each with its category.

Methods: ``gr`` (GR-k: the k most influential neighbours), ``all-positive``
(GR-ALL: every neighbour with a positive influence), ``gr-o`` (GR-O: only
neighbours whose tail is the predicted tail, the candidate set of CRIAGE) and
``first-order`` (ranked by ``grad Pr . gamma`` instead of the exact rollback).
The baseline ``criage`` (runs trained with a sigmoid only) ranks the same
candidates as ``gr-o`` by CRIAGE's estimate instead of the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gr_core.categories import categorise
from gr_core.criage import check_sigmoid, criage_influence
from gr_core.errors import ConfigError, GRError, UnknownNameError
from gr_core.explanation import Explanation, ExplanationRow, Path
from gr_core.influence import (
    first_order_influence,
    rollback_probabilities,
    tail_probabilities,
    top_rollbacks,
)
from gr_core.metrics import TailFilter
from gr_core.neighbours import NeighbourhoodIndex

METHODS = ("gr", "gr-o", "first-order", "all-positive", "criage")


class NoLedgerError(GRError):
    """The run was trained without a ledger, so nothing can be rolled back."""


@dataclass(frozen=True)
class Prediction:
    """One candidate tail of a query."""

    rank: int  # 1 + the number of shown candidates that score strictly higher
    tail: int
    name: str
    probability: float  # Pr(tail | head, relation), softmax over every entity
    known: bool  # train or valid already hold (head, relation, tail)


class Explainer:
    """Predictions and explanations for one run."""

    def __init__(self, run, dataset):
        if run.ledger is None:
            raise NoLedgerError(
                f"run {run.path} has no ledger; train it again with --ledger gradient"
            )
        self.model, self.ledger = run.model, run.ledger
        self.loss = run.train_config.loss
        self.train_triples = dataset.train
        self.entities, self.relations = list(dataset.entities), list(dataset.relations)
        self.dataset = dataset
        self.index = NeighbourhoodIndex(dataset.train, dataset.num_entities, dataset.num_relations)
        self.known_tails = TailFilter(
            torch.cat((dataset.train, dataset.valid)),
            dataset.num_relations,
            tail_candidates=dataset.tail_candidates,
        )

    def entity_id(self, name: str | int) -> int:
        """Return the id of an entity given by id, key or readable label."""
        return self._lookup(name, self.dataset.entity_id, len(self.entities), "entity")

    def relation_id(self, name: str | int) -> int:
        """Return the id of a relation given by id, key or readable label."""
        return self._lookup(name, self.dataset.relation_id, len(self.relations), "relation")

    @staticmethod
    def _lookup(name, find, count: int, kind: str) -> int:
        if isinstance(name, int):
            if not 0 <= name < count:
                raise UnknownNameError(kind, str(name), [])
            return name
        return find(name)

    def _left_out(self, head: int, relation: int) -> torch.Tensor:
        """Return a bool mask (num_entities,): known tails of the query and non-candidates."""
        pair = torch.tensor([head]), torch.tensor([relation])
        return self.known_tails.mask(*pair, len(self.entities))[0]

    def best_unknown_tail(self, head: int, relation: int, probabilities: torch.Tensor) -> int:
        """Return the filtered top-1: the likeliest candidate train and valid do not give.

        ``probabilities`` (num_entities,) may come from any model (a retrained one, say).
        Equal maxima go to the lowest id.
        """
        unknown = probabilities.cpu().masked_fill(self._left_out(head, relation), -1.0)
        if unknown.max() < 0:
            raise GRError("every tail candidate is already a known tail of this query")
        return int(unknown.argmax())

    def predict(self, head, relation, k: int = 10, filtered: bool = True) -> list[Prediction]:
        """Return the top-k tails of ``(head, relation, ?)``, best first."""
        head, relation = self.entity_id(head), self.relation_id(relation)
        probabilities = tail_probabilities(self.model, head, relation).cpu()
        left_out = self._left_out(head, relation)
        candidates = self.dataset.tail_candidates
        if candidates is None:
            candidates = torch.ones_like(left_out)
        known = left_out & candidates
        shown = torch.nonzero(~left_out if filtered else candidates)[:, 0]

        # Stable sort: equal probabilities keep id order; ties share a rank.
        order = torch.sort(probabilities[shown], descending=True, stable=True).indices
        top = shown[order[:k]]
        shown_probabilities = probabilities[shown]
        return [
            Prediction(
                rank=1 + int((shown_probabilities > probabilities[tail]).sum()),
                tail=int(tail),
                name=self.entities[tail],
                probability=float(probabilities[tail]),
                known=bool(known[tail]),
            )
            for tail in top.tolist()
        ]

    def explain(
        self,
        head,
        relation,
        tail=None,
        method: str = "gr",
        k: int = 10,
        chunk_size: int | None = None,
    ) -> Explanation:
        """Explain why ``tail`` (default: the filtered top-1) answers ``(head, relation, ?)``."""
        if method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if method == "criage":
            check_sigmoid(self.loss)
        head, relation = self.entity_id(head), self.relation_id(relation)
        probabilities = tail_probabilities(self.model, head, relation).cpu()
        if tail is None:
            tail = self.best_unknown_tail(head, relation, probabilities)
        tail = self.entity_id(tail)
        query = (head, relation, tail)
        probability = float(probabilities[tail])

        candidates = self.index.neighbours(*query)
        if method in ("gr-o", "criage"):
            candidates = candidates[self.train_triples[candidates, 2] == tail]
        num_candidates = len(candidates)
        if method in ("gr", "gr-o"):
            # Only the top k are shown: roll back just the neighbours that may be among them.
            args = (self.model, self.ledger, self.train_triples, candidates, query, k)
            positions, after = top_rollbacks(*args, chunk_size=chunk_size)
            candidates, influence = candidates[positions], probability - after
        else:
            influence, after = self._influence(candidates, query, method, probability, chunk_size)

        order = torch.sort(influence, descending=True, stable=True).indices
        if method == "all-positive":
            order = order[influence[order] > 0]
        else:
            order = order[:k]
        return self._explanation(
            method,
            query,
            probability,
            num_candidates,
            candidates[order],
            influence[order],
            after[order],
        )

    def _influence(self, candidates, query, method, probability, chunk_size):
        """Return (influence, probability after removal) per candidate, on the CPU."""
        args = (self.model, self.ledger, self.train_triples, candidates, query)
        if method == "first-order":
            influence = first_order_influence(*args).cpu().double()
            return influence, probability - influence
        if method == "criage":
            after = criage_influence(self.model, self.train_triples, candidates, query)[1]
            after = after.cpu().double()
            return probability - after, after
        after = rollback_probabilities(*args, chunk_size=chunk_size).cpu().double()
        return probability - after, after

    def _explanation(self, method, query, probability, num_candidates, ids, influence, after):
        head, relation, tail = query
        triples = self.train_triples[ids]
        categories, paths = categorise(head, relation, tail, triples)
        via_of = {pos: via for via, left, right in paths for pos in (*left, *right)}
        rows = [
            ExplanationRow(
                rank=position + 1,
                triple_index=int(ids[position]),
                head=int(h),
                relation=int(r),
                tail=int(t),
                head_name=self.entities[h],
                relation_name=self.relations[r],
                tail_name=self.entities[t],
                influence=float(influence[position]),
                probability_after=float(after[position]),
                category=categories[position],
                via=via_of.get(position),
            )
            for position, (h, r, t) in enumerate(triples.tolist())
        ]
        path_records = [
            Path(via, self.entities[via], tuple(p + 1 for p in left), tuple(p + 1 for p in right))
            for via, left, right in paths
        ]
        return Explanation(
            method=method,
            head=head,
            relation=relation,
            tail=tail,
            head_name=self.entities[head],
            relation_name=self.relations[relation],
            tail_name=self.entities[tail],
            probability=probability,
            num_neighbours=num_candidates,
            rows=rows,
            paths=path_records,
        )

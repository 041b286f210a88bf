"""Filtered tail-prediction ranking: MRR and Hits@k.

The rank of a test triple ``(h, r, t)`` is the position of ``t`` among all
entities scored as tails of ``(h, r, ?)``, after removing every *other* tail
that a known triple (train, valid or test) gives to the same query: the
standard "filtered" setting of Bordes et al. (2013).

Ties: an entity whose score equals the true tail's counts as half a place
ahead, so the rank is the mean of the optimistic and pessimistic ranks
(``1 + #higher + #tied / 2``). A model that scores everything equally gets the
rank in the middle, not rank 1.

Candidates: a data set may allow only some entities as tails (``Dataset.tail_candidates``;
MovieLens: movies, never users). The other entities are then filtered out like
known tails, so a triple is ranked among the candidates only. The true tail
itself is always kept. Training's loss is not affected: it scores every entity.
"""

from __future__ import annotations

import torch

from gr_core.models import KGEModel

HITS_AT = (1, 3, 10)


class TailFilter:
    """Look up the tails to leave out of many ``(head, relation)`` queries at once.

    Left out: every tail that ``known_triples`` (n, 3) give the query and, with
    ``tail_candidates`` (num_entities,) bool, every entity that is not a candidate.
    """

    def __init__(
        self,
        known_triples: torch.Tensor,
        num_relations: int,
        tail_candidates: torch.Tensor | None = None,
    ):
        self.num_relations = num_relations
        self.tail_candidates = None if tail_candidates is None else tail_candidates.cpu()
        keys = known_triples[:, 0] * num_relations + known_triples[:, 1]
        order = torch.argsort(keys, stable=True)
        self.sorted_keys = keys[order]
        self.sorted_tails = known_triples[order, 2]

    def mask(self, head: torch.Tensor, relation: torch.Tensor, num_entities: int):
        """Return a bool mask (queries, num_entities), True where a tail is left out.

        A tail is left out when it is known or is not a candidate.
        """
        left_out = self.known(head, relation, num_entities)
        if self.tail_candidates is not None:
            if len(self.tail_candidates) != num_entities:
                raise ValueError(
                    f"tail_candidates covers {len(self.tail_candidates)} entities, "
                    f"the scores {num_entities}"
                )
            left_out |= ~self.tail_candidates
        return left_out

    def known(self, head: torch.Tensor, relation: torch.Tensor, num_entities: int):
        """Return a bool mask (queries, num_entities), True where a known triple gives the tail."""
        keys = head * self.num_relations + relation
        start = torch.searchsorted(self.sorted_keys, keys, right=False)
        stop = torch.searchsorted(self.sorted_keys, keys, right=True)
        counts = stop - start

        # Expand every query's [start, stop) range into (query index, position) pairs.
        query_index = torch.repeat_interleave(torch.arange(len(keys)), counts)
        offsets = torch.cumsum(counts, 0) - counts
        position = start[query_index] + torch.arange(int(counts.sum())) - offsets[query_index]
        known = torch.zeros(len(keys), num_entities, dtype=torch.bool)
        known[query_index, self.sorted_tails[position]] = True
        return known


def filtered_ranks(
    model: KGEModel,
    triples: torch.Tensor,
    tail_filter: TailFilter,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Return the filtered rank (float, ties averaged) of each triple (n, 3) as (n,).

    Each true tail is ranked among the tails ``tail_filter`` leaves in.
    """
    ranks = []
    for start in range(0, len(triples), batch_size):
        batch = triples[start : start + batch_size]
        head, relation, tail = batch.unbind(1)
        device = model.entity.device
        with torch.no_grad():
            scores = model.score_all_tails(head.to(device), relation.to(device)).cpu()
        true_scores = scores.gather(1, tail[:, None])

        known = tail_filter.mask(head, relation, scores.shape[1])
        known[torch.arange(len(batch)), tail] = False  # the true tail itself stays
        higher = ((scores > true_scores) & ~known).sum(1)
        tied = ((scores == true_scores) & ~known).sum(1) - 1
        rank = 1.0 + higher + tied / 2.0

        # A NaN score compares false with everything; rank it last, not first.
        broken = torch.isnan(scores).any(1)
        rank[broken] = (~known[broken]).sum(1).to(rank.dtype)
        ranks.append(rank)
    return torch.cat(ranks) if ranks else torch.zeros(0)


def ranking_metrics(ranks: torch.Tensor) -> dict[str, float]:
    """Return MRR and Hits@1/3/10 for ranks (n,)."""
    if len(ranks) == 0:
        return {"mrr": float("nan"), **{f"hits@{k}": float("nan") for k in HITS_AT}}
    metrics = {"mrr": float((1.0 / ranks).mean())}
    for k in HITS_AT:
        metrics[f"hits@{k}"] = float((ranks <= k).double().mean())
    return metrics


def evaluate(model: KGEModel, triples: torch.Tensor, tail_filter: TailFilter) -> dict:
    """Return filtered tail-prediction metrics of ``triples`` (n, 3)."""
    return ranking_metrics(filtered_ranks(model, triples, tail_filter))

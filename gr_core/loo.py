"""Exact leave-one-out influence: retrain once per neighbour and compare the methods.

GR estimates, for every neighbour of a prediction, how much the prediction's
probability would drop without it. On Nations the truth is affordable: one
retraining per neighbour (about 500 per query), all in one stack. For each
query this module returns the true drop of every neighbour and scores each
estimate against it: Spearman's rank correlation, whether the top-1 agrees,
and the overlap of the top-10 sets. The noise floor is the drop that merely
retraining with another seed causes: a true influence smaller than that
cannot be told from noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gr_core.explain import Explainer
from gr_core.influence import first_order_influence, tail_probabilities
from gr_core.stack import train_stack

ESTIMATES = ("gr", "first-order", "random")


def ranks(values: torch.Tensor) -> torch.Tensor:
    """Return 1-based ranks of ``values`` (n,), ties sharing their mean rank."""
    order = torch.argsort(values)
    ranked = torch.empty_like(values, dtype=torch.float64)
    ranked[order] = torch.arange(1, len(values) + 1, dtype=torch.float64)
    for value in torch.unique(values):  # average the ranks of ties
        tied = values == value
        if tied.sum() > 1:
            ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(first: torch.Tensor, second: torch.Tensor) -> float:
    """Return Spearman's rank correlation of two (n,) tensors."""
    a, b = ranks(first.double()), ranks(second.double())
    return float(torch.corrcoef(torch.stack((a, b)))[0, 1])


def agreement(estimate: torch.Tensor, truth: torch.Tensor, k: int = 10) -> dict:
    """Return Spearman's rho, top-1 agreement and the top-k overlap of an estimate."""
    top_estimate = set(torch.topk(estimate, min(k, len(estimate))).indices.tolist())
    top_truth = set(torch.topk(truth, min(k, len(truth))).indices.tolist())
    return {
        "spearman": spearman(estimate, truth),
        "top1": bool(int(estimate.argmax()) == int(truth.argmax())),
        f"top{k}": len(top_estimate & top_truth) / min(k, len(truth)),
    }


def leave_one_out(
    run,
    dataset,
    explainer: Explainer,
    queries: torch.Tensor,
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Retrain without each neighbour of each query's prediction; score the estimates.

    ``queries`` (n, 2) holds ``(head, relation)`` ids; each explains its filtered
    top-1. Returns one record per query: sizes, the noise floor, and per estimate
    (``gr``, ``first-order``, ``random``) its agreement with the true drops.
    """
    plans = []
    for head, relation in queries.tolist():
        before = tail_probabilities(run.model, head, relation).cpu()
        tail = explainer.best_unknown_tail(head, relation, before)
        plans.append((head, relation, tail, explainer.index.neighbours(head, relation, tail)))

    # Member 0 removes nothing; then one member per (query, neighbour).
    sizes = [len(ids) for *_, ids in plans]
    masks = torch.zeros(1 + sum(sizes), len(dataset.train), dtype=torch.bool)
    offsets = torch.cumsum(torch.tensor([0, *sizes]), 0).tolist()
    for (*_, ids), start in zip(plans, offsets, strict=False):
        masks[1 + start + torch.arange(len(ids)), ids] = True
    config = run.train_config.replace(ledger="off")
    epochs = run.config["result"]["kept_epoch"]
    models = train_stack(dataset, config, masks, epochs, on_step=on_step)
    noise_model = train_stack(dataset, config.replace(seed=config.seed + 1),
                              masks[:1], epochs)[0]  # fmt: skip

    records, generator = [], torch.Generator().manual_seed(seed)
    for (head, relation, tail, ids), start in zip(plans, offsets, strict=False):
        base = float(tail_probabilities(models[0], head, relation)[tail])
        members = models[1 + start : 1 + start + len(ids)]
        truth = torch.tensor(
            [base - float(tail_probabilities(m, head, relation)[tail]) for m in members],
            dtype=torch.float64,
        )
        estimates = _estimates(explainer, (head, relation, tail), ids, generator)
        noise = abs(base - float(tail_probabilities(noise_model, head, relation)[tail]))
        records.append(
            {
                "head": explainer.entities[head],
                "relation": explainer.relations[relation],
                "tail": explainer.entities[tail],
                "neighbours": len(ids),
                "probability": base,
                "noise_floor": noise,
                "above_noise": int((truth.abs() > noise).sum()),
                "triples": ids.tolist(),
                "true_drop": truth.tolist(),
                **{name: agreement(values, truth) for name, values in estimates.items()},
            }
        )
    return records


def _estimates(explainer: Explainer, query, ids: torch.Tensor, generator) -> dict:
    """Return each estimate's scores of the neighbours ``ids``, in the order of ``ids``."""
    head, relation, tail = query
    ranked = explainer.explain(head, relation, tail, method="gr", k=10**9)
    by_id = {row.triple_index: row.influence for row in ranked.rows}
    args = (explainer.model, explainer.ledger, explainer.train_triples, ids, query)
    return {
        "gr": torch.tensor([by_id[i] for i in ids.tolist()], dtype=torch.float64),
        "first-order": first_order_influence(*args).double().cpu(),
        "random": torch.rand(len(ids), generator=generator, dtype=torch.float64),
    }


def summarise_loo(records: list[dict]) -> dict:
    """Return per estimate the mean Spearman rho, top-1 share and mean top-10 overlap."""
    summary = {}
    for name in ESTIMATES:
        values = [record[name] for record in records]
        summary[name] = {
            "spearman": sum(v["spearman"] for v in values) / len(values),
            "top1": sum(v["top1"] for v in values) / len(values),
            "top10": sum(v["top10"] for v in values) / len(values),
        }
    summary["queries"] = len(records)
    summary["mean_noise_floor"] = sum(r["noise_floor"] for r in records) / len(records)
    summary["share_above_noise"] = sum(r["above_noise"] for r in records) / sum(
        r["neighbours"] for r in records
    )
    return summary

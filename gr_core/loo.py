"""Exact leave-one-out influence: retrain once per training triple and compare the methods.

GR estimates, for every neighbour of a prediction, how much the prediction's
probability would drop without it. On Nations the truth is affordable. A
model retrained without triple ``d`` answers every query at once, so one
retraining per distinct neighbour serves all queries: for all 201 Nations test
queries that is at most one per training triple (1,592), not one per
(query, neighbour) pair (about 100,000). They all run in one stack.

For each query this module returns the true drop of every neighbour and scores
each estimate against it: Spearman's rank correlation, whether the top-1
agrees, whether the estimate's top-1 is among the true top-10, and the overlap
of the top-10 sets. Two noise floors say how much of a "true" drop is chaos:
the change of the prediction when the same data is retrained with another
seed (other initial weights, negatives and batch order), and with another
batch order alone. A true influence below them cannot be told from noise.

Estimates: ``gr`` (the run's ledger), ``first-order`` (``grad Pr . gamma``),
``random`` (a seeded random ranking), and ``gr-<mode>`` for each extra ledger
given, for example the ``paper`` ledger of the same training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gr_core.errors import ConfigError
from gr_core.explain import Explainer
from gr_core.influence import first_order_influence, rollback_probabilities, tail_probabilities
from gr_core.ledger import Ledger
from gr_core.stack import DEFAULT_MEMORY_BUDGET, stack_steps, train_stack
from gr_core.training import train

ESTIMATES = ("gr", "first-order", "random")
# Retrainings of the unchanged data per noise floor (other seeds, other batch orders).
NOISE_REPLICAS = 3
# Seeds of extra batch orders for the averaged truth: far from the noise replicas' seeds.
ORDER_SEED_STEP = 7919


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
        f"top1_in_top{k}": int(estimate.argmax()) in top_truth,
        f"top{k}": len(top_estimate & top_truth) / min(k, len(truth)),
    }


def leave_one_out(
    run,
    dataset,
    explainer: Explainer,
    queries: torch.Tensor,
    seed: int = 0,
    ledgers: dict[str, Ledger] | None = None,
    orders: int = 1,
    on_step: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Retrain without each neighbour of each query's prediction; score the estimates.

    ``queries`` (n, 2) holds ``(head, relation)`` ids; each explains its filtered
    top-1. ``ledgers`` adds an estimate ``gr-<name>`` per extra ledger of the
    same model. ``orders`` > 1 averages the true drop over that many batch
    orders (the run's first), which shrinks the retraining noise, and reports
    each drop's standard error. Returns one record per query: sizes, the two
    noise floors, the true drops and, under ``estimates``, each estimate's
    agreement with them.
    """
    if orders < 1:
        raise ConfigError(f"orders must be at least 1, got {orders}")
    plans = []
    for head, relation in queries.tolist():
        before = tail_probabilities(run.model, head, relation).cpu()
        tail = explainer.best_unknown_tail(head, relation, before)
        plans.append((head, relation, tail, explainer.index.neighbours(head, relation, tail)))
    heads, relations, tails = (torch.tensor([plan[i] for plan in plans]) for i in range(3))

    # Member 0 removes nothing; member 1 + j removes the j-th distinct neighbour.
    distinct = torch.unique(torch.cat([ids for *_, ids in plans]))
    masks = torch.zeros(1 + len(distinct), len(dataset.train), dtype=torch.bool)
    masks[1 + torch.arange(len(distinct)), distinct] = True
    config = run.train_config.replace(ledger="off")
    epochs = run.config["result"]["kept_epoch"]
    queries_ids = (heads, relations, tails)
    answers = []  # per batch order: (1 + U, n)
    total = stack_steps(dataset, config, len(masks), epochs, DEFAULT_MEMORY_BUDGET) * orders
    for order in range(orders):
        order_seed = None if order == 0 else config.seed + ORDER_SEED_STEP * order
        offset = total // orders * order
        progress = on_step and (lambda done, _, offset=offset: on_step(offset + done, total))
        models = train_stack(dataset, config, masks, epochs, order_seed=order_seed,
                             on_step=progress)  # fmt: skip
        answers.append(torch.stack([_answers(m, *queries_ids) for m in models]))
    answers = torch.stack(answers)  # (orders, 1 + U, n)
    floors = _noise_floors(dataset, config, epochs, answers[0, 0], queries_ids)

    records, generator = [], torch.Generator().manual_seed(seed)
    member_of = {int(triple): 1 + j for j, triple in enumerate(distinct.tolist())}
    for position, (head, relation, tail, ids) in enumerate(plans):
        members = torch.tensor([member_of[i] for i in ids.tolist()], dtype=torch.long)
        drops = answers[:, 0, position, None] - answers[:, members, position]  # (orders, n)
        truth = drops.mean(0)
        query = (head, relation, tail)
        estimates = _estimates(explainer, query, ids, generator, ledgers or {})
        noise = {kind: float(values[position]) for kind, values in floors.items()}
        records.append(
            {
                "head": explainer.entities[head],
                "relation": explainer.relations[relation],
                "tail": explainer.entities[tail],
                "neighbours": len(ids),
                "probability": float(answers[0, 0, position]),
                "noise_floor": noise,
                "above_noise": {k: int((truth.abs() > v).sum()) for k, v in noise.items()},
                "triples": ids.tolist(),
                "true_drop": truth.tolist(),
                **_standard_errors(drops),
                "estimates": {name: agreement(v, truth) for name, v in estimates.items()},
            }
        )
    return records


def _standard_errors(drops: torch.Tensor) -> dict:
    """Return the standard error of each mean drop over batch orders, when there are two+."""
    if len(drops) < 2:
        return {}
    errors = drops.std(0) / len(drops) ** 0.5
    mean = drops.mean(0)
    return {"true_drop_se": errors.tolist(), "significant": int((mean.abs() > 2 * errors).sum())}


def _answers(model, heads, relations, tails) -> torch.Tensor:
    """Return ``Pr(tail | head, relation)`` of each query under ``model``: (n,) float64."""
    scores = model.score_all_tails(heads, relations)  # (n, num_entities)
    probabilities = torch.softmax(scores.double(), dim=1)
    return probabilities[torch.arange(len(tails)), tails]


def _noise_floors(dataset, config, epochs, base, queries) -> dict[str, torch.Tensor]:
    """Return per query the mean change of its answer when the same data is retrained.

    ``seed``: other seeds (initial weights, negatives and batch order); ``order``:
    the same weights and negatives, another batch order.
    """
    nothing = torch.zeros(1, len(dataset.train), dtype=torch.bool)
    floors = {}
    for kind in ("seed", "order"):
        changes = []
        for replica in range(1, NOISE_REPLICAS + 1):
            other = config.seed + 1000 * replica
            if kind == "seed":
                model = train_stack(dataset, config.replace(seed=other), nothing, epochs)[0]
            else:
                model = train_stack(dataset, config, nothing, epochs, order_seed=other)[0]
            changes.append((base - _answers(model, *queries)).abs())
        floors[kind] = torch.stack(changes).mean(0)
    return floors


def _estimates(explainer: Explainer, query, ids: torch.Tensor, generator, ledgers) -> dict:
    """Return each estimate's scores of the neighbours ``ids``, in the order of ``ids``."""
    head, relation, tail = query
    probability = float(tail_probabilities(explainer.model, head, relation)[tail])

    def rollback(ledger):
        args = (explainer.model, ledger, explainer.train_triples, ids, query)
        return probability - rollback_probabilities(*args).double().cpu()

    first_order = first_order_influence(
        explainer.model, explainer.ledger, explainer.train_triples, ids, query
    )
    return {
        "gr": rollback(explainer.ledger),
        "first-order": first_order.double().cpu(),
        "random": torch.rand(len(ids), generator=generator, dtype=torch.float64),
        **{f"gr-{name}": rollback(ledger) for name, ledger in ledgers.items()},
    }


def ledger_of_mode(run, dataset, mode: str, on_step=None, tolerance: float = 1e-4) -> Ledger:
    """Train the run's setup again recording ledger ``mode``; return that ledger.

    The ledger mode changes what is recorded, not the training, so the model
    must come out as the run's own; ConfigError when it does not (for example a
    run trained on another device).
    """
    config = run.train_config.replace(
        ledger=mode, epochs=run.config["result"]["kept_epoch"], early_stopping_patience=0,
        eval_every=0,
    )  # fmt: skip
    result = train(dataset, config, on_step=on_step)
    gap = float((result.model.entity - run.model.entity).abs().max())
    if gap > tolerance:
        raise ConfigError(
            f"retraining with ledger {mode!r} did not reproduce the run's model "
            f"(largest difference {gap:.2e}); cannot compare the ledgers"
        )
    return result.ledger


def summarise_loo(records: list[dict]) -> dict:
    """Return per estimate its mean agreement with the truth, and the noise floors."""
    summary = {"queries": len(records), "neighbours": sum(r["neighbours"] for r in records)}
    for name in records[0]["estimates"]:
        values = [record["estimates"][name] for record in records]
        summary[name] = {key: sum(float(v[key]) for v in values) / len(values)
                         for key in values[0]}  # fmt: skip
    for kind in records[0]["noise_floor"]:
        summary[f"noise_floor_{kind}"] = sum(r["noise_floor"][kind] for r in records) / len(records)
        summary[f"share_above_noise_{kind}"] = (
            sum(r["above_noise"][kind] for r in records) / summary["neighbours"]
        )
    if "significant" in records[0]:
        summary["share_significant"] = (
            sum(r["significant"] for r in records) / summary["neighbours"]
        )
    return summary

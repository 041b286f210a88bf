"""RemOve And Retrain: are explanations faithful? (Lawrence et al. 2021, Table 1.)

For each evaluated query the filtered top-1 prediction ``t`` is explained; each
method's chosen set of training triples is removed and the model retrained
from scratch (same seed, initial weights, negatives and batch order, in one
stack). Two numbers per method summarise the effect:

* PD% (probability drop): the share of queries whose retrained ``Pr(t | h, r)``
  is strictly lower than before;
* TC% (top-1 change): the share whose retrained filtered top-1 is not ``t``.

"Before" is a stack member trained with nothing removed: the same pipeline as
every other member, so only the removal differs (on the CPU it equals the
run's own model exactly).

Methods: ``GR-k`` (the k most influential neighbours), ``GR-ALL`` (every
neighbour with positive influence), ``GR-O-k`` (GR among neighbours ending in
``t``), ``FO-k`` (first-order GR), and the baselines ``NH-k`` (k random
neighbours), ``NH-ALL`` (as many random neighbours as GR-ALL removes) and
``CRIAGE-k`` (Pezeshkpour et al. 2019, sigmoid runs only; see ``criage.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from gr_core.criage import check_sigmoid
from gr_core.errors import ConfigError
from gr_core.explain import Explainer
from gr_core.influence import tail_probabilities
from gr_core.stack import train_stack

DEFAULT_METHODS = ("GR-1", "GR-10", "GR-ALL", "NH-1", "NH-10", "NH-ALL")
# The paper's Table 2 (sigmoid runs): each family at k = 1, 3, 5, 10.
TABLE2_METHODS = tuple(
    f"{family}-{k}" for family in ("NH", "CRIAGE", "GR-O", "GR") for k in (1, 3, 5, 10)
)
FIXED_SIZE_ONLY = ("GR-O-ALL", "FO-ALL", "CRIAGE-ALL")
KINDS = {"GR-O": "gr-o", "FO": "first-order", "CRIAGE": "criage"}
_METHOD = re.compile(r"^(GR|NH|GR-O|FO|CRIAGE)-(\d+|ALL)$")


@dataclass(frozen=True)
class Outcome:
    """One method on one query: what was removed and what retraining did."""

    query: int  # position among the evaluated queries
    head: str
    relation: str
    tail: str  # the explained prediction
    method: str
    removed: int
    probability_before: float
    probability_after: float
    predicted_after: float  # GR's own estimate: Pr before minus the summed influences
    top1_after: str
    weight_shift: float  # Euclidean distance of all retrained weights from the "before" ones

    @property
    def probability_dropped(self) -> bool:
        return self.probability_after < self.probability_before

    @property
    def top1_changed(self) -> bool:
        return self.top1_after != self.tail

    def to_row(self) -> dict:
        return {**asdict(self), "pd": self.probability_dropped, "tc": self.top1_changed}


def check_methods(methods, loss: str | None = None) -> tuple[str, ...]:
    """Validate method names such as GR-1, NH-ALL, GR-O-3, FO-10, CRIAGE-5.

    With the run's ``loss``, also check that CRIAGE can be used (sigmoid runs).
    """
    if not methods:
        raise ConfigError("choose at least one method")
    for method in methods:
        size = method.rsplit("-", 1)[-1]
        if not _METHOD.match(method) or size == "0" * len(size) or method in FIXED_SIZE_ONLY:
            raise ConfigError(
                f"unknown method {method!r}; use GR-k, NH-k, GR-ALL, NH-ALL, GR-O-k, "
                "FO-k or CRIAGE-k (k at least 1)"
            )
        if loss is not None and method.startswith("CRIAGE"):
            check_sigmoid(loss)
    return tuple(methods)


def removal_sets(explainer: Explainer, head: int, relation: int, methods, seed: int):
    """Return ``(tail, Pr before, {method: (ids, GR's predicted Pr after)})`` for one query."""
    ranked = explainer.explain(head, relation, method="gr", k=10**9)
    ids = torch.tensor([row.triple_index for row in ranked.rows], dtype=torch.int64)
    influence = torch.tensor([row.influence for row in ranked.rows], dtype=torch.float64)
    positive = int((influence > 0).sum())
    shuffled = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))]

    sets = {}
    for method in methods:
        family, size = method.rsplit("-", 1)
        count = positive if size == "ALL" else int(size)
        if family == "GR":
            chosen, estimate = ids[:count], float(influence[:count].sum())
        elif family == "NH":
            chosen, estimate = shuffled[:count], float("nan")
        else:
            rows = explainer.explain(head, relation, ranked.tail, method=KINDS[family],
                                     k=count).rows  # fmt: skip
            chosen = torch.tensor([row.triple_index for row in rows], dtype=torch.int64)
            estimate = sum(row.influence for row in rows)
        sets[method] = (chosen, ranked.probability - estimate)
    return ranked.tail, ranked.probability, sets


def evaluate(
    run,
    dataset,
    explainer: Explainer,
    queries: torch.Tensor,
    methods=DEFAULT_METHODS,
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
    numbers: list[int] | None = None,
) -> list[Outcome]:
    """Explain, remove and retrain for every query (n, 2) of ``(head, relation)`` ids.

    All retrainings of all queries run in one stack (split into groups that fit
    in memory). Returns one outcome per query and method, queries in order.
    ``numbers`` (default 0..n-1) name the queries in the outcomes and seed their
    random baselines, so a query draws the same baseline in any batch.
    """
    methods = check_methods(methods, run.train_config.loss)
    numbers = list(range(len(queries))) if numbers is None else list(numbers)
    plans = [
        removal_sets(explainer, int(head), int(relation), methods, seed + number)
        for number, (head, relation) in zip(numbers, queries.tolist(), strict=True)
    ]

    # Member 0 removes nothing; then one member per (query, method).
    masks = torch.zeros(1 + len(plans) * len(methods), len(dataset.train), dtype=torch.bool)
    for position, (_, _, sets) in enumerate(plans):
        for offset, method in enumerate(methods):
            masks[1 + position * len(methods) + offset, sets[method][0]] = True
    epochs = run.config["result"]["kept_epoch"]
    models = train_stack(dataset, run.train_config.replace(ledger="off"), masks, epochs,
                         on_step=on_step)  # fmt: skip

    base = models[0]
    outcomes = []
    for position, ((head, relation), (tail, _, sets)) in enumerate(
        zip(queries.tolist(), plans, strict=True)
    ):
        before = float(tail_probabilities(models[0], head, relation)[tail])
        for offset, method in enumerate(methods):
            model = models[1 + position * len(methods) + offset]
            after = tail_probabilities(model, head, relation).cpu()
            outcomes.append(
                Outcome(
                    query=numbers[position],
                    head=explainer.entities[head],
                    relation=explainer.relations[relation],
                    tail=explainer.entities[tail],
                    method=method,
                    removed=len(sets[method][0]),
                    probability_before=before,
                    probability_after=float(after[tail]),
                    predicted_after=sets[method][1],
                    top1_after=explainer.entities[
                        explainer.best_unknown_tail(head, relation, after)
                    ],
                    weight_shift=_distance(model, base),
                )
            )
    return outcomes


def _distance(model, other) -> float:
    entity = (model.entity - other.entity).pow(2).sum()
    relation = (model.relation - other.relation).pow(2).sum()
    return float((entity + relation).sqrt())


def approximation(outcomes: list[Outcome], method: str = "GR-1") -> dict:
    """Return how well GR's predicted probability after removal matches retraining.

    ``pearson``: correlation of GR's ``Pr before - influence`` with the retrained
    probability over the queries (the paper's Figure 2). ``lipschitz``: the
    empirical Lipschitz constant of the prediction in the weights,
    ``max |Pr before - Pr retrained| / ||w - w_retrained||`` over the queries:
    how far one removal can move a prediction per unit of weight change.
    """
    chosen = [o for o in outcomes if o.method == method]
    if len(chosen) < 2:
        return {"method": method, "n": len(chosen), "pearson": float("nan"),
                "lipschitz": float("nan"), "mean_abs_error": float("nan")}  # fmt: skip
    predicted = torch.tensor([o.predicted_after for o in chosen], dtype=torch.float64)
    retrained = torch.tensor([o.probability_after for o in chosen], dtype=torch.float64)
    drops = torch.tensor([abs(o.probability_before - o.probability_after) for o in chosen])
    shifts = torch.tensor([o.weight_shift for o in chosen], dtype=torch.float64)
    moved = shifts > 0
    return {
        "method": method,
        "n": len(chosen),
        "pearson": float(torch.corrcoef(torch.stack((predicted, retrained)))[0, 1]),
        "lipschitz": float((drops[moved] / shifts[moved]).max()) if moved.any() else 0.0,
        "mean_abs_error": float((predicted - retrained).abs().mean()),
    }


def summarise(outcomes: list[Outcome]) -> dict[str, dict]:
    """Return ``{method: {"pd": %, "tc": %, "n": queries, "removed": mean}}`` in method order."""
    summary: dict[str, dict] = {}
    for method in dict.fromkeys(outcome.method for outcome in outcomes):
        chosen = [outcome for outcome in outcomes if outcome.method == method]
        summary[method] = {
            "pd": 100.0 * sum(o.probability_dropped for o in chosen) / len(chosen),
            "tc": 100.0 * sum(o.top1_changed for o in chosen) / len(chosen),
            "n": len(chosen),
            "removed": sum(o.removed for o in chosen) / len(chosen),
        }
    return summary


def randomization_test(
    first: list[bool], second: list[bool], trials: int = 10_000, seed: int = 0
) -> float:
    """Return the p-value that two methods' paired outcomes differ (approximate randomization).

    Under the null hypothesis the two outcomes of a query are exchangeable; the
    test swaps them at random per query and counts how often the difference of
    means is at least the observed one (Noreen 1989).
    """
    a = torch.tensor(first, dtype=torch.float64)
    b = torch.tensor(second, dtype=torch.float64)
    observed = (a - b).mean().abs()
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (trials, len(a)), generator=generator) * 2 - 1
    shuffled = ((a - b) * signs).mean(1).abs()
    return float(((shuffled >= observed - 1e-12).sum() + 1) / (trials + 1))

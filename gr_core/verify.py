"""Check an explanation by retraining without it (RemOve And Retrain, one query).

GR claims that removing the triples it ranks highest lowers the probability of
the prediction. ``verify_explanation`` tests the claim directly: it retrains
the run's model from scratch without GR-1, GR-10 and GR-ALL (every neighbour
with a positive influence), and without as many random neighbours (NH-1,
NH-10, NH-ALL, the baseline), with the same seed, initial weights, negatives
and batch order (all six in one stack), and reports the prediction's
probability and the filtered top-1 before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gr_core.explain import Explainer
from gr_core.influence import tail_probabilities
from gr_core.models import KGEModel
from gr_core.stack import train_stack
from gr_core.threads import step_work, threads_for
from gr_core.training import Trainer

REMOVAL_SETS = ("GR-1", "GR-10", "GR-ALL", "NH-1", "NH-10", "NH-ALL")


@dataclass(frozen=True)
class RetrainingCheck:
    """The prediction of ``(head, relation, ?)`` after retraining without one set."""

    name: str  # e.g. "GR-10"
    removed: int  # training triples left out
    probability_before: float  # Pr(tail | head, relation) of the run's model
    probability_after: float  # ... of the retrained model
    top1_before: str
    top1_after: str  # filtered top-1 of the retrained model

    @property
    def probability_dropped(self) -> bool:
        return self.probability_after < self.probability_before

    @property
    def top1_changed(self) -> bool:
        return self.top1_after != self.top1_before


def removal_sets(
    explainer: Explainer, head: int, relation: int, tail: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Return the training-triple ids of each set in ``REMOVAL_SETS``.

    NH-k draws k neighbours uniformly without replacement (seeded); NH-ALL draws
    as many as GR-ALL holds.
    """
    ranked = explainer.explain(head, relation, tail, method="gr", k=10**9)
    ids = torch.tensor([row.triple_index for row in ranked.rows], dtype=torch.int64)
    positive = sum(row.influence > 0 for row in ranked.rows)
    shuffled = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))]
    return {
        "GR-1": ids[:1],
        "GR-10": ids[:10],
        "GR-ALL": ids[:positive],
        "NH-1": shuffled[:1],
        "NH-10": shuffled[:10],
        "NH-ALL": shuffled[:positive],
    }


def retrain_without(
    dataset, config, removed_ids: torch.Tensor, epochs: int, on_step=None
) -> KGEModel:
    """Train ``config`` for ``epochs`` epochs on the training triples minus ``removed_ids``."""
    removed = torch.zeros(len(dataset.train), dtype=torch.bool)
    removed[removed_ids] = True
    trainer = Trainer(
        dataset.train, dataset.num_entities, dataset.num_relations,
        config.replace(ledger="off"), removed=removed,
    )  # fmt: skip
    with threads_for(step_work(config.batch_size, dataset.num_entities, trainer.model.width)):
        for _ in range(epochs):
            for rows in trainer.epoch_batches():
                trainer.step(rows)
                if on_step:
                    on_step()
    return trainer.model


def verify_explanation(
    run,
    dataset,
    explainer: Explainer,
    head,
    relation,
    tail=None,
    sets: tuple[str, ...] = REMOVAL_SETS,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[RetrainingCheck]:
    """Retrain without each removal set; return one check per set, in ``sets`` order.

    All sets are retrained together, as one stack. ``on_progress(done, total)``
    counts its steps. Retraining repeats the run's settings for as many epochs as
    the run's model was trained (its kept epoch, with early stopping).
    """
    head, relation = explainer.entity_id(head), explainer.relation_id(relation)
    before = tail_probabilities(run.model, head, relation).cpu()
    tail = explainer.best_unknown_tail(head, relation, before) if tail is None else tail
    tail = explainer.entity_id(tail)
    chosen = removal_sets(explainer, head, relation, tail, seed)

    masks = torch.zeros(len(sets), len(dataset.train), dtype=torch.bool)
    for member, name in enumerate(sets):
        masks[member, chosen[name]] = True
    epochs = run.config["result"]["kept_epoch"]
    config = run.train_config.replace(ledger="off")
    models = train_stack(dataset, config, masks, epochs, on_step=on_progress)

    top1_before = explainer.entities[explainer.best_unknown_tail(head, relation, before)]
    checks = []
    for name, model in zip(sets, models, strict=True):
        after = tail_probabilities(model, head, relation).cpu()
        checks.append(
            RetrainingCheck(
                name=name,
                removed=len(chosen[name]),
                probability_before=float(before[tail]),
                probability_after=float(after[tail]),
                top1_before=top1_before,
                top1_after=explainer.entities[explainer.best_unknown_tail(head, relation, after)],
            )
        )
    return checks

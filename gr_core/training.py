"""Train a link predictor while recording the rollback ledger.

``Trainer`` owns the model, the optimizer and the ledger and takes one step at
a time (tests drive it step by step); ``train`` runs the epochs, validation,
early stopping and history around it.

Determinism: every random draw (initial weights, fixed negatives, batch
order) comes from one ``torch.Generator`` seeded with ``config.seed`` on the
CPU, so two runs with the same settings on the CPU give identical tensors.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gr_core.config import TrainConfig
from gr_core.errors import GRError
from gr_core.ledger import Ledger
from gr_core.losses import batch_gradients
from gr_core.memory import check_training_memory
from gr_core.metrics import TailFilter, evaluate
from gr_core.models import KGEModel, build_model, model_width
from gr_core.optim import build_optimizer
from gr_core.threads import step_work, threads_for

logger = logging.getLogger(__name__)


class TrainingDiverged(GRError):
    """The loss became NaN or infinite; lower the learning rate."""


def initial_tables(config: TrainConfig, num_entities: int, num_relations: int, generator):
    """Draw the initial entity and relation tables (float32, CPU) from ``generator``."""
    width = model_width(config.model, config.dim)
    tables = []
    for rows in (num_entities, num_relations):
        if config.init == "uniform":
            table = torch.rand(rows, width, generator=generator) * 2 - 1
        else:
            table = torch.randn(rows, width, generator=generator)
        tables.append(table * config.init_scale)
    return tables


def fixed_negatives(tails: torch.Tensor, num_entities: int, count: int, generator):
    """Draw ``count`` negative tails for each training triple, never its own tail.

    Returns (num_triples, 1 + count) int64: column 0 is the tail itself. When
    ``count`` reaches the number of other entities, every other entity is used
    (in id order); otherwise negatives are drawn uniformly, with replacement.
    """
    if count >= num_entities - 1:
        others = torch.arange(num_entities - 1).expand(len(tails), -1)
        negatives = others + (others >= tails[:, None]).long()
    else:
        negatives = torch.randint(0, num_entities - 1, (len(tails), count), generator=generator)
        negatives += (negatives >= tails[:, None]).long()
    return torch.cat((tails[:, None], negatives), dim=1)


def apply_constraint(entity: torch.Tensor, config: TrainConfig) -> None:
    """Project entity rows onto the unit sphere or into the max-norm ball, in place."""
    if config.constraint == "none":
        return
    norms = entity.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if config.constraint == "unit-norm":
        entity.div_(norms)
    else:
        entity.mul_((config.max_norm / norms).clamp(max=1.0))


def _own_updates(grads, step_scales, triples: torch.Tensor) -> torch.Tensor:
    """Scale each example's own-row gradients by its rows' step scales: (batch, 3, width).

    Written into one preallocated tensor: stacking three products costs more
    than the products themselves at Nations' and UMLS's sizes.
    """
    entity_scale, relation_scale = step_scales
    own = (grads.own_head, grads.own_relation, grads.own_tail)
    updates = own[0].new_empty(len(triples), 3, own[0].shape[1])
    if isinstance(entity_scale, float):  # SGD: one scale for every row
        for role, gradient in enumerate(own):
            torch.mul(gradient, entity_scale, out=updates[:, role])
        return updates
    scales = (entity_scale, relation_scale, entity_scale)
    for role, (gradient, scale) in enumerate(zip(own, scales, strict=True)):
        torch.mul(gradient, scale.index_select(0, triples[:, role]), out=updates[:, role])
    return updates


class Trainer:
    """One model, its optimizer and its ledger, advanced one batch at a time."""

    def __init__(
        self,
        train_triples: torch.Tensor,
        num_entities: int,
        num_relations: int,
        config: TrainConfig,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        removed: torch.Tensor | None = None,
    ):
        """``removed`` (num_train,) bool: training triples to leave out (retraining).

        Removal changes nothing else: the same initial weights, negatives and batch
        order are drawn, and each batch simply loses its removed triples.
        """
        self.config = config
        self.kept = None if removed is None else ~removed.to(torch.bool).cpu()
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(config.seed)

        entity, relation = initial_tables(config, num_entities, num_relations, self.generator)
        self.model: KGEModel = build_model(config.model, entity, relation).to(self.device, dtype)
        apply_constraint(self.model.entity, config)
        self.optimizer = build_optimizer(
            config.optimizer, [self.model.entity, self.model.relation], config.learning_rate
        )

        self.train_triples = train_triples.to(self.device)
        self.candidates = None
        if config.loss != "softmax" and config.num_negatives > 0:
            negatives = fixed_negatives(
                train_triples[:, 2], num_entities, config.num_negatives, self.generator
            )
            self.candidates = negatives.to(self.device)

        self.ledger = None
        if config.ledger != "off":
            width = self.model.width
            self.ledger = Ledger.zeros(len(train_triples), width, dtype, self.device)

    def epoch_batches(self) -> list[torch.Tensor]:
        """Return this epoch's batches of training-row indices, in a seeded random order."""
        order = torch.randperm(len(self.train_triples), generator=self.generator)
        batches = order.split(self.config.batch_size)
        if self.kept is not None:
            batches = [rows[self.kept[rows]] for rows in batches]
        return [rows.to(self.device) for rows in batches if len(rows)]

    def step(self, rows: torch.Tensor) -> float:
        """Take one optimizer step on training rows ``rows`` (batch,); return the loss."""
        triples = self.train_triples[rows]
        candidates = None if self.candidates is None else self.candidates[rows]
        grads = batch_gradients(self.model, triples, self.config.loss, candidates)
        if not math.isfinite(grads.loss):
            raise TrainingDiverged(
                f"the loss became {grads.loss} at step {self.optimizer.steps + 1}; "
                f"lower the learning rate (now {self.config.learning_rate})"
            )

        if self.config.ledger == "paper":
            before = self._own_rows(triples)
        step_scales = self.optimizer.step([grads.entity, grads.relation])
        apply_constraint(self.model.entity, self.config)

        if self.config.ledger == "gradient":
            self.ledger.record(rows, _own_updates(grads, step_scales, triples), alpha=-1.0)
        elif self.config.ledger == "paper":
            change = self._own_rows(triples).sub_(before)
            # A self-loop's head and tail are one row: record its change once, so a
            # rollback subtracts it once (the original code subtracted it twice).
            change[triples[:, 0] == triples[:, 2], 2] = 0
            self.ledger.record(rows, change)
        return grads.loss

    def _own_rows(self, triples: torch.Tensor) -> torch.Tensor:
        """Copy the head, relation and tail rows of ``triples``: (batch, 3, width)."""
        entity, relation = self.model.entity, self.model.relation
        return torch.stack(
            (entity[triples[:, 0]], relation[triples[:, 1]], entity[triples[:, 2]]), 1
        )


@dataclass
class TrainResult:
    """A trained model, its ledger (None when tracking was off) and its records."""

    model: KGEModel
    ledger: Ledger | None
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    epochs_run: int = 0
    kept_epoch: int = 0
    seconds: float = 0.0


def train(
    dataset,
    config: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train on ``dataset.train`` and evaluate on its valid and test splits.

    ``on_epoch(record)`` is called after every epoch with the history record;
    ``on_step(done, total)`` after every optimizer step (for progress bars).
    With early stopping, the returned model and ledger are those of the kept
    (best validation MRR) epoch: the ledger always belongs to the model.
    Raises ``InsufficientMemoryError`` first when the run would not fit in memory.
    """
    started = time.perf_counter()
    check_training_memory(config, dataset, device, dtype)
    trainer = Trainer(
        dataset.train, dataset.num_entities, dataset.num_relations, config, device, dtype
    )
    tail_filter = TailFilter(
        torch.cat((dataset.train, dataset.valid, dataset.test)),
        dataset.num_relations,
        tail_candidates=dataset.tail_candidates,
    )
    total_steps = config.epochs * math.ceil(len(dataset.train) / config.batch_size)
    logger.info(
        "training %s on %s: %d triples, %d epochs, %d steps",
        config.model,
        dataset.name,
        len(dataset.train),
        config.epochs,
        total_steps,
    )

    work = step_work(config.batch_size, dataset.num_entities, trainer.model.width)
    with threads_for(work):
        history, best = _run_epochs(trainer, dataset, tail_filter, total_steps, on_epoch, on_step)

    model, ledger, epoch = trainer.model, trainer.ledger, len(history)
    kept_epoch = epoch
    if best is not None:
        _, kept_epoch, model, ledger = best
    metrics = {
        "valid": evaluate(model, dataset.valid, tail_filter),
        "test": evaluate(model, dataset.test, tail_filter),
    }
    seconds = time.perf_counter() - started
    logger.info("done in %.1f s: test mrr %.3f", seconds, metrics["test"]["mrr"])
    return TrainResult(model, ledger, history, metrics, epoch, kept_epoch, seconds)


def _run_epochs(trainer: Trainer, dataset, tail_filter, total_steps, on_epoch, on_step):
    """Train epoch by epoch; return the history and the best (MRR, epoch, model, ledger)."""
    config = trainer.config
    history, best = [], None
    done = checks_without_gain = 0
    for epoch in range(1, config.epochs + 1):
        epoch_start, loss_sum, seen = time.perf_counter(), 0.0, 0
        for rows in trainer.epoch_batches():
            loss_sum += trainer.step(rows) * len(rows)
            seen += len(rows)
            done += 1
            if on_step:
                on_step(done, total_steps)

        record = {"epoch": epoch, "loss": loss_sum / seen}
        if config.eval_every and epoch % config.eval_every == 0:
            record["valid_mrr"] = evaluate(trainer.model, dataset.valid, tail_filter)["mrr"]
        record["seconds"] = round(time.perf_counter() - epoch_start, 4)
        history.append(record)
        _log_epoch(record, config.epochs)
        if on_epoch:
            on_epoch(record)

        if "valid_mrr" in record and config.early_stopping_patience:
            if best is None or record["valid_mrr"] > best[0]:
                best = (record["valid_mrr"], epoch, trainer.model.clone(), _clone(trainer.ledger))
                checks_without_gain = 0
            else:
                checks_without_gain += 1
                if checks_without_gain >= config.early_stopping_patience:
                    logger.info("early stop after epoch %d; keeping epoch %d", epoch, best[1])
                    break
    return history, best


def _clone(ledger: Ledger | None) -> Ledger | None:
    return None if ledger is None else ledger.clone()


def _log_epoch(record: dict, epochs: int) -> None:
    valid = f"  valid mrr {record['valid_mrr']:.3f}" if "valid_mrr" in record else ""
    logger.info("epoch %d/%d  loss %.4f%s", record["epoch"], epochs, record["loss"], valid)

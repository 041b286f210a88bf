"""Train many models at once, each without its own set of training triples.

A *stack* holds K copies of a model as tensors ``(K, rows, width)``. All members
start from the same initial weights and see the same batches in the same order
(the run's seed); member k skips the training triples its removal mask marks,
and its batch mean runs over the triples it keeps. A member therefore ends
where ``Trainer(..., removed=mask_k)`` alone would end, which is what RemOve And
Retrain needs, at a fraction of the cost of K separate trainings: one batched
matrix product per step instead of K small ones.

Gradients are written out by hand, as in ``losses.py``, with a leading member
dimension. No ledger is kept: retrained models are only evaluated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gr_core.config import TrainConfig
from gr_core.models import KGEModel, build_model
from gr_core.optim import SGD, Adagrad, Adam
from gr_core.training import apply_constraint, fixed_negatives, initial_tables

logger = logging.getLogger(__name__)

# Memory a group of members may use for weights, optimizer state and scores.
DEFAULT_MEMORY_BUDGET = 2 * 2**30


class StackAdam(Adam):
    """Adam over stacked members, each with its own step count.

    A member whose batch is empty takes no step: its moments do not decay and
    its step count does not grow, exactly as a model trained alone skips it.
    """

    def __init__(self, params, learning_rate, members: int):
        super().__init__(params, learning_rate)
        self.member_steps = torch.zeros(members, dtype=torch.int64)

    def step_members(self, grads: list[torch.Tensor], active: torch.Tensor) -> None:
        """Update the members where ``active`` (K,) is True; leave the others unchanged."""
        self.member_steps += active.long()
        steps = self.member_steps.clamp(min=1).to(torch.float64)
        first = (1 - self.beta1**steps).to(self.params[0].dtype)
        second = (1 - self.beta2**steps).to(self.params[0].dtype)
        keep = active.view(-1, 1, 1).to(self.params[0].device)
        for param, grad, exp_avg, exp_avg_sq in zip(
            self.params, grads, self.exp_avg, self.exp_avg_sq, strict=True
        ):
            exp_avg.copy_(torch.where(keep, exp_avg.lerp(grad, 1 - self.beta1), exp_avg))
            new_sq = exp_avg_sq * self.beta2 + (1 - self.beta2) * grad * grad
            exp_avg_sq.copy_(torch.where(keep, new_sq, exp_avg_sq))
            shape = (-1, 1, 1)
            denominator = (exp_avg_sq / second.view(shape).to(param.device)).sqrt_().add_(self.eps)
            update = self.learning_rate * exp_avg / first.view(shape).to(param.device) / denominator
            param.sub_(torch.where(keep, update, torch.zeros_like(update)))


class StackTrainer:
    """K members of one model, advanced together one batch at a time."""

    def __init__(
        self,
        train_triples: torch.Tensor,
        num_entities: int,
        num_relations: int,
        config: TrainConfig,
        removed: torch.Tensor,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        """``removed`` (K, num_train) bool: member k leaves out the triples marked in row k."""
        self.config, self.device = config, torch.device(device)
        self.members = removed.shape[0]
        self.kept = ~removed.to(torch.bool).cpu()
        self.generator = torch.Generator().manual_seed(config.seed)

        # The same draws, in the same order, as Trainer: weights, then negatives.
        entity, relation = initial_tables(config, num_entities, num_relations, self.generator)
        self.entity = entity.expand(self.members, -1, -1).to(self.device, dtype).contiguous()
        self.relation = relation.expand(self.members, -1, -1).to(self.device, dtype).contiguous()
        apply_constraint(self.entity, config)
        self.model_class = type(build_model(config.model, entity[:1], relation[:1]))
        params = [self.entity, self.relation]
        if config.optimizer == "adam":
            self.optimizer = StackAdam(params, config.learning_rate, self.members)
        else:
            self.optimizer = {"sgd": SGD, "adagrad": Adagrad}[config.optimizer](
                params, config.learning_rate
            )

        self.train_triples = train_triples.to(self.device)
        self.candidates = None
        if config.loss != "softmax" and config.num_negatives > 0:
            negatives = fixed_negatives(
                train_triples[:, 2], num_entities, config.num_negatives, self.generator
            )
            self.candidates = negatives.to(self.device)

    def epoch_batches(self) -> list[torch.Tensor]:
        """Return this epoch's batches, as ``Trainer`` draws them (before any removal)."""
        order = torch.randperm(len(self.train_triples), generator=self.generator)
        return list(order.split(self.config.batch_size))

    def step(self, rows: torch.Tensor) -> None:
        """Take one step on training rows ``rows`` (batch,) for every member that keeps any."""
        kept = self.kept[:, rows]  # (K, batch)
        counts = kept.sum(1)
        active = counts > 0
        if not active.any():
            return
        dtype = self.entity.dtype
        weights = (kept.to(dtype) / counts.clamp(min=1)[:, None].to(dtype)).to(self.device)
        entity_grad, relation_grad = self._gradients(rows.to(self.device), weights)
        if isinstance(self.optimizer, StackAdam):
            self.optimizer.step_members([entity_grad, relation_grad], active)
        else:  # a zero gradient leaves an SGD or Adagrad member unchanged
            self.optimizer.step([entity_grad, relation_grad])
        apply_constraint(self.entity, self.config)

    def _gradients(self, rows: torch.Tensor, weights: torch.Tensor):
        """Return the gradients (K, rows, width) of each member's weighted batch loss."""
        head, relation, tail = self.train_triples[rows].unbind(1)
        model = self.model_class
        head_rows, relation_rows = self.entity[:, head], self.relation[:, relation]
        query = model.query(head_rows, relation_rows)  # (K, batch, width)

        if self.candidates is None:
            scores = query @ self.entity.transpose(1, 2)  # (K, batch, num_entities)
            grad_scores = _score_gradient(scores, tail, self.config.loss) * weights[..., None]
            grad_query = grad_scores @ self.entity
            entity_grad = grad_scores.transpose(1, 2) @ query
        else:
            candidates = self.candidates[rows]  # (batch, 1 + negatives)
            candidate_rows = self.entity[:, candidates]  # (K, batch, C, width)
            scores = torch.einsum("kbw,kbcw->kbc", query, candidate_rows)
            own = torch.zeros_like(tail)
            grad_scores = _score_gradient(scores, own, self.config.loss) * weights[..., None]
            grad_query = torch.einsum("kbc,kbcw->kbw", grad_scores, candidate_rows)
            per_candidate = grad_scores[..., None] * query[:, :, None, :]
            entity_grad = torch.zeros_like(self.entity).index_add_(
                1, candidates.reshape(-1), per_candidate.reshape(self.members, -1, query.shape[-1])
            )

        grad_head, grad_relation = model.query_backward(head_rows, relation_rows, grad_query)
        entity_grad.index_add_(1, head, grad_head)
        relation_grad = torch.zeros_like(self.relation).index_add_(1, relation, grad_relation)
        return entity_grad, relation_grad

    def models(self) -> list[KGEModel]:
        """Return each member as a model (copies of its tables)."""
        return [
            self.model_class(self.entity[k].clone(), self.relation[k].clone())
            for k in range(self.members)
        ]


def _score_gradient(scores: torch.Tensor, own_column: torch.Tensor, loss: str) -> torch.Tensor:
    """Return each example's unweighted ``dloss/dscores`` (..., batch, candidates)."""
    target = F.one_hot(own_column, scores.shape[-1]).to(scores.dtype)
    if loss == "bce":
        return torch.sigmoid(scores) - target
    return torch.softmax(scores, dim=-1) - target


def member_bytes(config: TrainConfig, num_entities: int, num_relations: int, width: int) -> int:
    """Estimate one member's memory: weights, optimizer state, gradients and scores."""
    tables = (num_entities + num_relations) * width
    state = {"sgd": 0, "adagrad": 1, "adam": 2}[config.optimizer]
    candidates = config.num_negatives + 1 if config.num_negatives else num_entities
    scores = 3 * config.batch_size * candidates
    return 4 * (tables * (3 + state) + scores)


def train_stack(
    dataset,
    config: TrainConfig,
    removed: torch.Tensor,
    epochs: int | None = None,
    *,
    device: str | torch.device = "cpu",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_step: Callable[[int, int], None] | None = None,
) -> list[KGEModel]:
    """Retrain ``config`` once per row of ``removed`` (K, num_train); return K models.

    Members are trained in groups that fit ``memory_budget`` bytes. ``epochs``
    defaults to ``config.epochs``. ``on_step(done, total)`` counts steps over all
    groups.
    """
    epochs = config.epochs if epochs is None else epochs
    width = 2 * config.dim if config.model == "complex" else config.dim
    per_member = member_bytes(config, dataset.num_entities, dataset.num_relations, width)
    group = max(1, min(len(removed), memory_budget // per_member))
    steps_per_group = epochs * -(-len(dataset.train) // config.batch_size)
    total = steps_per_group * -(-len(removed) // group)

    models, done = [], 0
    for start in range(0, len(removed), group):
        stack = StackTrainer(
            dataset.train, dataset.num_entities, dataset.num_relations, config,
            removed[start : start + group], device,
        )  # fmt: skip
        for _ in range(epochs):
            for rows in stack.epoch_batches():
                stack.step(rows)
                done += 1
                if on_step:
                    on_step(done, total)
        models.extend(stack.models())
    logger.info("retrained %d models in groups of %d", len(models), group)
    return models

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
from gr_core.models import KGEModel, build_model, model_width
from gr_core.optim import SGD, Adagrad, Adam
from gr_core.training import apply_constraint, fixed_negatives, initial_tables

logger = logging.getLogger(__name__)

# Memory a group of members may use for weights, optimizer state and scores.
DEFAULT_MEMORY_BUDGET = 2 * 2**30
# Bytes of per-batch temporaries a group may create in one step. Past about the
# size of the caches a larger group is slower, not faster: on Nations with the
# default preset, 1000 members took 2.3 s an epoch as one group, 1.1 s in groups
# of 50.
WORKING_SET = 32 * 2**20


class StackAdam(Adam):
    """Adam over stacked members, each with its own step count.

    A member whose batch is empty takes no step: its moments do not decay and
    its step count does not grow, exactly as a model trained alone skips it.
    Its gradient is exactly zero (its batch weights are zero), so per-member
    factors suffice: decay 1 instead of beta, step size 0. Every operation works
    in place on preallocated buffers: the tables are walked about ten times per
    step, and fresh temporaries of their size would dominate the time.
    """

    def __init__(self, params, learning_rate, members: int):
        super().__init__(params, learning_rate)
        self.member_steps = torch.zeros(members, dtype=torch.int64)
        self.buffers = [torch.empty_like(p) for p in params]

    def step_members(self, grads: list[torch.Tensor], active: torch.Tensor) -> None:
        """Update the members where ``active`` (K,) is True; leave the others unchanged."""
        self.member_steps += active.long()
        steps = self.member_steps.clamp(min=1).to(torch.float64)
        dtype, device = self.params[0].dtype, self.params[0].device
        shape = (-1, 1, 1)

        def per_member(values: torch.Tensor) -> torch.Tensor:
            return values.to(device=device, dtype=dtype).view(shape)

        # Factors in float64 first: a float32 0.999 would drift from the single model.
        on = active.to(torch.float64)
        keep_first = per_member(1 - on * (1 - self.beta1))
        keep_second = per_member(1 - on * (1 - self.beta2))
        second_correction = per_member(1 - self.beta2**steps)
        step_size = per_member(-self.learning_rate * on / (1 - self.beta1**steps))
        for param, grad, exp_avg, exp_avg_sq, buffer in zip(
            self.params, grads, self.exp_avg, self.exp_avg_sq, self.buffers, strict=True
        ):
            exp_avg.mul_(keep_first).add_(grad, alpha=1 - self.beta1)
            exp_avg_sq.mul_(keep_second).addcmul_(grad, grad, value=1 - self.beta2)
            torch.div(exp_avg_sq, second_correction, out=buffer).sqrt_().add_(self.eps)
            torch.div(exp_avg, buffer, out=buffer).mul_(step_size)
            param.add_(buffer)


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
        order_seed: int | None = None,
    ):
        """``removed`` (K, num_train) bool: member k leaves out the triples marked in row k.

        ``order_seed`` draws the batch order from another seed while keeping the
        initial weights and negatives of ``config.seed``: retraining noise that
        comes from the order of the data alone.
        """
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
        # Negatives that are every other entity make the sampled loss the full one:
        # the stack then takes the cheaper all-entity path (no draws are skipped:
        # fixed_negatives draws nothing in that case).
        if config.loss != "softmax" and 0 < config.num_negatives < num_entities - 1:
            negatives = fixed_negatives(
                train_triples[:, 2], num_entities, config.num_negatives, self.generator
            )
            self.candidates = negatives.to(self.device)
        self.entity_grad = torch.zeros_like(self.entity)
        self.relation_grad = torch.zeros_like(self.relation)
        if order_seed is not None:
            self.generator = torch.Generator().manual_seed(order_seed)

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

        entity_grad, relation_grad = self.entity_grad, self.relation_grad.zero_()
        if self.candidates is None:
            scores = query @ self.entity.transpose(1, 2)  # (K, batch, num_entities)
            grad_scores = _score_gradient(scores, tail, self.config.loss) * weights[..., None]
            grad_query = grad_scores @ self.entity
            torch.bmm(grad_scores.transpose(1, 2), query, out=entity_grad)
        else:
            candidates = self.candidates[rows]  # (batch, 1 + negatives)
            candidate_rows = self.entity[:, candidates]  # (K, batch, C, width)
            scores = torch.einsum("kbw,kbcw->kbc", query, candidate_rows)
            own = torch.zeros_like(tail)
            grad_scores = _score_gradient(scores, own, self.config.loss) * weights[..., None]
            grad_query = torch.einsum("kbc,kbcw->kbw", grad_scores, candidate_rows)
            per_candidate = grad_scores[..., None] * query[:, :, None, :]
            entity_grad.zero_().index_add_(
                1, candidates.reshape(-1), per_candidate.reshape(self.members, -1, query.shape[-1])
            )

        grad_head, grad_relation = model.query_backward(head_rows, relation_rows, grad_query)
        entity_grad.index_add_(1, head, grad_head)
        relation_grad.index_add_(1, relation, grad_relation)
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
    """Estimate one member's memory: weights, optimizer state, gradients and temporaries."""
    tables = (num_entities + num_relations) * width
    state = {"sgd": 0, "adagrad": 1, "adam": 3}[config.optimizer]
    return 4 * tables * (2 + state) + step_bytes(config, num_entities, width)


def step_bytes(config: TrainConfig, num_entities: int, width: int) -> int:
    """Estimate the per-batch temporaries one member creates in a step."""
    candidates = config.num_negatives + 1 if config.num_negatives else num_entities
    rows = config.batch_size * (
        8 * width + 3 * candidates * (1 + width * bool(config.num_negatives))
    )
    return 4 * rows


def group_size(dataset, config: TrainConfig, members: int, memory_budget: int) -> int:
    """Return how many members ``train_stack`` trains together (memory and working set)."""
    width = model_width(config.model, config.dim)
    per_member = member_bytes(config, dataset.num_entities, dataset.num_relations, width)
    per_step = step_bytes(config, dataset.num_entities, width)
    return max(1, min(members, memory_budget // per_member, WORKING_SET // per_step))


def stack_steps(dataset, config: TrainConfig, members: int, epochs: int, memory_budget: int) -> int:
    """Return how many steps ``train_stack`` takes for ``members`` retrainings."""
    group = group_size(dataset, config, members, memory_budget)
    steps_per_group = epochs * -(-len(dataset.train) // config.batch_size)
    return steps_per_group * -(-members // group)


def train_stack(
    dataset,
    config: TrainConfig,
    removed: torch.Tensor,
    epochs: int | None = None,
    *,
    device: str | torch.device = "cpu",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    order_seed: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> list[KGEModel]:
    """Retrain ``config`` once per row of ``removed`` (K, num_train); return K models.

    Members are trained in groups that fit ``memory_budget`` bytes. ``epochs``
    defaults to ``config.epochs``. ``order_seed``: see ``StackTrainer``.
    ``on_step(done, total)`` counts steps over all groups.
    """
    epochs = config.epochs if epochs is None else epochs
    group = group_size(dataset, config, len(removed), memory_budget)
    total = stack_steps(dataset, config, len(removed), epochs, memory_budget)

    models, done = [], 0
    for start in range(0, len(removed), group):
        stack = StackTrainer(
            dataset.train, dataset.num_entities, dataset.num_relations, config,
            removed[start : start + group], device, order_seed=order_seed,
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

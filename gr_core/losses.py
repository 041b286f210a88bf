"""Losses and their gradients, split into each example's own-row parts.

For a batch of training triples ``(h_b, r_b, t_b)`` the loss is the mean over
the batch of a per-example loss on the example's candidate scores: every
entity (``candidates=None``) or the example's own tail followed by its fixed
negatives. The gradient is written out by hand (no autograd):

* ``G = dL/d scores`` (batch, candidates): ``(softmax - onehot) / batch`` for
  the softmax losses, ``(sigmoid - onehot) / batch`` for binary cross-entropy;
* the head and relation rows receive ``dL/dq`` through the model's query;
* every candidate entity row receives ``G[b, c] * q_b``. The part through the
  example's own tail column is the example's own tail gradient; the rest is
  the softmax *normalisation* part, which the ledger does not attribute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gr_core.models import KGEModel


@dataclass
class BatchGradients:
    """The gradient of one batch's loss, with each example's own-row parts.

    ``entity`` (num_entities, width) and ``relation`` (num_relations, width) are
    the full gradients. ``own_head``, ``own_relation`` and ``own_tail`` (batch,
    width) are the parts each example's own loss sends to its own head, relation
    and tail rows (the batch mean's ``1/batch`` included).
    """

    loss: float
    entity: torch.Tensor
    relation: torch.Tensor
    own_head: torch.Tensor
    own_relation: torch.Tensor
    own_tail: torch.Tensor


def score_gradient(scores: torch.Tensor, own_column: torch.Tensor, loss: str):
    """Return ``(mean loss, dL/dscores)`` for scores (batch, candidates).

    ``own_column`` (batch,) holds the column of each example's true tail.
    """
    batch = scores.shape[0]
    target = F.one_hot(own_column, scores.shape[1]).to(scores.dtype)
    if loss == "bce":
        value = F.binary_cross_entropy_with_logits(scores, target, reduction="sum") / batch
        grad = torch.sigmoid(scores) - target
    else:  # softmax over all entities or over the sampled candidates
        log_probs = torch.log_softmax(scores, dim=1)
        value = -log_probs.gather(1, own_column[:, None]).sum() / batch
        grad = log_probs.exp_() - target
    return float(value), grad / batch


def batch_gradients(
    model: KGEModel,
    triples: torch.Tensor,
    loss: str,
    candidates: torch.Tensor | None = None,
) -> BatchGradients:
    """Compute the loss gradient of a batch of triples (batch, 3).

    ``candidates`` (batch, 1 + negatives): column 0 is each example's tail, the
    rest its negatives; ``None`` scores every entity.
    """
    head, relation, tail = triples.unbind(1)
    head_rows, relation_rows = model.entity[head], model.relation[relation]
    query = model.query(head_rows, relation_rows)  # (batch, width)

    if candidates is None:
        scores = query @ model.entity.T  # (batch, num_entities)
        loss_value, grad_scores = score_gradient(scores, tail, loss)
        grad_query = grad_scores @ model.entity
        entity_grad = grad_scores.T @ query
        own_tail_weight = grad_scores.gather(1, tail[:, None])
    else:
        candidate_rows = model.entity[candidates]  # (batch, candidates, width)
        scores = torch.einsum("bw,bcw->bc", query, candidate_rows)
        own_column = torch.zeros_like(tail)
        loss_value, grad_scores = score_gradient(scores, own_column, loss)
        grad_query = torch.einsum("bc,bcw->bw", grad_scores, candidate_rows)
        per_candidate = grad_scores[:, :, None] * query[:, None, :]
        entity_grad = torch.zeros_like(model.entity)
        entity_grad.index_add_(0, candidates.reshape(-1), per_candidate.reshape(-1, model.width))
        own_tail_weight = grad_scores[:, :1]

    own_head, own_relation = model.query_backward(head_rows, relation_rows, grad_query)
    entity_grad.index_add_(0, head, own_head)
    relation_grad = torch.zeros_like(model.relation).index_add_(0, relation, own_relation)
    own_tail = own_tail_weight * query
    return BatchGradients(loss_value, entity_grad, relation_grad, own_head, own_relation, own_tail)

"""Tests for gr_core.losses: hand-written gradients against autograd, example by example."""

import pytest
import torch
import torch.nn.functional as F

from gr_core.losses import batch_gradients
from gr_core.training import fixed_negatives

MODEL_NAMES = ("distmult", "complex")
# (loss, number of fixed negatives or None for every entity); the tiny graph has
# five entities, so 4 negatives are all the others and 3 are drawn with replacement.
LOSS_SETTINGS = (
    ("softmax", None),
    ("sampled-softmax", 3),
    ("sampled-softmax", 4),
    ("bce", None),
    ("bce", 3),
)


def reference_query(model_name, head_rows, relation_rows):
    """Compute the query vector with torch complex numbers, not with gr_core."""
    if model_name == "distmult":
        return head_rows * relation_rows
    head_re, head_im = head_rows.chunk(2, dim=-1)
    relation_re, relation_im = relation_rows.chunk(2, dim=-1)
    product = torch.complex(head_re, head_im) * torch.complex(relation_re, relation_im)
    return torch.cat((product.real, product.imag), dim=-1)


def example_loss(scores, own_column, loss):
    """Return one example's loss from its candidate scores (candidates,)."""
    if loss == "bce":
        target = F.one_hot(torch.tensor(own_column), len(scores)).to(scores.dtype)
        return F.binary_cross_entropy_with_logits(scores, target, reduction="sum")
    return F.cross_entropy(scores[None], torch.tensor([own_column]))


def batch_candidates(triples, num_entities, count):
    """Return fixed candidates (batch, 1 + count), or None to score every entity."""
    if count is None:
        return None
    generator = torch.Generator().manual_seed(7)
    return fixed_negatives(triples[:, 2], num_entities, count, generator)


def with_column(scores, column, value):
    """Return scores (candidates,) with one column replaced by ``value``."""
    is_column = torch.arange(len(scores)) == column
    return torch.where(is_column, value, scores)


def own_rows_by_autograd(model_name, model, triples, loss, candidates):
    """Differentiate each example's loss alone; return head, relation, tail grads (batch, width)."""
    batch = len(triples)
    grads = {"head": [], "relation": [], "tail": []}
    for b, (h, r, t) in enumerate(triples.tolist()):
        ids = torch.arange(model.num_entities) if candidates is None else candidates[b]
        own_column = t if candidates is None else 0
        candidate_rows = model.entity[ids]  # (candidates, width), constant

        # Head and relation: leaf copies feeding the query only.
        head_leaf = model.entity[h].clone().requires_grad_()
        relation_leaf = model.relation[r].clone().requires_grad_()
        scores = candidate_rows @ reference_query(model_name, head_leaf, relation_leaf)
        value = example_loss(scores, own_column, loss) / batch
        grad_head, grad_relation = torch.autograd.grad(value, (head_leaf, relation_leaf))

        # Tail: a leaf copy of the tail row feeding its own score column only.
        tail_leaf = model.entity[t].clone().requires_grad_()
        query = reference_query(model_name, model.entity[h], model.relation[r])
        scores = with_column(candidate_rows @ query, own_column, tail_leaf @ query)
        value = example_loss(scores, own_column, loss) / batch
        (grad_tail,) = torch.autograd.grad(value, tail_leaf)

        for role, grad in zip(grads, (grad_head, grad_relation, grad_tail), strict=True):
            grads[role].append(grad)
    return tuple(torch.stack(grads[role]) for role in grads)


def batch_loss_by_torch(model_name, entity, relation, triples, loss, candidates):
    """Return the batch mean loss, built from torch's own loss functions."""
    head, relation_ids, tail = triples.unbind(1)
    query = reference_query(model_name, entity[head], relation[relation_ids])  # (batch, width)
    if candidates is None:
        scores, target = query @ entity.T, tail
    else:
        scores = torch.einsum("bw,bcw->bc", query, entity[candidates])
        target = torch.zeros_like(tail)
    if loss == "bce":
        one_hot = F.one_hot(target, scores.shape[1]).to(scores.dtype)
        summed = F.binary_cross_entropy_with_logits(scores, one_hot, reduction="sum")
        return summed / len(triples)
    return F.cross_entropy(scores, target)


def test_tiny_batch_has_a_self_loop_and_repeated_heads(tiny_graph):
    head, _, tail = tiny_graph.triples.unbind(1)
    assert (head == tail).any()
    assert len(head.unique()) < len(head)


@pytest.mark.parametrize(("loss", "count"), LOSS_SETTINGS)
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_own_row_gradients_match_autograd_per_example(
    model_name, loss, count, tiny_graph, make_model
):
    model = make_model(model_name, tiny_graph)
    triples = tiny_graph.triples
    candidates = batch_candidates(triples, tiny_graph.num_entities, count)

    grads = batch_gradients(model, triples, loss, candidates)
    head, relation, tail = own_rows_by_autograd(model_name, model, triples, loss, candidates)

    torch.testing.assert_close(grads.own_head, head, rtol=0, atol=1e-12)
    torch.testing.assert_close(grads.own_relation, relation, rtol=0, atol=1e-12)
    torch.testing.assert_close(grads.own_tail, tail, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("loss", "count"), LOSS_SETTINGS)
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_full_gradients_and_loss_match_autograd(model_name, loss, count, tiny_graph, make_model):
    model = make_model(model_name, tiny_graph)
    triples = tiny_graph.triples
    candidates = batch_candidates(triples, tiny_graph.num_entities, count)

    entity = model.entity.clone().requires_grad_()
    relation = model.relation.clone().requires_grad_()
    value = batch_loss_by_torch(model_name, entity, relation, triples, loss, candidates)
    entity_grad, relation_grad = torch.autograd.grad(value, (entity, relation))

    grads = batch_gradients(model, triples, loss, candidates)
    assert grads.loss == pytest.approx(value.item(), rel=1e-12)
    torch.testing.assert_close(grads.entity, entity_grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(grads.relation, relation_grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_normalisation_part_is_what_own_rows_leave_out(model_name, tiny_graph, make_model):
    # The full entity gradient minus the own head and tail parts is exactly the
    # gradient through the softmax normalisation: every column but the own tail.
    model = make_model(model_name, tiny_graph)
    triples = tiny_graph.triples
    head, relation, tail = triples.unbind(1)
    grads = batch_gradients(model, triples, "softmax")

    entity = model.entity.clone().requires_grad_()
    query = reference_query(model_name, model.entity[head], model.relation[relation])
    scores = query @ entity.T
    own = F.one_hot(tail, model.num_entities).bool()
    scores = torch.where(own, scores.detach(), scores)
    (normalisation,) = torch.autograd.grad(F.cross_entropy(scores, tail), entity)

    own_parts = torch.zeros_like(model.entity)
    own_parts.index_add_(0, head, grads.own_head).index_add_(0, tail, grads.own_tail)
    torch.testing.assert_close(grads.entity - own_parts, normalisation, rtol=0, atol=1e-12)
    assert normalisation.norm() > 1e-3

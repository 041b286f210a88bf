"""Tests for gr_core.models: scores two ways and the hand-written query gradients."""

import pytest
import torch

from gr_core.errors import ConfigError
from gr_core.models import MODELS, ComplEx, DistMult

MODEL_NAMES = ("distmult", "complex")


def as_complex(rows: torch.Tensor) -> torch.Tensor:
    """Read rows stored as [real half | imaginary half] as a complex tensor."""
    real, imaginary = rows.chunk(2, dim=-1)
    return torch.complex(real, imaginary)


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_score_triples_equals_score_all_tails_at_the_tail(model_name, tiny_graph, make_model):
    model = make_model(model_name, tiny_graph)
    head, relation, tail = tiny_graph.triples.unbind(1)

    all_tails = model.score_all_tails(head, relation)  # (n, num_entities)
    assert all_tails.shape == (len(tail), tiny_graph.num_entities)
    gathered = all_tails.gather(1, tail[:, None]).squeeze(1)

    scores = model.score_triples(tiny_graph.triples)
    torch.testing.assert_close(scores, gathered, rtol=0, atol=1e-12)


def test_distmult_score_is_the_trilinear_product(tiny_graph, make_model):
    model = make_model("distmult", tiny_graph)

    expected = torch.stack(
        [
            sum(model.entity[h, i] * model.relation[r, i] * model.entity[t, i] for i in range(3))
            for h, r, t in tiny_graph.triples.tolist()
        ]
    )
    torch.testing.assert_close(model.score_triples(tiny_graph.triples), expected)


def test_complex_score_is_real_part_of_hermitian_product(tiny_graph, make_model):
    model = make_model("complex", tiny_graph, dim=4)
    head, relation, tail = tiny_graph.triples.unbind(1)

    head_c = as_complex(model.entity[head])
    relation_c = as_complex(model.relation[relation])
    tail_c = as_complex(model.entity[tail])
    expected = (head_c * relation_c * tail_c.conj()).sum(-1).real

    torch.testing.assert_close(
        model.score_triples(tiny_graph.triples), expected, rtol=0, atol=1e-12
    )


def test_complex_score_is_not_symmetric(tiny_graph, make_model):
    # ComplEx can tell (h, r, t) from (t, r, h); DistMult cannot.
    complex_model = make_model("complex", tiny_graph)
    distmult = make_model("distmult", tiny_graph)
    reversed_triples = tiny_graph.triples[:, [2, 1, 0]]

    forward, backward = (
        complex_model.score_triples(t) for t in (tiny_graph.triples, reversed_triples)
    )
    assert not torch.allclose(forward, backward)
    torch.testing.assert_close(
        distmult.score_triples(tiny_graph.triples), distmult.score_triples(reversed_triples)
    )


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_query_backward_equals_autograd(model_name):
    model_class = MODELS[model_name]
    generator = torch.Generator().manual_seed(1)
    shape = (2, 3, 8)  # extra leading dims, then the width
    head_rows, relation_rows, grad_query = (
        torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3)
    )

    head_leaf = head_rows.clone().requires_grad_()
    relation_leaf = relation_rows.clone().requires_grad_()
    (model_class.query(head_leaf, relation_leaf) * grad_query).sum().backward()

    grad_head, grad_relation = model_class.query_backward(head_rows, relation_rows, grad_query)
    assert grad_head.shape == shape and grad_relation.shape == shape
    torch.testing.assert_close(grad_head, head_leaf.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_relation, relation_leaf.grad, rtol=0, atol=1e-12)


def test_complex_rejects_an_odd_width():
    with pytest.raises(ConfigError):
        ComplEx(torch.zeros(5, 3), torch.zeros(2, 3))


def test_tables_must_share_a_width():
    with pytest.raises(ConfigError):
        DistMult(torch.zeros(5, 4), torch.zeros(2, 3))

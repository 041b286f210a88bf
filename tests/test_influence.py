"""Vectorized rollback against the obvious per-neighbour loop, and its first-order form."""

import pytest
import torch

from gr_core.config import DEFAULT
from gr_core.influence import (
    first_order_influence,
    rollback_lower_bounds,
    rollback_probabilities,
    tail_probabilities,
    top_rollbacks,
)
from gr_core.ledger import Ledger
from gr_core.models import build_model, model_width
from gr_core.neighbours import NeighbourhoodIndex
from gr_core.training import train


def reference_rollback(model, ledger, train_triples, neighbour_ids, query):
    """Copy the model, subtract one neighbour's ledger, recompute: one neighbour at a time."""
    head, relation, tail = query
    after = []
    for i in neighbour_ids.tolist():
        rolled = model.clone()
        their_head, their_relation, their_tail = train_triples[i].tolist()
        # gather reads a mapped ledger too; (1, 3, width) in the model's dtype.
        gamma_head, gamma_relation, gamma_tail = ledger.gather(
            torch.tensor([i]), dtype=rolled.entity.dtype
        )[0]
        rolled.entity[their_head] -= gamma_head
        rolled.entity[their_tail] -= gamma_tail
        rolled.relation[their_relation] -= gamma_relation
        after.append(tail_probabilities(rolled, head, relation)[tail])
    return torch.stack(after)


def random_setting(model_name, seed, num_entities=7, num_relations=3, dim=4):
    """Return a float64 model, ledger and training triples with awkward neighbours.

    The triples include self-loops, triples whose tail is the query head (entity
    0) and triples that repeat the query's relation.
    """
    generator = torch.Generator().manual_seed(seed)
    width = model_width(model_name, dim)
    entity = torch.randn(num_entities, width, generator=generator, dtype=torch.float64)
    relation = torch.randn(num_relations, width, generator=generator, dtype=torch.float64)
    model = build_model(model_name, entity, relation)
    triples = torch.stack(
        (
            torch.randint(0, num_entities, (40,), generator=generator),
            torch.randint(0, num_relations, (40,), generator=generator),
            torch.randint(0, num_entities, (40,), generator=generator),
        ),
        dim=1,
    )
    special = torch.tensor([[0, 0, 0], [3, 1, 3], [2, 0, 0], [5, 2, 0], [0, 1, 4]])
    triples = torch.cat((triples, special))
    ledger = Ledger(torch.randn(len(triples), 3, width, generator=generator, dtype=torch.float64))
    return model, ledger, triples


@pytest.mark.parametrize("model_name", ["distmult", "complex"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_rollback_equals_the_reference(model_name, seed):
    model, ledger, triples = random_setting(model_name, seed)
    index = NeighbourhoodIndex(triples, model.num_entities, model.num_relations)
    generator = torch.Generator().manual_seed(100 + seed)
    for _ in range(4):
        query = tuple(
            int(torch.randint(0, n, (1,), generator=generator))
            for n in (model.num_entities, model.num_relations, model.num_entities)
        )
        query = (0, query[1], query[2])  # head 0: the special triples touch it
        neighbours = index.neighbours(*query)
        vectorized = rollback_probabilities(model, ledger, triples, neighbours, query)
        reference = reference_rollback(model, ledger, triples, neighbours, query)
        torch.testing.assert_close(vectorized, reference, rtol=0, atol=1e-6)

        # Not vacuous: the awkward neighbours are present and the rollbacks differ.
        kinds = triples[neighbours]
        assert (kinds[:, 0] == kinds[:, 2]).any()
        assert (kinds[:, 2] == 0).any()
        assert reference.std() > 1e-3


@pytest.mark.parametrize("model_name", ["distmult", "complex"])
def test_rollback_matches_the_reference_on_trained_nations(model_name, nations):
    result = train(nations, DEFAULT.replace(model=model_name, epochs=5), dtype=torch.float64)
    index = NeighbourhoodIndex(nations.train, nations.num_entities, nations.num_relations)
    for head, relation, tail in nations.test[:3].tolist():
        neighbours = index.neighbours(head, relation, tail)
        query = (head, relation, tail)
        vectorized = rollback_probabilities(
            result.model, result.ledger, nations.train, neighbours, query
        )
        reference = reference_rollback(
            result.model, result.ledger, nations.train, neighbours, query
        )
        torch.testing.assert_close(vectorized, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("chunk_size", [1, 3, 17, 1000])
def test_chunk_size_does_not_change_the_result(chunk_size):
    model, ledger, triples = random_setting("complex", 5)
    neighbours = torch.arange(len(triples))
    query = (0, 1, 4)
    whole = rollback_probabilities(model, ledger, triples, neighbours, query, chunk_size=10**6)
    chunked = rollback_probabilities(model, ledger, triples, neighbours, query, chunk_size)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model_name", ["distmult", "complex"])
def test_first_order_is_the_derivative_of_the_rollback(model_name):
    """For a ledger scaled by a tiny eps, (p - p_after) / eps -> grad p . gamma."""
    model, ledger, triples = random_setting(model_name, 3)
    neighbours = torch.arange(len(triples))
    query = (0, 1, 4)
    probability = tail_probabilities(model, 0, 1)[4]
    eps = 1e-6
    scaled = Ledger(ledger.table * eps)
    after = rollback_probabilities(model, scaled, triples, neighbours, query)
    finite_difference = (probability - after) / eps

    first_order = first_order_influence(model, ledger, triples, neighbours, query)
    torch.testing.assert_close(first_order, finite_difference, rtol=1e-4, atol=1e-7)
    assert first_order.abs().max() > 1e-3


def test_rollback_of_an_empty_neighbourhood_is_empty():
    model, ledger, triples = random_setting("distmult", 0)
    empty = torch.zeros(0, dtype=torch.int64)
    assert rollback_probabilities(model, ledger, triples, empty, (0, 0, 1)).shape == (0,)


# ---- bounds and the top k without rolling back every neighbour ---------------------------


@pytest.mark.parametrize("model_name", ["distmult", "complex"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_lower_bounds_never_exceed_the_rollback(model_name, seed, scale):
    model, ledger, triples = random_setting(model_name, seed)
    ledger = Ledger(ledger.table * scale)
    neighbours = torch.arange(len(triples))  # self-loops and triples at the query head too
    for query in [(0, 0, 4), (0, 1, 0), (3, 1, 3), (5, 2, 1)]:
        bounds = rollback_lower_bounds(model, ledger, triples, neighbours, query)
        exact = rollback_probabilities(model, ledger, triples, neighbours, query)
        assert (bounds <= exact * (1 + 1e-12)).all(), (bounds - exact).max()


@pytest.mark.parametrize("model_name", ["distmult", "complex"])
def test_lower_bounds_close_in_on_the_rollback_of_a_small_ledger(model_name):
    """The bound's slack is second order in the ledger: a tiny ledger gives a tight bound."""
    model, ledger, triples = random_setting(model_name, 4)
    neighbours = torch.arange(len(triples))
    query = (0, 1, 4)
    gaps = []
    for scale in (1e-2, 1e-3):
        scaled = Ledger(ledger.table * scale)
        exact = rollback_probabilities(model, scaled, triples, neighbours, query)
        bounds = rollback_lower_bounds(model, scaled, triples, neighbours, query)
        gaps.append(float(((exact - bounds) / exact).max()))
    assert gaps[1] < 1e-2
    assert gaps[1] < gaps[0] / 10  # shrinks faster than the ledger


@pytest.mark.parametrize("model_name", ["distmult", "complex"])
def test_lower_bounds_are_tight_for_a_confident_prediction(model_name):
    """Where Pr is concentrated on one tail, the range alone is loose; the variance is not."""
    model, ledger, triples = random_setting(model_name, 5, num_entities=30, dim=8)
    entity = model.entity.clone()
    query_vector = model.query(entity[0], model.relation[1])
    entity[4] = 3 * query_vector / query_vector.norm()  # tail 4 lines up with the query
    model = build_model(model_name, entity, model.relation)
    assert tail_probabilities(model, 0, 1)[4] > 0.7
    ledger = Ledger(ledger.table * 0.05)
    neighbours = torch.arange(len(triples))
    exact = rollback_probabilities(model, ledger, triples, neighbours, (0, 1, 4))
    bounds = rollback_lower_bounds(model, ledger, triples, neighbours, (0, 1, 4))
    assert (bounds <= exact * (1 + 1e-12)).all()
    assert ((exact - bounds) / exact).max() < 0.02  # the range alone leaves 0.18 to 0.96


@pytest.mark.parametrize("model_name", ["distmult", "complex"])
def test_lower_bounds_hold_on_trained_nations(model_name, nations):
    result = train(nations, DEFAULT.replace(model=model_name, epochs=5))
    index = NeighbourhoodIndex(nations.train, nations.num_entities, nations.num_relations)
    for query in nations.test[:5].tolist():
        neighbours = index.neighbours(*query)
        args = (result.model, result.ledger, nations.train, neighbours, tuple(query))
        exact = rollback_probabilities(*args).double()
        bounds = rollback_lower_bounds(*args)
        assert (bounds <= exact + 1e-6 * exact.max()).all()  # float32 rollback


def full_top(after: torch.Tensor, k: int) -> list[int]:
    """Positions of the k lowest probabilities after rollback, ties in position order."""
    return torch.sort(after, stable=True).indices[:k].tolist()


@pytest.mark.parametrize("model_name", ["distmult", "complex"])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_rollbacks_finds_the_same_top_k(model_name, k):
    model, ledger, triples = random_setting(model_name, 6)
    ledger = Ledger(ledger.table * 0.3)
    neighbours = torch.arange(len(triples))
    for query in [(0, 0, 4), (0, 1, 0), (2, 2, 6)]:
        exact = rollback_probabilities(model, ledger, triples, neighbours, query)
        positions, after = top_rollbacks(model, ledger, triples, neighbours, query, k, 2)
        found = positions[full_top(after, k)].tolist()
        assert found == full_top(exact, k)
        torch.testing.assert_close(after, exact[positions].double(), rtol=0, atol=1e-12)
        assert positions.tolist() == sorted(positions.tolist())


def test_top_rollbacks_skips_neighbours_on_trained_nations(nations):
    """On a trained model the bound rules most neighbours out of the top 10."""
    result = train(nations, DEFAULT)
    index = NeighbourhoodIndex(nations.train, nations.num_entities, nations.num_relations)
    skipped = []
    for query in nations.test[:10].tolist():
        neighbours = index.neighbours(*query)
        args = (result.model, result.ledger, nations.train, neighbours, tuple(query))
        exact = rollback_probabilities(*args)
        positions, after = top_rollbacks(*args, k=10, chunk_size=8)
        assert positions[full_top(after, 10)].tolist() == full_top(exact, 10)
        skipped.append(1 - len(positions) / len(neighbours))
    assert max(skipped) > 0.3, skipped

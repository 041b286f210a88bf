"""Tests for gr_core.metrics: filtered ranks against a brute-force loop, and MRR/Hits@k."""

import math

import pytest
import torch

from gr_core.config import DEFAULT
from gr_core.metrics import TailFilter, filtered_ranks, ranking_metrics
from gr_core.models import DistMult
from gr_core.training import train


def known_tails_by_query(triples):
    """Map each (head, relation) to the set of its known tails, in plain Python."""
    known = {}
    for head, relation, tail in triples.tolist():
        known.setdefault((head, relation), set()).add(tail)
    return known


def brute_force_rank(model, head, relation, answer, known_tails):
    """Rank ``answer`` among all entities by a loop: 1 + higher + ties / 2."""
    candidates = torch.tensor([[head, relation, e] for e in range(model.num_entities)])
    scores = model.score_triples(candidates).tolist()
    higher = ties = 0
    for entity, score in enumerate(scores):
        if entity == answer or entity in known_tails:
            continue
        higher += score > scores[answer]
        ties += score == scores[answer]
    return 1 + higher + ties / 2


def brute_force_ranks(model, triples, known):
    return torch.tensor(
        [brute_force_rank(model, h, r, t, known.get((h, r), set())) for h, r, t in triples.tolist()]
    )


def unfiltered_counts(triples, known, num_entities):
    """Count, per test triple, the candidates left after filtering (the answer included)."""
    counts = []
    for head, relation, tail in triples.tolist():
        others = known.get((head, relation), set()) - {tail}
        counts.append(num_entities - len(others))
    return torch.tensor(counts, dtype=torch.float32)


@pytest.fixture(scope="module")
def all_known(nations):
    return torch.cat((nations.train, nations.valid, nations.test))


@pytest.fixture(scope="module")
def trained_model(nations):
    # float64, so the matrix product and the per-triple sums round alike.
    return train(nations, DEFAULT.replace(epochs=10)).model.to(dtype=torch.float64)


@pytest.mark.parametrize("batch_size", [1024, 16])
def test_filtered_ranks_match_brute_force_on_a_trained_model(
    batch_size, trained_model, nations, all_known
):
    tail_filter = TailFilter(all_known, nations.num_relations)
    ranks = filtered_ranks(trained_model, nations.test, tail_filter, batch_size=batch_size)
    expected = brute_force_ranks(trained_model, nations.test, known_tails_by_query(all_known))

    torch.testing.assert_close(ranks, expected.to(ranks.dtype), rtol=0, atol=0)
    assert (ranks > 1).any() and (ranks == 1).any()


def test_all_tied_scores_give_the_middle_rank(nations, all_known):
    width = 4
    model = DistMult(
        torch.zeros(nations.num_entities, width), torch.zeros(nations.num_relations, width)
    )
    tail_filter = TailFilter(all_known, nations.num_relations)
    known = known_tails_by_query(all_known)

    ranks = filtered_ranks(model, nations.test, tail_filter)
    counts = unfiltered_counts(nations.test, known, nations.num_entities)
    torch.testing.assert_close(ranks, 1 + (counts - 1) / 2, rtol=0, atol=0)
    torch.testing.assert_close(ranks, brute_force_ranks(model, nations.test, known), rtol=0, atol=0)


def test_nan_embeddings_get_the_worst_rank(nations, all_known):
    width = 4
    entity = torch.full((nations.num_entities, width), float("nan"))
    model = DistMult(entity, torch.ones(nations.num_relations, width))
    tail_filter = TailFilter(all_known, nations.num_relations)
    known = known_tails_by_query(all_known)

    ranks = filtered_ranks(model, nations.test, tail_filter)
    torch.testing.assert_close(ranks, unfiltered_counts(nations.test, known, nations.num_entities))
    assert ranking_metrics(ranks)["hits@1"] < 0.01


def test_tail_filter_mask_matches_a_set_lookup(nations, all_known):
    tail_filter = TailFilter(all_known, nations.num_relations)
    known = known_tails_by_query(all_known)
    queries = [(h, r) for h in range(nations.num_entities) for r in range(nations.num_relations)]
    head, relation = torch.tensor(queries).unbind(1)

    mask = tail_filter.mask(head, relation, nations.num_entities)
    expected = torch.tensor(
        [[e in known.get(query, set()) for e in range(nations.num_entities)] for query in queries]
    )
    assert torch.equal(mask, expected)
    assert expected.any(1).any() and not expected.any(1).all()  # known and unknown queries


def test_ranking_metrics_on_hand_computed_ranks():
    metrics = ranking_metrics(torch.tensor([1.0, 2.0, 4.0, 20.0]))
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 20) / 4)
    assert metrics["hits@1"] == pytest.approx(0.25)
    assert metrics["hits@3"] == pytest.approx(0.5)
    assert metrics["hits@10"] == pytest.approx(0.75)


def test_ranking_metrics_of_no_ranks_are_nan():
    metrics = ranking_metrics(torch.zeros(0))
    assert all(math.isnan(value) for value in metrics.values())


def test_candidates_on_a_hand_scored_tiny_graph(tiny_graph):
    # dim 1, every relation 1: score(h, r, t) = e_h * e_t, so alice (1) scores tails 1..5.
    entity = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]])
    model = DistMult(entity, torch.ones(tiny_graph.num_relations, 1))
    query = torch.tensor([[0, 0, 1]])  # (alice, knows, bob): bob scores 2
    not_dave_or_erin = torch.tensor([True, True, True, False, False])

    everyone = TailFilter(tiny_graph.triples, tiny_graph.num_relations)
    candidates = TailFilter(tiny_graph.triples, tiny_graph.num_relations, not_dave_or_erin)
    assert filtered_ranks(model, query, everyone).tolist() == [4.0]  # carol, dave, erin ahead
    assert filtered_ranks(model, query, candidates).tolist() == [2.0]  # carol only
    with pytest.raises(ValueError, match="covers 5 entities"):
        candidates.mask(torch.tensor([0]), torch.tensor([0]), 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_candidate_ranks_match_brute_force_on_the_tiny_graph(tiny_graph, make_model, seed):
    model = make_model("complex", tiny_graph, seed=seed)
    allowed = torch.tensor([True, False, True, True, False])
    tail_filter = TailFilter(tiny_graph.triples, tiny_graph.num_relations, allowed)
    ranks = filtered_ranks(model, tiny_graph.triples, tail_filter)

    # The loop filters the other entities out like known tails; each answer stays.
    others = {1, 4}
    known = known_tails_by_query(tiny_graph.triples)
    left_out = {query: known.get(query, set()) | others for query in _queries(tiny_graph)}
    expected = brute_force_ranks(model, tiny_graph.triples, left_out).to(ranks.dtype)
    torch.testing.assert_close(ranks, expected, rtol=0, atol=0)
    answer_allowed = allowed[tiny_graph.triples[:, 2]]
    assert (ranks[answer_allowed] <= allowed.sum()).all() and (ranks <= allowed.sum() + 1).all()


def _queries(graph):
    return [(h, r) for h in range(graph.num_entities) for r in range(graph.num_relations)]

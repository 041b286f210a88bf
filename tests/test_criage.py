"""CRIAGE: the closed form against autograd, and its use in explanations and ROAR."""

import pytest
import torch

from gr_core.config import DEFAULT
from gr_core.criage import DAMPING, criage_influence, tail_hessian
from gr_core.errors import ConfigError
from gr_core.evaluation import run_evaluation
from gr_core.explain import Explainer
from gr_core.influence import tail_probabilities
from gr_core.roar import TABLE2_METHODS, check_methods, evaluate
from gr_core.runs import load_run_with_dataset, save_run
from gr_core.training import train

SIGMOID = DEFAULT.replace(loss="bce", epochs=5, dim=8)


@pytest.fixture(scope="module")
def sigmoid_run(tmp_path_factory, nations):
    path = tmp_path_factory.mktemp("runs") / "sigmoid"
    return save_run(path, nations, SIGMOID, train(nations, SIGMOID))


def bce_loss_in_tail(model, triples, tail, row):
    """The 1-vs-all sigmoid loss, as a function of the tail's row alone."""
    pairs = model.query(model.entity[triples[:, 0]], model.relation[triples[:, 1]])
    targets = (triples[:, 2] == tail).double()
    return torch.nn.functional.binary_cross_entropy_with_logits(
        pairs @ row, targets, reduction="sum"
    )


@pytest.mark.parametrize("name", ["distmult", "complex"])
def test_closed_form_matches_a_newton_step_by_autograd(name, tiny_graph, make_model):
    model = make_model(name, tiny_graph)
    triples, tail = tiny_graph.triples, 2  # carol: the tail of three training triples
    head, relation = 4, 1  # (erin, likes, ?): erin is not the tail
    candidates = torch.nonzero(triples[:, 2] == tail).flatten()

    # The Hessian two ways: by hand and by autograd, plus the damping.
    row = model.entity[tail].clone()
    auto = torch.autograd.functional.hessian(
        lambda e: bce_loss_in_tail(model, triples, tail, e), row
    )
    damping = DAMPING * float(auto.diagonal().mean()) + 1e-12
    hessian = auto + damping * torch.eye(len(auto), dtype=auto.dtype)
    assert torch.allclose(tail_hessian(model, triples, tail), hessian, atol=1e-10)

    # Removing d moves the tail row by H^-1 grad(loss_d): the Newton step without d.
    drop, after = criage_influence(model, triples, candidates, (head, relation, tail))
    target = model.query(model.entity[head][None], model.relation[relation][None])[0]
    for position, index in enumerate(candidates.tolist()):
        one = triples[index : index + 1]
        grad = torch.autograd.functional.jacobian(
            lambda e, one=one: bce_loss_in_tail(model, one, tail, e), row
        )
        shift = torch.linalg.solve(hessian, grad)
        assert float(drop[position]) == pytest.approx(-float(target @ shift), abs=1e-10)

        # The probability after: the whole softmax with the moved tail row.
        moved = model.clone()
        moved.entity[tail] += shift
        expected = tail_probabilities(moved, head, relation)[tail]
        assert float(after[position]) == pytest.approx(float(expected), abs=1e-10)


def test_only_tail_sharing_triples_are_scored(tiny_graph, make_model):
    model = make_model("distmult", tiny_graph)
    with pytest.raises(ConfigError, match="share the explained tail"):
        criage_influence(model, tiny_graph.triples, torch.tensor([0, 1]), (4, 1, 2))


def test_explanations_rank_tail_sharing_neighbours(sigmoid_run):
    explainer = Explainer(*load_run_with_dataset(sigmoid_run))
    explanation = explainer.explain("usa", "embassy", method="criage", k=1000)
    tail = explanation.tail
    assert explanation.rows and all(row.tail == tail for row in explanation.rows)
    same_tail = explainer.explain("usa", "embassy", method="gr-o", k=1000)
    assert {r.triple_index for r in explanation.rows} == {r.triple_index for r in same_tail.rows}
    influences = [row.influence for row in explanation.rows]
    assert influences == sorted(influences, reverse=True)
    assert all(
        row.influence == pytest.approx(explanation.probability - row.probability_after)
        for row in explanation.rows
    )


def test_criage_needs_a_sigmoid_run(tmp_path, nations):
    config = DEFAULT.replace(epochs=1, dim=4)
    path = save_run(tmp_path / "softmax", nations, config, train(nations, config))
    run, dataset = load_run_with_dataset(path)
    with pytest.raises(ConfigError, match="sigmoid"):
        Explainer(run, dataset).explain("usa", "embassy", method="criage")
    with pytest.raises(ConfigError, match="sigmoid"):
        check_methods(["CRIAGE-1"], run.train_config.loss)
    with pytest.raises(ConfigError, match="sigmoid"):
        run_evaluation(path, tmp_path / "eval", queries=1, methods=["CRIAGE-1"])
    assert not (tmp_path / "eval").exists()  # refused before anything was written


def test_roar_removes_criage_top_k(sigmoid_run):
    run, dataset = load_run_with_dataset(sigmoid_run)
    explainer = Explainer(run, dataset)
    queries = dataset.test[:2, :2]
    outcomes = evaluate(run, dataset, explainer, queries, ("CRIAGE-3", "GR-O-3"))
    for outcome in outcomes:
        assert outcome.removed == 3
        chosen = explainer.explain(outcome.head, outcome.relation, outcome.tail,
                                   method="criage", k=3)  # fmt: skip
        if outcome.method == "CRIAGE-3":
            expected = sum(row.influence for row in chosen.rows)
            assert outcome.predicted_after == pytest.approx(
                outcome.probability_before - expected, abs=1e-6
            )


def test_table2_layout(sigmoid_run, tmp_path):
    methods = [m for m in TABLE2_METHODS if m.endswith(("-1", "-3"))]
    run_evaluation(sigmoid_run, tmp_path / "eval", queries=2, methods=methods)
    table = (tmp_path / "eval" / "table.md").read_text()
    assert "| method | k = 1 | k = 3 |" in table
    for family in ("NH", "CRIAGE", "GR-O", "GR"):
        assert f"| {family} | " in table
    assert "GR-1 vs CRIAGE-1" in table and "GR-3 vs GR-O-3" in table

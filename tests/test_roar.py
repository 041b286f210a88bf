"""RemOve And Retrain: outcomes checked against single retrainings, summaries and the test."""

import pytest
import torch

from gr_core.config import DEFAULT
from gr_core.errors import ConfigError
from gr_core.explain import Explainer
from gr_core.influence import tail_probabilities
from gr_core.roar import (
    Outcome,
    approximation,
    check_methods,
    evaluate,
    randomization_test,
    summarise,
)
from gr_core.runs import load_run_with_dataset, save_run
from gr_core.training import train
from gr_core.verify import retrain_without

CONFIG = DEFAULT.replace(epochs=8, dim=32)
METHODS = ("GR-1", "GR-3", "GR-ALL", "NH-2", "NH-ALL", "GR-O-2", "FO-2")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, nations):
    path = tmp_path_factory.mktemp("runs") / "nations"
    save_run(path, nations, CONFIG, train(nations, CONFIG))
    run, dataset = load_run_with_dataset(path)
    explainer = Explainer(run, dataset)
    queries = dataset.test[:3, :2]
    return run, dataset, explainer, queries, evaluate(run, dataset, explainer, queries, METHODS)


def test_each_outcome_equals_a_single_retraining(evaluated):
    run, dataset, explainer, queries, outcomes = evaluated
    assert len(outcomes) == len(queries) * len(METHODS)
    for outcome in [o for o in outcomes if not o.method.startswith("NH")]:
        head, relation = queries[outcome.query].tolist()
        tail = explainer.entity_id(outcome.tail)
        chosen = chosen_ids(explainer, head, relation, tail, outcome)
        assert len(chosen) == outcome.removed
        model = retrain_without(dataset, run.train_config, chosen, CONFIG.epochs)
        after = float(tail_probabilities(model, head, relation)[tail])
        assert outcome.probability_after == pytest.approx(after, abs=1e-5)
        shift = torch.cat(((model.entity - run.model.entity).flatten(),
                           (model.relation - run.model.relation).flatten())).norm()  # fmt: skip
        assert outcome.weight_shift == pytest.approx(float(shift), rel=1e-4)


def chosen_ids(explainer, head, relation, tail, outcome):
    """Rebuild a method's removal set from the explainer, independently of roar.py."""
    family, size = outcome.method.rsplit("-", 1)
    ranked = explainer.explain(head, relation, tail, method="gr", k=10**9).rows
    if family == "GR":
        count = sum(r.influence > 0 for r in ranked) if size == "ALL" else int(size)
        return torch.tensor([r.triple_index for r in ranked[:count]])
    if family in ("GR-O", "FO"):
        kind = "gr-o" if family == "GR-O" else "first-order"
        rows = explainer.explain(head, relation, tail, method=kind, k=int(size)).rows
        return torch.tensor([r.triple_index for r in rows])
    raise ValueError(f"no independent rebuild for {outcome.method}")


def test_outcomes_are_about_the_filtered_top_prediction(evaluated):
    run, dataset, explainer, queries, outcomes = evaluated
    for outcome in outcomes:
        head, relation = queries[outcome.query].tolist()
        top = explainer.predict(head, relation, k=1)[0]
        assert outcome.tail == top.name
        assert outcome.probability_before == pytest.approx(top.probability, abs=1e-6)


def test_random_baselines_draw_neighbours_and_match_gr_all_in_size(evaluated):
    *_, outcomes = evaluated
    by_key = {(o.query, o.method): o for o in outcomes}
    for query in range(3):
        assert by_key[query, "NH-ALL"].removed == by_key[query, "GR-ALL"].removed
        assert by_key[query, "NH-2"].removed == 2


def test_gr_removes_probability_more_often_than_random(evaluated):
    *_, outcomes = evaluated
    summary = summarise(outcomes)
    assert summary["GR-ALL"]["pd"] == 100.0
    assert summary["GR-1"]["pd"] >= summary["NH-2"]["pd"] - 34  # 3 queries: one may differ


def test_summary_counts_by_hand():
    def outcome(method, before, after, top):
        return Outcome(0, "h", "r", "t", method, 1, before, after, before, top, 1.0)

    outcomes = [
        outcome("GR-1", 0.5, 0.2, "x"),  # drop, change
        outcome("GR-1", 0.5, 0.6, "t"),  # no drop, same
        outcome("NH-1", 0.5, 0.5, "t"),  # equal is not a drop
        outcome("NH-1", 0.5, 0.4, "t"),
    ]
    summary = summarise(outcomes)
    assert summary["GR-1"] == {"pd": 50.0, "tc": 50.0, "n": 2, "removed": 1.0}
    assert summary["NH-1"]["pd"] == 50.0 and summary["NH-1"]["tc"] == 0.0
    assert list(summary) == ["GR-1", "NH-1"]


def test_approximation_statistics_by_hand():
    def outcome(predicted, after, shift):
        return Outcome(0, "h", "r", "t", "GR-1", 1, 0.5, after, predicted, "t", shift)

    outcomes = [outcome(0.1, 0.2, 2.0), outcome(0.2, 0.3, 1.0), outcome(0.4, 0.45, 0.5)]
    fit = approximation(outcomes)
    predicted, retrained = [0.1, 0.2, 0.4], [0.2, 0.3, 0.45]
    mean_p, mean_r = sum(predicted) / 3, sum(retrained) / 3
    covariance = sum((p - mean_p) * (r - mean_r) for p, r in zip(predicted, retrained, strict=True))
    spread = (sum((p - mean_p) ** 2 for p in predicted)
              * sum((r - mean_r) ** 2 for r in retrained)) ** 0.5  # fmt: skip
    assert fit["pearson"] == pytest.approx(covariance / spread)
    assert fit["lipschitz"] == pytest.approx(max(0.3 / 2.0, 0.2 / 1.0, 0.05 / 0.5))
    assert fit["mean_abs_error"] == pytest.approx((0.1 + 0.1 + 0.05) / 3)
    assert fit["n"] == 3


def test_randomization_test_separates_different_methods():
    same = [True, False] * 20
    assert randomization_test(same, same, trials=2000) == 1.0
    better = [True] * 40
    worse = [False] * 30 + [True] * 10
    assert randomization_test(better, worse, trials=2000) < 0.01
    close = [True] * 21 + [False] * 19
    assert randomization_test(close, [False] + close[1:], trials=2000) > 0.5


@pytest.mark.parametrize("method", ["GR", "GR-x", "GR-O-ALL", "FO-ALL", "XX-1", "gr-1"])
def test_unknown_methods_are_rejected(method):
    with pytest.raises(ConfigError, match="unknown method"):
        check_methods([method])
    assert check_methods(["GR-1", "NH-ALL", "GR-O-3", "FO-10"]) == (
        "GR-1", "NH-ALL", "GR-O-3", "FO-10",
    )  # fmt: skip

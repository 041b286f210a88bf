"""Exact leave-one-out: rank statistics by hand, true drops against single retrainings."""

import json

import pytest
import torch

from gr_core.cli import main
from gr_core.config import DEFAULT, PRESETS
from gr_core.errors import ConfigError
from gr_core.explain import Explainer
from gr_core.influence import tail_probabilities
from gr_core.loo import (
    ESTIMATES,
    ORDER_SEED_STEP,
    agreement,
    leave_one_out,
    ledger_of_mode,
    ranks,
    spearman,
    summarise_loo,
)
from gr_core.runs import load_run_with_dataset, save_run
from gr_core.stack import train_stack
from gr_core.training import train
from gr_core.verify import retrain_without

CONFIG = DEFAULT.replace(epochs=3, dim=8)


@pytest.fixture(scope="module")
def run_path(tmp_path_factory, nations):
    path = tmp_path_factory.mktemp("runs") / "nations"
    return save_run(path, nations, CONFIG, train(nations, CONFIG))


def test_ranks_average_ties_and_spearman_matches_the_formula():
    assert ranks(torch.tensor([3.0, 1.0, 2.0, 1.0])).tolist() == [4.0, 1.5, 3.0, 1.5]
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    y = torch.tensor([2.0, 1.0, 4.0, 3.0, 5.0])
    d2 = ((ranks(x) - ranks(y)) ** 2).sum()
    assert spearman(x, y) == pytest.approx(1 - 6 * float(d2) / (5 * (25 - 1)))
    assert spearman(x, -x) == pytest.approx(-1.0)


def test_agreement_by_hand():
    truth = torch.tensor([0.9, 0.1, 0.5, 0.3])
    result = agreement(torch.tensor([0.8, 0.2, 0.1, 0.4]), truth, k=2)
    assert result["top1"] is True
    assert result["top2"] == 0.5  # {0, 3} against {0, 2}
    assert result["top1_in_top2"] is True
    assert agreement(torch.tensor([0.0, 0.9, 0.1, 0.4]), truth, k=2)["top1_in_top2"] is False


def test_true_drops_equal_single_retrainings(run_path):
    run, dataset = load_run_with_dataset(run_path)
    explainer = Explainer(run, dataset)
    queries = dataset.test[:2, :2]
    records = leave_one_out(run, dataset, explainer, queries)
    assert len(records) == 2 and all(r["neighbours"] > 100 for r in records)

    # Recompute a few neighbours' true drops one retraining at a time; the second
    # query shares retrainings with the first, so check it too.
    for record, (head, relation) in zip(records, queries.tolist(), strict=True):
        tail = explainer.entity_id(record["tail"])
        ids = explainer.index.neighbours(head, relation, tail)
        assert record["triples"] == ids.tolist()
        base = float(tail_probabilities(run.model, head, relation)[tail])
        assert record["probability"] == pytest.approx(base, abs=1e-6)
        for position in (0, len(ids) // 2, len(ids) - 1):
            removed = torch.tensor([int(ids[position])])
            model = retrain_without(dataset, run.train_config, removed, CONFIG.epochs)
            drop = base - float(tail_probabilities(model, head, relation)[tail])
            assert record["true_drop"][position] == pytest.approx(drop, abs=1e-5)
        assert set(record["estimates"]) == set(ESTIMATES)
        for values in record["estimates"].values():
            assert -1.0 <= values["spearman"] <= 1.0
        assert record["noise_floor"]["seed"] > 0 and record["noise_floor"]["order"] > 0


def test_gr_estimate_matches_the_explainer(run_path):
    run, dataset = load_run_with_dataset(run_path)
    explainer = Explainer(run, dataset)
    (record,) = leave_one_out(run, dataset, explainer, dataset.test[3:4, :2])
    ranked = explainer.explain(record["head"], record["relation"], record["tail"], k=10**9)
    by_id = {row.triple_index: row.influence for row in ranked.rows}
    estimate = torch.tensor([by_id[i] for i in record["triples"]])
    truth = torch.tensor(record["true_drop"])
    assert record["estimates"]["gr"] == pytest.approx(agreement(estimate, truth))


def test_a_second_ledger_of_the_same_training(tmp_path, nations):
    config = PRESETS["paper"].replace(epochs=1)
    path = save_run(tmp_path / "paper", nations, config, train(nations, config))
    run, dataset = load_run_with_dataset(path)
    assert run.config["training"]["ledger"] == "gradient"
    ledger = ledger_of_mode(run, dataset, "paper")
    # Another record of the same steps.
    assert not torch.allclose(ledger.table, run.ledger.to_memory().table)
    records = leave_one_out(run, dataset, Explainer(run, dataset), dataset.test[:1, :2],
                            ledgers={"paper": ledger})  # fmt: skip
    assert set(records[0]["estimates"]) == {*ESTIMATES, "gr-paper"}

    # A run whose model the setup does not reproduce is refused.
    run.model.entity[0] += 1.0
    with pytest.raises(ConfigError, match="did not reproduce"):
        ledger_of_mode(run, dataset, "paper")


def test_truth_averaged_over_batch_orders(run_path):
    run, dataset = load_run_with_dataset(run_path)
    explainer = Explainer(run, dataset)
    queries = dataset.test[5:6, :2]
    (single,) = leave_one_out(run, dataset, explainer, queries)
    (averaged,) = leave_one_out(run, dataset, explainer, queries, orders=2)
    assert averaged["triples"] == single["triples"]

    # The second order's drop of one neighbour, retrained on its own.
    head, relation = queries[0].tolist()
    tail = explainer.entity_id(averaged["tail"])
    config, position = run.train_config.replace(ledger="off"), 7
    masks = torch.zeros(2, len(dataset.train), dtype=torch.bool)
    masks[1, averaged["triples"][position]] = True
    base, without = train_stack(dataset, config, masks, order_seed=config.seed + ORDER_SEED_STEP)
    second = float(
        tail_probabilities(base, head, relation)[tail]
        - tail_probabilities(without, head, relation)[tail]
    )
    first = single["true_drop"][position]
    assert averaged["true_drop"][position] == pytest.approx((first + second) / 2, abs=1e-5)
    assert averaged["true_drop_se"][position] == pytest.approx(abs(first - second) / 2, abs=1e-5)
    assert 0 <= averaged["significant"] <= averaged["neighbours"]
    with pytest.raises(ConfigError, match="orders"):
        leave_one_out(run, dataset, explainer, queries, orders=0)


def test_summary_and_command(run_path, tmp_path, capsys):
    out = tmp_path / "loo.json"
    assert main(["loo", "--run", str(run_path), "--queries", "2", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    document = json.loads(out.read_text())
    assert document["summary"] == summarise_loo(document["queries"])
    assert document["summary"]["queries"] == 2
    gr = [q["estimates"]["gr"]["spearman"] for q in document["queries"]]
    assert document["summary"]["gr"]["spearman"] == pytest.approx(sum(gr) / 2)
    assert "spearman" in capsys.readouterr().out

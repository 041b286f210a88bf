"""Exact leave-one-out: rank statistics by hand, true drops against single retrainings."""

import json

import pytest
import torch

from gr_core.cli import main
from gr_core.config import DEFAULT
from gr_core.explain import Explainer
from gr_core.influence import tail_probabilities
from gr_core.loo import ESTIMATES, agreement, leave_one_out, ranks, spearman, summarise_loo
from gr_core.runs import load_run_with_dataset, save_run
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


def test_true_drops_equal_single_retrainings(run_path):
    run, dataset = load_run_with_dataset(run_path)
    explainer = Explainer(run, dataset)
    queries = dataset.test[:1, :2]
    records = leave_one_out(run, dataset, explainer, queries)
    assert len(records) == 1 and records[0]["neighbours"] > 100

    # Recompute a few neighbours' true drops one retraining at a time.
    head, relation = queries[0].tolist()
    tail = explainer.entity_id(records[0]["tail"])
    ids = explainer.index.neighbours(head, relation, tail)
    assert records[0]["triples"] == ids.tolist()
    base = float(tail_probabilities(run.model, head, relation)[tail])
    assert records[0]["probability"] == pytest.approx(base, abs=1e-6)
    for position in (0, 1, len(ids) - 1):
        removed = torch.tensor([int(ids[position])])
        model = retrain_without(dataset, run.train_config, removed, CONFIG.epochs)
        drop = base - float(tail_probabilities(model, head, relation)[tail])
        assert records[0]["true_drop"][position] == pytest.approx(drop, abs=1e-5)
    for name in ESTIMATES:
        assert -1.0 <= records[0][name]["spearman"] <= 1.0
    assert records[0]["noise_floor"] >= 0.0


def test_summary_and_command(run_path, tmp_path, capsys):
    out = tmp_path / "loo.json"
    assert main(["loo", "--run", str(run_path), "--queries", "2", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    document = json.loads(out.read_text())
    assert document["summary"] == summarise_loo(document["queries"])
    assert document["summary"]["queries"] == 2
    assert "spearman" in capsys.readouterr().out

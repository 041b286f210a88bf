"""Retraining without triples: the removal mask, the removal sets and the checks."""

import pytest
import torch

from gr_core.config import DEFAULT
from gr_core.explain import Explainer
from gr_core.runs import load_run_with_dataset, save_run
from gr_core.training import Trainer, train
from gr_core.verify import REMOVAL_SETS, removal_sets, retrain_without, verify_explanation

CONFIG = DEFAULT.replace(epochs=10)


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory, nations):
    path = tmp_path_factory.mktemp("runs") / "nations"
    save_run(path, nations, CONFIG, train(nations, CONFIG))
    return load_run_with_dataset(path)


@pytest.fixture(scope="module")
def explainer(run_and_data):
    return Explainer(*run_and_data)


def test_retraining_without_nothing_reproduces_the_run(run_and_data):
    run, dataset = run_and_data
    nothing = torch.zeros(0, dtype=torch.int64)
    model = retrain_without(dataset, run.train_config, nothing, run.config["result"]["kept_epoch"])
    assert torch.equal(model.entity, run.model.entity)
    assert torch.equal(model.relation, run.model.relation)


def test_removed_triples_leave_the_batches_and_keep_the_order(nations):
    removed = torch.zeros(len(nations.train), dtype=torch.bool)
    removed[::3] = True
    full = Trainer(nations.train, nations.num_entities, nations.num_relations, CONFIG)
    masked = Trainer(nations.train, nations.num_entities, nations.num_relations, CONFIG,
                     removed=removed)  # fmt: skip
    for _ in range(2):
        expected = [rows[~removed[rows]] for rows in full.epoch_batches()]
        assert [b.tolist() for b in masked.epoch_batches()] == [
            b.tolist() for b in expected if len(b)
        ]
    assert torch.equal(full.model.entity, masked.model.entity)  # same initial weights


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_relation_without_triples_is_never_updated(nations, optimizer):
    relation = int(nations.train[0, 1])
    removed = nations.train[:, 1] == relation
    config = CONFIG.replace(optimizer=optimizer, epochs=2)
    trainer = Trainer(nations.train, nations.num_entities, nations.num_relations, config,
                      removed=removed)  # fmt: skip
    start = trainer.model.relation.clone()
    for _ in range(config.epochs):
        for rows in trainer.epoch_batches():
            assert not removed[rows].any()
            trainer.step(rows)
    assert torch.equal(trainer.model.relation[relation], start[relation])
    assert not torch.equal(trainer.model.relation, start)


def test_removal_sets_follow_the_influence_ranking(explainer):
    head, relation = explainer.entity_id("usa"), explainer.relation_id("embassy")
    explanation = explainer.explain(head, relation, method="all-positive")
    sets = removal_sets(explainer, head, relation, explanation.tail, seed=3)

    ranked = [row.triple_index for row in explanation.rows]
    assert sets["GR-1"].tolist() == ranked[:1]
    assert sets["GR-10"].tolist() == ranked[:10]
    assert sets["GR-ALL"].tolist() == ranked
    neighbours = set(explainer.index.neighbours(head, relation, explanation.tail).tolist())
    for name, size in (("NH-1", 1), ("NH-10", 10), ("NH-ALL", len(ranked))):
        assert len(set(sets[name].tolist())) == size
        assert set(sets[name].tolist()) <= neighbours
    again = removal_sets(explainer, head, relation, explanation.tail, seed=3)
    assert all(torch.equal(sets[name], again[name]) for name in REMOVAL_SETS)


def test_verification_matches_one_retraining_per_set(run_and_data, explainer):
    run, dataset = run_and_data
    head, relation = explainer.entity_id("usa"), explainer.relation_id("embassy")
    checks = verify_explanation(run, dataset, explainer, head, relation)
    tail = explainer.entity_id(explainer.predict(head, relation, k=1)[0].name)
    sets = removal_sets(explainer, head, relation, tail)
    for check in checks:
        model = retrain_without(dataset, run.train_config, sets[check.name], CONFIG.epochs)
        after = float(
            torch.softmax(
                model.score_all_tails(torch.tensor([head]), torch.tensor([relation]))[0], 0
            )[tail]
        )
        assert check.probability_after == pytest.approx(after, abs=1e-5)


def test_verification_reports_every_set_and_gr_all_lowers_the_probability(run_and_data, explainer):
    run, dataset = run_and_data
    progress = []
    checks = verify_explanation(run, dataset, explainer, "usa", "embassy",
                                on_progress=lambda *args: progress.append(args))  # fmt: skip

    assert [check.name for check in checks] == list(REMOVAL_SETS)
    steps = run.config["result"]["kept_epoch"] * -(-len(dataset.train) // CONFIG.batch_size)
    assert progress[-1] == (steps, steps) and len(progress) == steps
    top = explainer.predict("usa", "embassy", k=1)[0]
    for check in checks:
        assert check.probability_before == pytest.approx(top.probability)
        assert check.top1_before == top.name
    gr_all = checks[REMOVAL_SETS.index("GR-ALL")]
    assert gr_all.removed > 10
    assert gr_all.probability_dropped and gr_all.probability_after < 0.5 * top.probability

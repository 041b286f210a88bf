"""Tests for gr_core.training: determinism, settings, negatives, early stopping, quality."""

import pytest
import torch
import torch.nn.functional as F

from gr_core.config import DEFAULT, TrainConfig
from gr_core.training import Trainer, TrainingDiverged, fixed_negatives, train

OPTIMIZERS = ("sgd", "adagrad", "adam")
LOSS_SETTINGS = (("softmax", 0), ("sampled-softmax", 3), ("bce", 0), ("bce", 3))
CONSTRAINTS = ("none", "unit-norm", "max-norm")


def tables(model):
    return model.entity, model.relation


def ledger_tables(ledger):
    return ledger.head, ledger.relation, ledger.tail


def all_equal(first, second):
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def full_softmax_loss(model, triples):
    """Return the mean cross-entropy over all entities of every triple, via torch."""
    head, relation, tail = triples.unbind(1)
    with torch.no_grad():
        scores = model.score_all_tails(head, relation)
    return float(F.cross_entropy(scores, tail))


def test_same_config_gives_bit_identical_model_and_ledger(nations):
    config = DEFAULT.replace(epochs=3)
    first, second = train(nations, config), train(nations, config)
    other_seed = train(nations, config.replace(seed=7))

    assert all_equal(tables(first.model), tables(second.model))
    assert all_equal(ledger_tables(first.ledger), ledger_tables(second.ledger))
    assert not torch.equal(first.model.entity, other_seed.model.entity)
    assert not torch.equal(first.ledger.head, other_seed.ledger.head)


@pytest.mark.parametrize("constraint", CONSTRAINTS)
@pytest.mark.parametrize(("loss", "negatives"), LOSS_SETTINGS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_setting_trains_on_tiny_graph(optimizer, loss, negatives, constraint, tiny_graph):
    config = TrainConfig(
        dim=4,
        batch_size=4,
        optimizer=optimizer,
        learning_rate=0.1,
        loss=loss,
        num_negatives=negatives,
        constraint=constraint,
        max_norm=0.5,
    )
    trainer = Trainer(tiny_graph.triples, tiny_graph.num_entities, tiny_graph.num_relations, config)
    start = trainer.model.entity.clone()
    for _ in range(2):
        for rows in trainer.epoch_batches():
            assert torch.isfinite(torch.tensor(trainer.step(rows)))

    norms = trainer.model.entity.norm(dim=1)
    assert not torch.equal(trainer.model.entity, start)
    if constraint == "unit-norm":
        torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-6)
    elif constraint == "max-norm":
        assert (norms <= 0.5 + 1e-6).all()


@pytest.mark.parametrize(
    "config",
    [
        DEFAULT,
        DEFAULT.replace(model="complex"),
        DEFAULT.replace(optimizer="adagrad", learning_rate=0.1),
    ],
    ids=["default", "complex", "adagrad"],
)
def test_training_reduces_the_loss_on_nations(config, nations):
    trainer = Trainer(nations.train, nations.num_entities, nations.num_relations, config)
    loss_before = full_softmax_loss(trainer.model, nations.train)
    for _ in range(5):
        for rows in trainer.epoch_batches():
            trainer.step(rows)
    assert full_softmax_loss(trainer.model, nations.train) < 0.9 * loss_before


def test_fixed_negatives_never_hold_the_own_tail(nations):
    tails = nations.train[:, 2]
    for count in (1, 5, 13, 20):
        candidates = fixed_negatives(tails, nations.num_entities, count, torch.Generator())
        assert torch.equal(candidates[:, 0], tails)
        assert not (candidates[:, 1:] == tails[:, None]).any()
        assert ((candidates >= 0) & (candidates < nations.num_entities)).all()


def test_fixed_negatives_follow_the_seed(nations):
    tails = nations.train[:, 2]

    def draw(seed):
        return fixed_negatives(tails, nations.num_entities, 5, torch.Generator().manual_seed(seed))

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


@pytest.mark.parametrize("count", [13, 14, 30])
def test_enough_negatives_hold_every_other_entity_once(count, nations):
    tails = nations.train[:, 2]
    candidates = fixed_negatives(tails, nations.num_entities, count, torch.Generator())
    assert candidates.shape == (len(tails), nations.num_entities)

    for tail, negatives in zip(tails.tolist(), candidates[:, 1:].tolist(), strict=True):
        others = [e for e in range(nations.num_entities) if e != tail]
        assert sorted(negatives) == others


def test_early_stopping_returns_the_ledger_of_the_returned_model(nations):
    config = DEFAULT.replace(learning_rate=0.03, eval_every=1, early_stopping_patience=2)
    result = train(nations, config)
    assert result.epochs_run >= result.kept_epoch
    assert result.epochs_run < config.epochs  # it did stop early

    again = train(
        nations,
        config.replace(epochs=result.kept_epoch, eval_every=0, early_stopping_patience=0),
    )
    assert all_equal(tables(result.model), tables(again.model))
    assert all_equal(ledger_tables(result.ledger), ledger_tables(again.ledger))


def test_a_huge_learning_rate_raises_training_diverged(nations):
    config = DEFAULT.replace(optimizer="sgd", learning_rate=1e6, epochs=5)
    with pytest.raises(TrainingDiverged, match="learning rate"):
        train(nations, config)


@pytest.mark.parametrize("model", ["distmult", "complex"])
def test_default_preset_reaches_good_quality_on_nations(model, nations):
    result = train(nations, DEFAULT.replace(model=model))
    assert result.metrics["test"]["mrr"] >= 0.68


def test_history_has_one_record_per_epoch(nations):
    result = train(nations, DEFAULT.replace(epochs=3, eval_every=1))
    assert [record["epoch"] for record in result.history] == [1, 2, 3]
    assert all("valid_mrr" in record for record in result.history)
    assert result.epochs_run == result.kept_epoch == 3

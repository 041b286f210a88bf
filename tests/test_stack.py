"""A stack member must end where the same model trained alone without its triples ends."""

from types import SimpleNamespace

import pytest
import torch

from gr_core.config import TrainConfig
from gr_core.stack import StackTrainer, member_bytes, train_stack
from gr_core.training import Trainer


def alone(triples, num_entities, num_relations, config, removed):
    trainer = Trainer(triples, num_entities, num_relations, config, dtype=torch.float64,
                      removed=removed)  # fmt: skip
    for _ in range(config.epochs):
        for rows in trainer.epoch_batches():
            trainer.step(rows)
    return trainer.model


def together(triples, num_entities, num_relations, config, removed):
    stack = StackTrainer(triples, num_entities, num_relations, config, removed,
                         dtype=torch.float64)  # fmt: skip
    for _ in range(config.epochs):
        for rows in stack.epoch_batches():
            stack.step(rows)
    return stack.models()


def removal_masks(num_triples, seed=0):
    """Nothing removed, one triple, a third, and all but two triples."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(4, num_triples, dtype=torch.bool)
    masks[1, 3] = True
    masks[2] = torch.rand(num_triples, generator=generator) < 0.33
    masks[3, 2:] = True
    return masks


SETTINGS = [
    dict(optimizer="adam", loss="softmax"),
    dict(optimizer="sgd", loss="softmax", constraint="unit-norm"),
    dict(optimizer="adagrad", loss="bce"),
    dict(optimizer="adam", loss="sampled-softmax", num_negatives=3),
    dict(optimizer="adam", loss="bce", num_negatives=2, constraint="max-norm", max_norm=0.7),
]


@pytest.mark.parametrize("model", ["distmult", "complex"])
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("batch_size", [1, 4])
def test_each_member_equals_the_model_trained_alone(tiny_graph, model, settings, batch_size):
    config = TrainConfig(model=model, dim=3, epochs=3, batch_size=batch_size,
                         learning_rate=0.1, ledger="off", **settings)  # fmt: skip
    sizes = (tiny_graph.num_entities, tiny_graph.num_relations)
    masks = removal_masks(len(tiny_graph.triples))
    members = together(tiny_graph.triples, *sizes, config, masks)

    for member, mask in zip(members, masks, strict=True):
        single = alone(tiny_graph.triples, *sizes, config, mask)
        torch.testing.assert_close(member.entity, single.entity, rtol=0, atol=1e-10)
        torch.testing.assert_close(member.relation, single.relation, rtol=0, atol=1e-10)
    # Not vacuous: removing triples changed the members.
    assert not torch.allclose(members[0].entity, members[2].entity)


def test_stack_on_nations_matches_single_training(nations):
    config = TrainConfig(dim=16, epochs=2, batch_size=64, ledger="off")
    masks = removal_masks(len(nations.train), seed=1)
    members = train_stack(nations, config, masks, memory_budget=1)  # one member per group
    for member, mask in zip(members, masks, strict=True):
        single = alone(nations.train, nations.num_entities, nations.num_relations,
                       config, mask)  # fmt: skip
        torch.testing.assert_close(member.entity.double(), single.entity, rtol=0, atol=1e-5)


def test_groups_split_by_the_memory_budget(nations):
    config = TrainConfig(dim=8, epochs=1, batch_size=128, ledger="off")
    masks = removal_masks(len(nations.train))
    per_member = member_bytes(config, nations.num_entities, nations.num_relations, 8)
    steps = []
    grouped = train_stack(nations, config, masks, memory_budget=2 * per_member,
                          on_step=lambda done, total: steps.append((done, total)))  # fmt: skip
    whole = train_stack(nations, config, masks)
    assert len(grouped) == len(whole) == 4
    for a, b in zip(grouped, whole, strict=True):
        torch.testing.assert_close(a.entity, b.entity)
    assert steps[-1][0] == steps[-1][1] == 2 * 13  # two groups of 13 steps


def test_order_seed_changes_only_the_batch_order(tiny_graph):
    config = TrainConfig(dim=3, epochs=2, batch_size=len(tiny_graph.triples), optimizer="sgd",
                         learning_rate=0.1)  # fmt: skip
    args = (tiny_graph.triples, tiny_graph.num_entities, tiny_graph.num_relations)
    removed = torch.zeros(1, len(tiny_graph.triples), dtype=torch.bool)
    same = together(*args, config, removed)[0]

    # One batch holds every triple: the order cannot matter, so the weights must agree.
    stack = StackTrainer(*args, config, removed, dtype=torch.float64, order_seed=7)
    for _ in range(config.epochs):
        for rows in stack.epoch_batches():
            stack.step(rows)
    assert torch.allclose(stack.models()[0].entity, same.entity, atol=1e-12)

    # Batches of one: another order gives another model.
    single, dataset = config.replace(batch_size=1), SimpleNamespace(train=args[0])
    dataset.num_entities, dataset.num_relations = args[1:]
    first = train_stack(dataset, single, removed)[0]
    other = train_stack(dataset, single, removed, order_seed=7)[0]
    assert not torch.allclose(first.entity, other.entity)

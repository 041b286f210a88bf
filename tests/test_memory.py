"""The memory check before training: the estimate, the free memory, the named error."""

import pytest
import torch

from gr_core import memory
from gr_core.config import DEFAULT, TrainConfig
from gr_core.memory import (
    InsufficientMemoryError,
    available_memory,
    check_training_memory,
    estimate_training_memory,
)
from gr_core.training import Trainer, train

# FB15k-237's training split as loaded here.
FB15K_ENTITIES, FB15K_RELATIONS, FB15K_TRAIN = 14_505, 237, 272_115
MiB = 2**20


def test_estimate_counts_model_optimizer_and_ledger():
    config = DEFAULT.replace(dim=200)  # Adam, ledger on, batch 128, softmax
    estimate = estimate_training_memory(config, FB15K_ENTITIES, FB15K_RELATIONS, FB15K_TRAIN)
    model = (FB15K_ENTITIES + FB15K_RELATIONS) * 200 * 4
    assert estimate.model == model
    assert estimate.optimizer == 2 * model
    assert estimate.ledger == 3 * 200 * FB15K_TRAIN * 4  # about 650 MB
    assert estimate.best_epoch == 0
    assert estimate.total > estimate.ledger + 3 * model

    off = estimate_training_memory(
        config.replace(ledger="off"), FB15K_ENTITIES, FB15K_RELATIONS, FB15K_TRAIN
    )
    assert off.ledger == 0 and estimate.total - off.total == estimate.ledger
    stopping = estimate_training_memory(
        config.replace(eval_every=1, early_stopping_patience=2),
        FB15K_ENTITIES, FB15K_RELATIONS, FB15K_TRAIN,
    )  # fmt: skip
    assert stopping.best_epoch == model + estimate.ledger


def test_estimate_matches_the_trainer_tensors(tiny_graph):
    # The standing tensors, counted a second way: from a real Trainer.
    config = TrainConfig(dim=7, optimizer="adagrad")
    trainer = Trainer(tiny_graph.triples, tiny_graph.num_entities, tiny_graph.num_relations, config)
    model = trainer.model.entity.nbytes + trainer.model.relation.nbytes
    state = sum(t.nbytes for t in trainer.optimizer.sum_sq)
    estimate = estimate_training_memory(
        config, tiny_graph.num_entities, tiny_graph.num_relations, len(tiny_graph.triples)
    )
    assert (estimate.model, estimate.optimizer, estimate.ledger) == (
        model, state, trainer.ledger.nbytes,
    )  # fmt: skip


def test_small_budget_raises_with_the_numbers_and_the_ways_out(nations):
    config = DEFAULT.replace(eval_every=1, early_stopping_patience=1)
    estimate = check_training_memory(config, nations, available=lambda device: 2**40)
    with pytest.raises(InsufficientMemoryError) as caught:
        check_training_memory(config, nations, available=lambda device: estimate.total - 1)
    message = str(caught.value)
    size = memory._size
    assert f"needs about {size(estimate.total)} (" in message
    assert f"ledger {size(estimate.ledger)}" in message
    assert f"only {size(estimate.total - 1)} is available on cpu" in message
    for hint in ("--ledger off", "--dim", "--early-stopping-patience 0"):
        assert hint in message


def test_a_budget_of_exactly_the_estimate_passes(nations):
    needed = check_training_memory(DEFAULT, nations, available=lambda device: 2**40).total
    assert check_training_memory(DEFAULT, nations, available=lambda device: needed).total == needed


def test_unknown_free_memory_does_not_stop_training(nations):
    assert check_training_memory(DEFAULT, nations, available=lambda device: None).total > 0


def test_train_checks_before_the_first_step(nations, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device: 1000)
    steps = []
    with pytest.raises(InsufficientMemoryError, match="only 1000 bytes is available"):
        train(nations, DEFAULT.replace(epochs=1), on_step=lambda done, total: steps.append(done))
    assert steps == []


def test_available_memory_reads_this_machine():
    free = available_memory("cpu")
    assert free is None or 0 < free
    if torch.cuda.is_available():
        assert 0 < available_memory("cuda") <= torch.cuda.get_device_properties(0).total_memory


def test_a_cgroup_limit_lowers_the_free_memory(tmp_path):
    (tmp_path / "memory.max").write_text(f"{512 * MiB}\n")
    (tmp_path / "memory.current").write_text(f"{400 * MiB}\n")
    (tmp_path / "memory.stat").write_text(f"anon 1\ninactive_file {38 * MiB}\nactive_file 5\n")
    assert memory._cgroup_available(tmp_path) == 150 * MiB
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._cgroup_available(tmp_path) is None
    assert memory._cgroup_available(tmp_path / "absent") is None

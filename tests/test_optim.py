"""Tests for gr_core.optim: the same steps as torch.optim, and the returned step scale."""

import pytest
import torch

from gr_core.errors import ConfigError
from gr_core.optim import build_optimizer

SHAPES = ((5, 4), (3, 4))  # an entity-like and a relation-like table
LEARNING_RATE = 0.05
STEPS = 20
TORCH_OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=LEARNING_RATE),
    "adagrad": lambda params: torch.optim.Adagrad(params, lr=LEARNING_RATE, eps=1e-10),
    "adam": lambda params: torch.optim.Adam(params, lr=LEARNING_RATE),
}


def random_tables(generator):
    return [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in SHAPES]


@pytest.mark.parametrize("name", sorted(TORCH_OPTIMIZERS))
def test_steps_match_torch_optim(name):
    generator = torch.Generator().manual_seed(3)
    start = random_tables(generator)
    ours = [table.clone() for table in start]
    theirs = [table.clone().requires_grad_() for table in start]
    optimizer = build_optimizer(name, ours, LEARNING_RATE)
    reference = TORCH_OPTIMIZERS[name](theirs)

    for _ in range(STEPS):
        grads = random_tables(generator)
        optimizer.step(grads)
        for param, grad in zip(theirs, grads, strict=True):
            param.grad = grad.clone()
        reference.step()
        for mine, torchs in zip(ours, theirs, strict=True):
            torch.testing.assert_close(mine, torchs.detach(), rtol=1e-12, atol=1e-14)

    assert optimizer.steps == STEPS
    assert not torch.allclose(ours[0], start[0])


@pytest.mark.parametrize("name", ["sgd", "adagrad"])
def test_step_scale_turns_the_gradient_into_the_update(name):
    generator = torch.Generator().manual_seed(4)
    tables = random_tables(generator)
    optimizer = build_optimizer(name, tables, LEARNING_RATE)

    for _ in range(5):
        grads = random_tables(generator)
        before = [table.clone() for table in tables]
        scales = optimizer.step(grads)
        for after, old, scale, grad in zip(tables, before, scales, grads, strict=True):
            torch.testing.assert_close(after - old, -scale * grad, rtol=0, atol=1e-12)


def test_adam_step_scale_is_lr_over_the_corrected_second_moment():
    generator = torch.Generator().manual_seed(5)
    start = random_tables(generator)
    ours = [table.clone() for table in start]
    theirs = [table.clone().requires_grad_() for table in start]
    optimizer = build_optimizer("adam", ours, LEARNING_RATE)
    reference = TORCH_OPTIMIZERS["adam"](theirs)

    for step in range(1, 6):
        grads = random_tables(generator)
        scales = optimizer.step(grads)
        for param, grad in zip(theirs, grads, strict=True):
            param.grad = grad.clone()
        reference.step()
        for param, scale in zip(theirs, scales, strict=True):
            second_moment = reference.state[param]["exp_avg_sq"] / (1 - 0.999**step)
            expected = LEARNING_RATE / (second_moment.sqrt() + 1e-8)
            torch.testing.assert_close(scale, expected, rtol=1e-12, atol=0)


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match="adagrad"):
        build_optimizer("rmsprop", [torch.zeros(2)], 0.1)

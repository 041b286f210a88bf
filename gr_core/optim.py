"""SGD, Adagrad and Adam written out, so the ledger can see each step's scale.

Every optimizer updates its parameters in place and returns, per parameter, the
*step scale* ``P`` of this step: the factor that turns a gradient into its
update, ``update = -P * gradient`` for SGD and Adagrad exactly, and for Adam the
scale a fresh gradient gets through the current preconditioner (DESIGN
section 4). The ledger multiplies each example's own-row gradient by ``P``.

The update rules match ``torch.optim`` with default settings (no weight
decay, no momentum for SGD, no learning-rate decay for Adagrad).
"""

from __future__ import annotations

import torch

from gr_core.errors import ConfigError


class Optimizer:
    """Base class: holds parameter tensors and per-parameter state."""

    def __init__(self, params: list[torch.Tensor], learning_rate: float):
        self.params = params
        self.learning_rate = learning_rate
        self.steps = 0

    def step(self, grads: list[torch.Tensor]) -> list[torch.Tensor | float]:
        """Apply one update in place; return each parameter's step scale."""
        self.steps += 1
        return [
            self._update(i, p, g) for i, (p, g) in enumerate(zip(self.params, grads, strict=True))
        ]

    def _update(self, index: int, param: torch.Tensor, grad: torch.Tensor):
        raise NotImplementedError


class SGD(Optimizer):
    def _update(self, index, param, grad):
        param.add_(grad, alpha=-self.learning_rate)
        return self.learning_rate


class Adagrad(Optimizer):
    eps = 1e-10

    def __init__(self, params, learning_rate):
        super().__init__(params, learning_rate)
        self.sum_sq = [torch.zeros_like(p) for p in params]

    def _update(self, index, param, grad):
        sum_sq = self.sum_sq[index]
        sum_sq.addcmul_(grad, grad)
        scale = self.learning_rate / (sum_sq.sqrt() + self.eps)
        param.addcmul_(scale, grad, value=-1.0)
        return scale


class Adam(Optimizer):
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, params, learning_rate):
        super().__init__(params, learning_rate)
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]

    def _update(self, index, param, grad):
        exp_avg, exp_avg_sq = self.exp_avg[index], self.exp_avg_sq[index]
        exp_avg.lerp_(grad, 1 - self.beta1)
        exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)

        # Bias-corrected moments, as in Kingma & Ba (2015) and torch.optim.Adam.
        first_correction = 1 - self.beta1**self.steps
        second_correction = 1 - self.beta2**self.steps
        denominator = (exp_avg_sq / second_correction).sqrt_().add_(self.eps)
        scale = self.learning_rate / denominator
        param.addcmul_(scale, exp_avg, value=-1.0 / first_correction)
        return scale


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}


def build_optimizer(name: str, params: list[torch.Tensor], learning_rate: float) -> Optimizer:
    """Create the optimizer called ``name`` over ``params``."""
    try:
        return OPTIMIZERS[name](params, learning_rate)
    except KeyError:
        raise ConfigError(
            f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}"
        ) from None

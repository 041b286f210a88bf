"""Training settings: one frozen dataclass, validated on creation, and named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gr_core.errors import ConfigError
from gr_core.models import MODELS

LOSSES = ("softmax", "sampled-softmax", "bce")
OPTIMIZERS = ("sgd", "adagrad", "adam")
CONSTRAINTS = ("none", "unit-norm", "max-norm")
LEDGER_MODES = ("gradient", "paper", "off")
INITS = ("uniform", "normal")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run; saved as ``config.json`` in the run folder.

    ``loss``: ``softmax`` is cross-entropy over all entities; ``sampled-softmax``
    uses ``num_negatives`` fixed negatives per training triple (drawn once from the
    seed, the same in every epoch and every retraining); ``bce`` is a sigmoid with
    binary cross-entropy against every entity (1 for the triple's tail).
    ``ledger``: ``gradient`` attributes each step through the optimizer's
    preconditioner, ``paper`` records the real change of the three rows around a
    batch-1 step, ``off`` records nothing.
    ``constraint`` applies to entity rows after every step.
    ``early_stopping_patience``: stop after this many validation checks without a
    better MRR and keep the best epoch's model and ledger (0 disables it).
    """

    model: str = "distmult"
    dim: int = 100
    epochs: int = 50
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 0.01
    loss: str = "softmax"
    num_negatives: int = 0
    init: str = "normal"
    init_scale: float = 0.1
    constraint: str = "none"
    max_norm: float = 1.0
    ledger: str = "gradient"
    seed: int = 42
    eval_every: int = 0
    early_stopping_patience: int = 0

    def __post_init__(self):
        _check_choice("model", self.model, tuple(MODELS))
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("constraint", self.constraint, CONSTRAINTS)
        _check_choice("ledger", self.ledger, LEDGER_MODES)
        _check_choice("init", self.init, INITS)
        for name in ("dim", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("learning_rate", "init_scale", "max_norm"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("num_negatives", "eval_every", "early_stopping_patience", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.loss == "softmax" and self.num_negatives:
            raise ConfigError(
                "loss 'softmax' scores every entity; use 'sampled-softmax' for negatives"
            )
        if self.loss == "sampled-softmax" and self.num_negatives < 1:
            raise ConfigError("loss 'sampled-softmax' needs num_negatives of at least 1")
        if self.ledger == "paper" and self.batch_size != 1:
            raise ConfigError(
                "ledger 'paper' records the real row change around a batch-1 step; "
                f"set batch_size to 1 (got {self.batch_size}) or use ledger 'gradient'"
            )
        if self.early_stopping_patience and not self.eval_every:
            raise ConfigError("early stopping needs validation checks: set eval_every >= 1")

    def replace(self, **changes) -> TrainConfig:
        """Return a copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build a config from a dict, rejecting keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**values)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


# The original authors' Nations setup (DESIGN section 3): DistMult, dim 10, batch 1,
# 10 epochs, 13 fixed negatives (all other Nations entities), Adam at 0.003,
# uniform init in +-0.05, seed 42, no regularisation.
PAPER = TrainConfig(
    dim=10,
    epochs=10,
    batch_size=1,
    optimizer="adam",
    learning_rate=0.003,
    loss="sampled-softmax",
    num_negatives=13,
    init="uniform",
    init_scale=0.05,
    seed=42,
)

# What we found trains a good model quickly (see the README for the measured MRRs).
DEFAULT = TrainConfig()

PRESETS: dict[str, TrainConfig] = {"default": DEFAULT, "paper": PAPER}


def preset(name: str) -> TrainConfig:
    """Return the named preset."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None

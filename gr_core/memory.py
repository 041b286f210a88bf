"""Check before training that the model, optimizer state and ledger fit in memory.

``estimate_training_memory`` adds up what a training run holds at its peak:

* the model, ``(num_entities + num_relations) * width`` numbers;
* the optimizer state: none for SGD, one model's worth for Adagrad, two for Adam;
* the ledger, ``3 * width * num_train_triples`` numbers (float32 while training,
  whatever dtype it is stored in afterwards), and with early stopping a second
  model and ledger for the best epoch;
* the training triples and fixed negatives (int64);
* the larger of one step's temporaries (full gradients, the optimizer's
  intermediate tables, the score matrix and its softmax) and one evaluation
  batch (1024 queries' scores and filter masks).

Saving writes the ledger a chunk at a time (``gr_core.ledger_file``), so it adds
nothing that matters. The estimate counts tensors, not the Python process,
the data set's own tables or the allocator's slack: for FB15k-237 at dim 200
it says 889 MiB where the process grew by 958 MiB (measured with the default
preset on the CPU). It is compared with what the device reports as available.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from gr_core.config import TrainConfig
from gr_core.errors import GRError
from gr_core.models import model_width

logger = logging.getLogger(__name__)

OPTIMIZER_STATE_TABLES = {"sgd": 0, "adagrad": 1, "adam": 2}
# Model-sized temporaries of one step: the full gradient, plus the optimizer's
# preconditioner and step scale (Adagrad, Adam).
STEP_TABLES = {"sgd": 1, "adagrad": 3, "adam": 3}
# Per score of a training step: scores, log-probabilities, one-hot target (as
# int64, then as floats), gradient before and after the batch mean.
SCORE_FLOATS, SCORE_INT64S = 5, 1
EVALUATION_BATCH = 1024  # gr_core.metrics.filtered_ranks
# Per score of an evaluation batch: the scores, then boolean masks and comparisons
# that overlap in time. Measured on FB15k-237 (float32): about 14 bytes a score.
EVALUATION_EXTRA_BYTES = 8
CGROUP_ROOT = Path("/sys/fs/cgroup")


class InsufficientMemoryError(GRError):
    """Training would need more memory than the device has available."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run holds at its peak, by part."""

    model: int
    optimizer: int
    ledger: int
    best_epoch: int  # the model and ledger kept for early stopping
    triples: int
    temporaries: int  # the larger of a step's and an evaluation batch's

    @property
    def total(self) -> int:
        return (
            self.model + self.optimizer + self.ledger + self.best_epoch + self.triples
            + self.temporaries
        )  # fmt: skip

    def parts(self) -> dict[str, int]:
        """Return the non-zero parts, largest first, keyed by a readable name."""
        named = {
            "model": self.model,
            "optimizer state": self.optimizer,
            "ledger": self.ledger,
            "best epoch's copy": self.best_epoch,
            "triples": self.triples,
            "temporaries": self.temporaries,
        }
        return dict(sorted(((k, v) for k, v in named.items() if v), key=lambda kv: -kv[1]))


def estimate_training_memory(
    config: TrainConfig,
    num_entities: int,
    num_relations: int,
    num_train: int,
    element_size: int = 4,
) -> MemoryEstimate:
    """Estimate the peak bytes of training ``config`` on a data set of these sizes.

    ``element_size`` is the bytes of one number of the model's dtype (4 for float32).
    """
    width = model_width(config.model, config.dim)
    model = (num_entities + num_relations) * width * element_size
    ledger = 0 if config.ledger == "off" else 3 * width * num_train * element_size
    best_epoch = model + ledger if config.early_stopping_patience else 0

    sampled = config.loss != "softmax" and config.num_negatives > 0
    candidates = min(num_entities, 1 + config.num_negatives) if sampled else num_entities
    triples = num_train * 3 * 8 + (num_train * candidates * 8 if sampled else 0)

    batch = min(config.batch_size, num_train)
    scores = batch * candidates * (SCORE_FLOATS * element_size + SCORE_INT64S * 8)
    if sampled:  # the candidates' rows and their per-candidate gradients
        scores += 2 * batch * candidates * width * element_size
    step = STEP_TABLES[config.optimizer] * model + scores + 9 * batch * width * element_size
    evaluation = EVALUATION_BATCH * num_entities * (2 * element_size + EVALUATION_EXTRA_BYTES)
    return MemoryEstimate(
        model=model,
        optimizer=OPTIMIZER_STATE_TABLES[config.optimizer] * model,
        ledger=ledger,
        best_epoch=best_epoch,
        triples=triples,
        temporaries=max(step, evaluation),
    )


def available_memory(device) -> int | None:
    """Return the bytes free for new tensors on ``device``, or None when unknown.

    CUDA: ``torch.cuda.mem_get_info``. CPU: ``MemAvailable`` of /proc/meminfo,
    lowered to a cgroup v2 memory limit when one applies, else free pages by
    ``os.sysconf``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    host = _meminfo_available()
    if host is None:
        host = _sysconf_available()
    limit = _cgroup_available(CGROUP_ROOT)
    if host is None or limit is None:
        return host if limit is None else limit
    return min(host, limit)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError):
        return None
    return None


def _sysconf_available() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _cgroup_available(root: Path) -> int | None:
    """Return the room left under a cgroup v2 memory limit, or None without a limit.

    Page cache that can be dropped (``inactive_file``) counts as room.
    """
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text())
        stat = dict(line.split() for line in (root / "memory.stat").read_text().splitlines())
        return max(0, int(limit) - used + int(stat.get("inactive_file", 0)))
    except (OSError, ValueError):
        return None


def check_training_memory(
    config: TrainConfig,
    dataset,
    device="cpu",
    dtype: torch.dtype = torch.float32,
    available: Callable[[torch.device], int | None] | None = None,
) -> MemoryEstimate:
    """Raise ``InsufficientMemoryError`` unless training ``config`` on ``dataset`` fits.

    ``available(device)`` returns the free bytes (default: ``available_memory``);
    tests pass a fake one. Returns the estimate when it fits or when the free
    memory is unknown.
    """
    device = torch.device(device)
    estimate = estimate_training_memory(
        config, dataset.num_entities, dataset.num_relations, len(dataset.train),
        torch.finfo(dtype).bits // 8,
    )  # fmt: skip
    free = (available or available_memory)(device)
    if free is None:
        logger.info("cannot tell the free memory of %s; training without a memory check", device)
        return estimate
    if estimate.total > free:
        raise InsufficientMemoryError(_message(config, estimate, free, device))
    return estimate


def _message(config: TrainConfig, estimate: MemoryEstimate, free: int, device) -> str:
    parts = ", ".join(f"{name} {_size(size)}" for name, size in estimate.parts().items())
    hints = []
    if estimate.ledger:
        saved = estimate.ledger + (estimate.ledger if estimate.best_epoch else 0)
        hints.append(f"--ledger off (saves {_size(saved)}, but nothing can be explained)")
    hints.append(f"a smaller --dim (now {config.dim}; model and ledger shrink with it)")
    if estimate.best_epoch:
        hints.append(f"--early-stopping-patience 0 (saves {_size(estimate.best_epoch)})")
    if estimate.temporaries > estimate.model:
        hints.append(f"a smaller --batch-size (now {config.batch_size})")
    return (
        f"training needs about {_size(estimate.total)} ({parts}), but only {_size(free)} "
        f"is available on {device}; try " + ", or ".join(hints) + ". The ledger is kept "
        "in float32 while training, so --ledger-dtype float16 halves the saved file, "
        "not this"
    )


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"

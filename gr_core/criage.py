"""CRIAGE: a first-order estimate of a training triple's influence through the tail row.

Pezeshkpour, Tian & Singh (NAACL 2019) estimate how removing a training triple
``d = (h', r', t)`` that shares the tail ``t`` of a target ``(h, r, t)`` changes
the target's score, for models trained with a sigmoid. They let only the tail's
embedding ``e_t`` move and take one Newton step of the loss in ``e_t`` without
``d``. Our scores are linear in the tail row: ``phi(h, r, t) = z_hr . e_t`` with
``z_hr = query(e_h, w_r)`` (DistMult's elementwise product, ComplEx's real form).

With the binary cross-entropy against every entity, every training pair
``(h'', r'')`` scores ``t``: as a positive when its tail is ``t``, otherwise as a
negative. The loss's Hessian in ``e_t`` is therefore

    H = sum over training pairs of  s (1 - s) z z^T,   s = sigmoid(z . e_t),

plus a small damping ``lambda I`` that keeps it invertible (the paper's L2
term). Removing the positive ``d`` takes away its gradient ``-(1 - s_d) z_d``, so
the tail row moves by ``delta e_t = -(1 - s_d) H^-1 z_d`` and the target's score
changes by ``z_hr . delta e_t``. The probability after removal recomputes the
softmax over all tails with only the logit of ``t`` changed, so ranking by the
probability drop is ranking by the score drop.

The original counts only the training triples that end in ``t`` in the Hessian;
we take every pair that enters our loss, which is the exact Gauss-Newton
Hessian of the 1-vs-all sigmoid loss.
"""

from __future__ import annotations

import torch

from gr_core.errors import ConfigError
from gr_core.models import KGEModel

# Damping added to the Hessian, relative to its mean diagonal entry.
DAMPING = 1e-3


def check_sigmoid(loss: str) -> None:
    """Raise ConfigError unless ``loss`` is the sigmoid loss CRIAGE is defined for."""
    if loss != "bce":
        raise ConfigError(
            f"CRIAGE needs a model trained with a sigmoid (loss 'bce'); this run used {loss!r}"
        )


def tail_hessian(model: KGEModel, train_triples: torch.Tensor, tail: int) -> torch.Tensor:
    """Return the damped Hessian (width, width) of the sigmoid loss in the tail row ``tail``."""
    pairs = model.query(model.entity[train_triples[:, 0]], model.relation[train_triples[:, 1]])
    sigma = torch.sigmoid(pairs @ model.entity[tail])  # (num_train,)
    hessian = (pairs * (sigma * (1 - sigma))[:, None]).T @ pairs
    damping = DAMPING * float(hessian.diagonal().mean()) + 1e-12
    return hessian + damping * torch.eye(len(hessian), dtype=hessian.dtype, device=hessian.device)


def criage_influence(
    model: KGEModel,
    train_triples: torch.Tensor,
    candidates: torch.Tensor,
    query: tuple[int, int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return CRIAGE's (score drop, probability after removal) of each candidate (n,).

    ``candidates`` index training triples whose tail is the query's tail; others
    raise ConfigError, since CRIAGE moves only the tail row.
    """
    head, relation, tail = query
    triples = train_triples[candidates]
    if len(triples) and not bool((triples[:, 2] == tail).all()):
        raise ConfigError("CRIAGE scores only training triples that share the explained tail")

    target = model.query(model.entity[head][None], model.relation[relation][None])[0]  # (width,)
    removed = model.query(model.entity[triples[:, 0]], model.relation[triples[:, 1]])  # (n, width)
    sigma = torch.sigmoid(removed @ model.entity[tail])
    solved = torch.linalg.solve(tail_hessian(model, train_triples, tail), removed.T)  # (width, n)
    score_change = -(1 - sigma) * (target @ solved)  # (n,)

    logits = target @ model.entity.T  # (num_entities,)
    changed = logits[None].repeat(len(triples), 1)
    changed[:, tail] += score_change
    after = torch.softmax(changed, dim=1)[:, tail]
    return -score_change, after

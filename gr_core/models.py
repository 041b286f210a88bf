"""DistMult and ComplEx: bilinear scoring with hand-written gradients.

Both models score a triple as an inner product between a *query vector*
``q = query(e_head, w_relation)`` and the tail's entity row, so scoring every
tail is one matrix product ``q @ entity.T``. Training needs the gradient of a
loss with respect to the head and relation rows of each example separately
(for the rollback ledger); ``query_backward`` gives it in closed form, without
autograd and without a loop over examples.

All row tensors may carry any leading dimensions ``(...)``; only the last
dimension is the model's width (ComplEx: real half, then imaginary half).
"""

from __future__ import annotations

import torch

from gr_core.errors import ConfigError


class KGEModel:
    """Entity and relation embedding tables plus a bilinear score."""

    name = "base"

    def __init__(self, entity: torch.Tensor, relation: torch.Tensor):
        if entity.dim() != 2 or relation.dim() != 2 or entity.shape[1] != relation.shape[1]:
            raise ConfigError(
                f"embedding tables must be 2-d with equal widths, got entity "
                f"{tuple(entity.shape)} and relation {tuple(relation.shape)}"
            )
        self.entity = entity  # (num_entities, width)
        self.relation = relation  # (num_relations, width)

    @property
    def width(self) -> int:
        return self.entity.shape[1]

    @property
    def num_entities(self) -> int:
        return self.entity.shape[0]

    @property
    def num_relations(self) -> int:
        return self.relation.shape[0]

    @staticmethod
    def query(head_rows: torch.Tensor, relation_rows: torch.Tensor) -> torch.Tensor:
        """Return the query vector ``q`` (..., width) with ``score = <q, tail_row>``."""
        raise NotImplementedError

    @staticmethod
    def query_backward(
        head_rows: torch.Tensor, relation_rows: torch.Tensor, grad_query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``dL/dq`` (..., width) to ``(dL/d head_rows, dL/d relation_rows)``."""
        raise NotImplementedError

    def score_triples(self, triples: torch.Tensor) -> torch.Tensor:
        """Score triples (n, 3) of ids [head, relation, tail]; return (n,)."""
        query = self.query(self.entity[triples[:, 0]], self.relation[triples[:, 1]])
        return (query * self.entity[triples[:, 2]]).sum(-1)

    def score_all_tails(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        """Score every entity as the tail of queries ``head`` (n,), ``relation`` (n,).

        Returns (n, num_entities).
        """
        return self.query(self.entity[head], self.relation[relation]) @ self.entity.T

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Move both tables in place and return self."""
        self.entity = self.entity.to(device=device, dtype=dtype)
        self.relation = self.relation.to(device=device, dtype=dtype)
        return self

    def clone(self) -> KGEModel:
        return type(self)(self.entity.clone(), self.relation.clone())


class DistMult(KGEModel):
    """DistMult (Yang et al., 2015): ``score = sum_i e_h[i] * w_r[i] * e_t[i]``."""

    name = "distmult"

    @staticmethod
    def query(head_rows, relation_rows):
        return head_rows * relation_rows

    @staticmethod
    def query_backward(head_rows, relation_rows, grad_query):
        return grad_query * relation_rows, grad_query * head_rows


class ComplEx(KGEModel):
    """ComplEx (Trouillon et al., 2016): ``score = Re(<e_h, w_r, conj(e_t)>)``.

    Rows are stored as real tensors ``[real half | imaginary half]``, so the
    width is twice the complex dimension. ``q = e_h * w_r`` (complex product)
    and ``Re(<q, conj(e_t)>) = <q_re, t_re> + <q_im, t_im>``, an ordinary real
    inner product of the stacked halves.
    """

    name = "complex"

    def __init__(self, entity: torch.Tensor, relation: torch.Tensor):
        if entity.shape[-1] % 2:
            raise ConfigError(f"ComplEx needs an even width, got {entity.shape[-1]}")
        super().__init__(entity, relation)

    @staticmethod
    def query(head_rows, relation_rows):
        h_re, h_im = head_rows.chunk(2, dim=-1)
        r_re, r_im = relation_rows.chunk(2, dim=-1)
        return torch.cat((h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re), dim=-1)

    @staticmethod
    def query_backward(head_rows, relation_rows, grad_query):
        h_re, h_im = head_rows.chunk(2, dim=-1)
        r_re, r_im = relation_rows.chunk(2, dim=-1)
        g_re, g_im = grad_query.chunk(2, dim=-1)
        grad_head = torch.cat((g_re * r_re + g_im * r_im, g_im * r_re - g_re * r_im), dim=-1)
        grad_relation = torch.cat((g_re * h_re + g_im * h_im, g_im * h_re - g_re * h_im), dim=-1)
        return grad_head, grad_relation


MODELS: dict[str, type[KGEModel]] = {"distmult": DistMult, "complex": ComplEx}


def model_width(model: str, dim: int) -> int:
    """Return the stored row width for ``dim``: ComplEx keeps two reals per dimension."""
    return 2 * dim if model == "complex" else dim


def build_model(model: str, entity: torch.Tensor, relation: torch.Tensor) -> KGEModel:
    """Wrap embedding tables in the model class named ``model``."""
    try:
        cls = MODELS[model]
    except KeyError:
        raise ConfigError(f"unknown model {model!r}; choose one of {sorted(MODELS)}") from None
    return cls(entity, relation)

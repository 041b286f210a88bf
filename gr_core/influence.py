"""Influence of training triples on one prediction, by gradient rollback.

The influence of a training triple ``d' = (h', r', t')`` on ``Pr(t | h, r)`` is
the drop of that probability when ``d'``'s ledger entries are subtracted from
the rows they belong to (Lawrence, Sztyler & Niepert, AAAI 2021)::

    influence(d') = Pr(t | h, r; w) - Pr(t | h, r; w - gamma_d')

Rolling ``d'`` back changes at most two entity rows (``h'`` and ``t'``) and one
relation row (``r'``). They enter the probability in two places: the query
vector (when ``h'`` or ``t'`` is the query's head ``h``, or ``r' = r``) and the
scores of candidate tails ``h'`` and ``t'`` in the numerator and the softmax
normalisation. For many neighbours at once this is one matrix product
``(neighbours, width) x (width, entities)`` with two score columns per row
patched, in chunks whose size bounds the memory.
"""

from __future__ import annotations

import torch

from gr_core.ledger import Ledger
from gr_core.ledger_file import MappedLedger
from gr_core.models import KGEModel

# Largest number of scores one chunk may hold (64 MiB of float32).
CHUNK_SCORES = 1 << 24


def tail_probabilities(model: KGEModel, head: int, relation: int) -> torch.Tensor:
    """Return ``Pr(e | head, relation)`` for every entity ``e``: (num_entities,)."""
    device = model.entity.device
    scores = model.score_all_tails(
        torch.tensor([head], device=device), torch.tensor([relation], device=device)
    )
    return torch.softmax(scores[0], dim=0)


def default_chunk_size(num_entities: int) -> int:
    """Return how many neighbours fit in one chunk of ``CHUNK_SCORES`` scores."""
    return max(1, CHUNK_SCORES // num_entities)


def rollback_probabilities(
    model: KGEModel,
    ledger: Ledger | MappedLedger,
    train_triples: torch.Tensor,
    neighbour_ids: torch.Tensor,
    query: tuple[int, int, int],
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Return ``Pr(tail | head, relation)`` after rolling back each neighbour: (n,).

    ``query`` is ``(head, relation, tail)``; ``neighbour_ids`` (n,) index rows of
    ``train_triples`` and of the ledger.
    """
    chunk_size = chunk_size or default_chunk_size(model.num_entities)
    results = [
        _rollback_chunk(model, *_neighbour_rows(model, ledger, train_triples, ids), query)
        for ids in neighbour_ids.cpu().split(chunk_size)
    ]
    return torch.cat(results) if results else model.entity.new_zeros(0)


def _neighbour_rows(model, ledger, train_triples, ids: torch.Tensor):
    """Gather the neighbours' triples (n, 3) and ledger rows (n, width) x 3 on the model's device.

    Indexing happens where the ledger lives (on the CPU, or in a memory-mapped file,
    maybe in float16 or bfloat16); only the gathered rows move, converted to the
    model's dtype.
    """
    device, dtype = model.entity.device, model.entity.dtype
    triples = train_triples[ids.to(train_triples.device)].to(device)
    table = ledger.gather(ids, device=device, dtype=dtype)  # (n, 3, width)
    return triples, table[:, 0], table[:, 1], table[:, 2]


def _rollback_chunk(model, triples, gamma_head, gamma_relation, gamma_tail, query):
    head, relation, tail = query
    entity, relation_table = model.entity, model.relation
    their_head, their_relation, their_tail = triples.unbind(1)
    dtype = entity.dtype

    # The query's head and relation rows after rollback: (chunk, width).
    query_head = torch.addcmul(entity[head], gamma_head, (their_head == head)[:, None].to(dtype),
                               value=-1)  # fmt: skip
    query_head.addcmul_(gamma_tail, (their_tail == head)[:, None].to(dtype), value=-1)
    query_relation = torch.addcmul(
        relation_table[relation], gamma_relation, (their_relation == relation)[:, None].to(dtype),
        value=-1,
    )  # fmt: skip
    queries = model.query(query_head, query_relation)

    # Scores of every candidate tail; then the columns of the neighbour's own head
    # and tail rows, which lose their ledger vectors: <q, e - gamma> = <q, e> - <q, gamma>.
    # A self-loop's two ledger vectors were recorded separately and both belong
    # to its one row.
    scores = queries @ entity.T  # (chunk, num_entities)
    rows = torch.arange(len(triples), device=triples.device)
    head_drop = (queries * gamma_head).sum(1)
    tail_drop = (queries * gamma_tail).sum(1)
    loop = (their_head == their_tail).to(dtype)
    head_column = scores[rows, their_head] - head_drop - loop * tail_drop
    tail_column = scores[rows, their_tail] - tail_drop - loop * head_drop
    scores[rows, their_head] = head_column
    scores[rows, their_tail] = tail_column
    return torch.exp(scores[:, tail] - torch.logsumexp(scores, dim=1))


def first_order_influence(
    model: KGEModel,
    ledger: Ledger | MappedLedger,
    train_triples: torch.Tensor,
    neighbour_ids: torch.Tensor,
    query: tuple[int, int, int],
) -> torch.Tensor:
    """Return the first-order estimate ``grad Pr(tail | head, relation) . gamma_d'``: (n,).

    The linearisation of the rollback: ``Pr(w - gamma) ~ Pr(w) - grad Pr . gamma``.
    """
    head, relation, tail = query
    entity, relation_table = model.entity, model.relation
    head_row, relation_row = entity[head], relation_table[relation]
    query_vector = model.query(head_row, relation_row)  # (width,)
    probabilities = torch.softmax(entity @ query_vector, dim=0)

    # d Pr(tail) / d score_e = Pr(tail) * (1[e = tail] - Pr(e)).
    grad_scores = -probabilities[tail] * probabilities
    grad_scores[tail] += probabilities[tail]
    grad_query = grad_scores @ entity
    grad_head_row, grad_relation_row = model.query_backward(head_row, relation_row, grad_query)

    triples, gamma_head, gamma_relation, gamma_tail = _neighbour_rows(
        model, ledger, train_triples, neighbour_ids.cpu()
    )
    their_head, their_relation, their_tail = triples.unbind(1)
    # An entity row's gradient: through its score column, plus the query path for the head.
    influence = grad_scores[their_head] * (gamma_head @ query_vector)
    influence += grad_scores[their_tail] * (gamma_tail @ query_vector)
    influence += (their_head == head) * (gamma_head @ grad_head_row)
    influence += (their_tail == head) * (gamma_tail @ grad_head_row)
    influence += (their_relation == relation) * (gamma_relation @ grad_relation_row)
    return influence

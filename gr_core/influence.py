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

import math

import torch

from gr_core.ledger import Ledger
from gr_core.ledger_file import MappedLedger
from gr_core.models import KGEModel

# Largest number of scores one chunk may hold (64 MiB of float32).
CHUNK_SCORES = 1 << 24
# A neighbourhood of at most this many chunks is rolled back whole, without bounds.
FEW_CHUNKS = 4
# How far, in units of rounding of Pr, a bound must lie above the k-th exact value
# before its neighbour is skipped.
SLACK_ULPS = 100


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


def top_rollbacks(
    model: KGEModel,
    ledger: Ledger | MappedLedger,
    train_triples: torch.Tensor,
    neighbour_ids: torch.Tensor,
    query: tuple[int, int, int],
    k: int,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(positions, Pr after)`` of the neighbours that may be among the k most influential.

    The same k neighbours, with the same probabilities, as ``rollback_probabilities``
    over every neighbour, but neighbours are rolled back exactly only while their
    bound (``rollback_lower_bounds``) says they could still enter the top k: in
    order of the bound, a chunk at a time, until the next bound lies above the
    k-th lowest probability found so far. ``positions`` index ``neighbour_ids``
    in ascending order, so a stable sort breaks ties as over every neighbour.
    Large neighbourhoods gain most: on WN18RR a query of relation ``_hypernym``
    has about 35,000 neighbours, of which usually one chunk (413) is rolled back.
    A neighbourhood of at most ``FEW_CHUNKS`` chunks is rolled back whole.
    """
    chunk_size = chunk_size or default_chunk_size(model.num_entities)
    count = len(neighbour_ids)
    if count <= max(k, FEW_CHUNKS * chunk_size):  # bounding would not pay
        after = rollback_probabilities(
            model, ledger, train_triples, neighbour_ids, query, chunk_size
        )
        return torch.arange(count), after.cpu().double()
    bounds = rollback_lower_bounds(model, ledger, train_triples, neighbour_ids, query)
    order = torch.sort(bounds, stable=True).indices
    # Exact probabilities carry the rounding of the model's dtype (float32 ones
    # are off by up to about 20 ulps of Pr on WN18RR); a slack of SLACK_ULPS keeps
    # rounding from hiding a neighbour that belongs in.
    ulp = torch.finfo(model.entity.dtype).eps
    slack = SLACK_ULPS * ulp * float(tail_probabilities(model, *query[:2])[query[2]])
    chosen, found = [], []
    kth = float("inf")
    for start in range(0, count, chunk_size):
        if start >= k and float(bounds[order[start]]) > kth + slack:
            break
        block = order[start : start + chunk_size]
        chosen.append(block)
        found.append(
            rollback_probabilities(
                model, ledger, train_triples, neighbour_ids[block], query, chunk_size
            )
            .cpu()
            .double()
        )
        if start + len(block) >= k:
            kth = float(torch.cat(found).kthvalue(k).values)
    positions, after = torch.cat(chosen), torch.cat(found)
    ascending = torch.sort(positions).indices
    return positions[ascending], after[ascending]


def rollback_lower_bounds(
    model: KGEModel,
    ledger: Ledger | MappedLedger,
    train_triples: torch.Tensor,
    neighbour_ids: torch.Tensor,
    query: tuple[int, int, int],
    chunk_size: int = 1 << 14,
) -> torch.Tensor:
    """Return a lower bound of ``Pr(tail | head, relation)`` after each rollback: (n,), float64.

    In ``O(width)`` per neighbour instead of a pass over every entity. With the
    scores ``s_j = q . e_j``, their softmax ``p`` and the change ``D_j`` a rollback
    makes to them::

        log Pr'(tail) = log Pr(tail) + D_tail - log E_p[exp D]
        log E_p[exp D] <= min(b, E_p[D] + (b - a)^2 / 8)     (Hoeffding's lemma)

    where ``[a, b]`` holds every ``D_j``. The query vector moves by ``x = q' - q``;
    an entity that is neither the neighbour's head nor its tail keeps its row, so
    its ``D_j = x . e_j`` lies within ``+-|x| max_j |e_j|``, and
    ``E_p[D] = x . (p E)`` plus the exact corrections of the two patched columns.

    A confident prediction (``p`` nearly one-hot) makes ``D`` nearly constant
    under ``p``, which the range alone cannot see; so the smaller of that bound
    and Bennett's is used. With ``L_j = x . e_j`` for every entity, mean ``mu``,
    variance ``sigma^2 = x' Cov_p(E) x`` and ``L_j - mu <= M``::

        log E_p[exp L] <= mu + sigma^2 (e^M - 1 - M) / M^2     (Bennett)
        E_p[exp D] = E_p[exp L] + the two patched columns' exact corrections
    """
    head, relation, tail = query
    entity, relation_table = model.entity.double(), model.relation.double()
    query_vector = model.query(entity[head], relation_table[relation])
    scores = entity @ query_vector
    probabilities = torch.softmax(scores, dim=0)
    log_probability = scores[tail] - torch.logsumexp(scores, dim=0)
    mean_row = probabilities @ entity  # E_p[e_j]
    centred = entity - mean_row
    covariance = (centred * probabilities[:, None]).T @ centred  # Cov_p(e_j): (width, width)
    largest_norm = entity.norm(dim=1).max()

    results = []
    for ids in neighbour_ids.cpu().split(chunk_size):
        triples, gamma_head, gamma_relation, gamma_tail = (
            part.double() for part in _neighbour_rows(model, ledger, train_triples, ids)
        )
        their_head, their_relation, their_tail = triples.long().unbind(1)
        query_head = entity[head] - gamma_head * (their_head == head)[:, None]
        query_head -= gamma_tail * (their_tail == head)[:, None]
        query_relation = (
            relation_table[relation] - gamma_relation * (their_relation == relation)[:, None]
        )
        moved = model.query(query_head, query_relation)
        shift = moved - query_vector  # (n, width)

        # The two patched columns, exactly, and what the linear change alone would give.
        loop = (their_head == their_tail).double()
        head_drop, tail_drop = (moved * gamma_head).sum(1), (moved * gamma_tail).sum(1)
        head_change = (moved * entity[their_head]).sum(1) - head_drop - loop * tail_drop
        head_change -= scores[their_head]
        tail_change = (moved * entity[their_tail]).sum(1) - tail_drop - loop * head_drop
        tail_change -= scores[their_tail]
        head_linear = (shift * entity[their_head]).sum(1)
        tail_linear = (shift * entity[their_tail]).sum(1)

        linear_mean = shift @ mean_row  # E_p[x . e_j] as if no column were patched
        mean = linear_mean + probabilities[their_head] * (head_change - head_linear)
        mean += (1 - loop) * probabilities[their_tail] * (tail_change - tail_linear)
        reach = shift.norm(dim=1) * largest_norm
        upper = torch.maximum(reach, torch.maximum(head_change, tail_change))
        lower = torch.minimum(-reach, torch.minimum(head_change, tail_change))
        log_mean_exp = torch.minimum(upper, mean + (upper - lower) ** 2 / 8)

        # Bennett on L = x . e over every entity, then the patched columns swapped in.
        variance = ((shift @ covariance) * shift).sum(1).clamp(min=0)
        margin = (reach - linear_mean).clamp(min=0, max=700)
        growth = torch.where(
            margin < 1e-4,
            0.5 + margin / 6,
            (torch.expm1(margin) - margin) / margin.clamp(min=1e-4) ** 2,
        )
        log_linear = linear_mean + torch.minimum(variance * growth, reach**2 / 2)
        log_linear = torch.minimum(log_linear, reach)
        kept = 1 - probabilities[their_head] * torch.exp(head_linear - log_linear)
        kept -= (1 - loop) * probabilities[their_tail] * torch.exp(tail_linear - log_linear)
        patched = probabilities[their_head] * torch.exp(head_change)
        patched += (1 - loop) * probabilities[their_tail] * torch.exp(tail_change)
        bennett = torch.log(torch.exp(log_linear) * kept.clamp(min=0) + patched)
        bennett = torch.nan_to_num(bennett, nan=math.inf, neginf=math.inf)  # underflow: no bound
        log_mean_exp = torch.minimum(log_mean_exp, bennett)

        tail_shift = shift @ entity[tail]
        tail_shift = torch.where(their_tail == tail, tail_change, tail_shift)
        tail_shift = torch.where(their_head == tail, head_change, tail_shift)
        results.append(torch.exp(log_probability + tail_shift - log_mean_exp))
    return torch.cat(results).cpu() if results else torch.zeros(0, dtype=torch.float64)


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

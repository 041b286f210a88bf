"""Sort the triples of an explanation into the display categories of the paper's Figure 3.

An explanation of the prediction ``(head, relation, tail)`` is a list of training
triples. Each gets exactly one category, the first that fits in this order:

1. ``head-tail link``: the triple contains both ``head`` and ``tail`` (either slot,
   either direction; when ``head == tail``, any triple containing it).
2. ``two-hop path``: the triple links ``head`` with a third entity ``x`` (or ``x``
   with ``tail``) and the explanation also holds a triple for the other side, so
   together they form a path ``head - x - tail``. A self-loop is never on a path.
3. ``shared head``: contains ``head``, not ``tail``.
4. ``shared tail``: contains ``tail``, not ``head``.
5. ``shared relation``: has ``relation`` and touches neither entity.

A triple that fits none of them is not a neighbour of the prediction (section 5 of
DESIGN.md); it gets :data:`OTHER`, which is deliberately kept out of
:data:`CATEGORIES` so that colour legends and filters list only the real ones.
"""

from __future__ import annotations

import torch

HEAD_TAIL_LINK = "head-tail link"
TWO_HOP_PATH = "two-hop path"
SHARED_HEAD = "shared head"
SHARED_TAIL = "shared tail"
SHARED_RELATION = "shared relation"
OTHER = "other"

CATEGORIES = (HEAD_TAIL_LINK, TWO_HOP_PATH, SHARED_HEAD, SHARED_TAIL, SHARED_RELATION)

HEAD_SIDE = "head"
TAIL_SIDE = "tail"

# (via entity, positions of head-side triples, positions of tail-side triples)
PathPositions = tuple[int, list[int], list[int]]


def triple_via(head: int, tail: int, triple_row: tuple[int, int, int]) -> tuple[str, int] | None:
    """Return the side and middle entity if a triple could be half of a two-hop path.

    A triple ``(a, r, b)`` or ``(b, r, a)`` with ``a == head`` and ``b`` a third
    entity is a head-side half ``("head", b)``; one that joins a third entity with
    ``tail`` is a tail-side half ``("tail", b)``. Anything else returns ``None``:
    self-loops, head-tail links and triples that touch neither entity.
    """
    triple_head, _, triple_tail = (int(value) for value in triple_row)
    if triple_head == triple_tail:
        return None
    ends = {triple_head, triple_tail}
    if head in ends and tail in ends:
        return None

    for side, anchor in ((HEAD_SIDE, head), (TAIL_SIDE, tail)):
        if anchor in ends:
            (via,) = ends - {anchor}
            return side, via
    return None


def find_paths(head: int, tail: int, triples: torch.Tensor) -> list[PathPositions]:
    """Return the two-hop paths ``head - via - tail`` among ``triples``, sorted by via.

    ``triples`` is (n, 3) ``[head, relation, tail]``. Each path is
    ``(via, head_side_positions, tail_side_positions)`` with 0-based positions into
    ``triples`` in ascending order; a via appears only if both sides are non-empty.
    """
    if head == tail:
        return []  # every triple touching the entity is a head-tail link

    halves: dict[int, tuple[list[int], list[int]]] = {}
    for position, row in enumerate(triples.tolist()):
        found = triple_via(head, tail, row)
        if found is None:
            continue
        side, via = found
        head_side, tail_side = halves.setdefault(via, ([], []))
        (head_side if side == HEAD_SIDE else tail_side).append(position)

    return [
        (via, head_side, tail_side)
        for via, (head_side, tail_side) in sorted(halves.items())
        if head_side and tail_side
    ]


def single_category(head: int, relation: int, tail: int, triple_row) -> str:
    """Return the category of one triple, ignoring two-hop paths."""
    triple_head, triple_relation, triple_tail = (int(value) for value in triple_row)
    ends = {triple_head, triple_tail}

    if head in ends and tail in ends:
        return HEAD_TAIL_LINK
    if head in ends:
        return SHARED_HEAD
    if tail in ends:
        return SHARED_TAIL
    if triple_relation == relation:
        return SHARED_RELATION
    return OTHER


def categorise(
    head: int, relation: int, tail: int, triples: torch.Tensor
) -> tuple[list[str], list[PathPositions]]:
    """Give each explanation triple its category and find the two-hop paths.

    ``(head, relation, tail)`` is the explained prediction and ``triples`` the
    explanation, (n, 3) int64 rows ``[head, relation, tail]`` in rank order.
    Returns one category per row and the paths from :func:`find_paths`.
    """
    triples = torch.as_tensor(triples).reshape(-1, 3)
    categories = [single_category(head, relation, tail, row) for row in triples.tolist()]

    paths = find_paths(head, tail, triples)
    for _, head_side, tail_side in paths:
        for position in head_side + tail_side:
            categories[position] = TWO_HOP_PATH
    return categories, paths


def category_counts(categories: list[str]) -> dict[str, int]:
    """Count categories in :data:`CATEGORIES` order, zeros included, ``other`` last if any."""
    counts = dict.fromkeys(CATEGORIES, 0)
    for category in categories:
        if category not in counts and category != OTHER:
            raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
        counts[category] = counts.get(category, 0) + 1
    return counts

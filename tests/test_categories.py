"""Tests for gr_core.categories on a hand-made graph whose categories are known."""

import pytest
import torch

from gr_core.categories import (
    CATEGORIES,
    OTHER,
    categorise,
    category_counts,
    find_paths,
    triple_via,
)

PEOPLE = ("a", "b", "c", "d", "e", "f", "g", "x")
RELATIONS = ("knows", "likes", "mentors")
QUERY = ("a", "likes", "f")  # the explained prediction (a, likes, ?) -> f


def ids(*triples):
    """Turn named triples into an (n, 3) int64 tensor."""
    rows = [(PEOPLE.index(h), RELATIONS.index(r), PEOPLE.index(t)) for h, r, t in triples]
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)


def query_ids(head="a", relation="likes", tail="f"):
    return PEOPLE.index(head), RELATIONS.index(relation), PEOPLE.index(tail)


def run(*triples, query=QUERY):
    """Categorise named triples for a named query."""
    return categorise(*query_ids(*query), ids(*triples))


# Each triple with the category worked out by hand from the definitions.
KNOWN = (
    (("a", "knows", "f"), "head-tail link"),
    (("f", "likes", "a"), "head-tail link"),
    (("a", "knows", "c"), "two-hop path"),  # with (c, knows, f) below
    (("b", "knows", "a"), "shared head"),  # no b - f triple in the set
    (("c", "knows", "f"), "two-hop path"),
    (("e", "knows", "f"), "shared tail"),
    (("d", "likes", "e"), "shared relation"),
    (("a", "likes", "a"), "shared head"),  # a self-loop is never on a path
    (("a", "likes", "d"), "shared head"),  # relation r, but it touches the head
    (("f", "knows", "x"), "two-hop path"),  # the tail side reversed
    (("x", "likes", "a"), "two-hop path"),  # the head side reversed, with relation r
    (("g", "mentors", "b"), "other"),  # not a neighbour of the prediction
)


def test_each_triple_gets_its_known_category():
    triples = [triple for triple, _ in KNOWN]
    categories, _ = run(*triples)
    assert categories == [category for _, category in KNOWN]


def test_paths_report_via_and_positions_sorted_by_via():
    triples = [triple for triple, _ in KNOWN]
    _, paths = run(*triples)
    # Positions in KNOWN: c-path rows 2 and 4, x-path rows 10 (head side) and 9 (tail side).
    assert paths == [(PEOPLE.index("c"), [2], [4]), (PEOPLE.index("x"), [10], [9])]


def test_one_triple_alone_is_not_a_path():
    categories, paths = run(("a", "knows", "c"))
    assert categories == ["shared head"]
    assert paths == []

    categories, paths = run(("c", "knows", "f"))
    assert categories == ["shared tail"]
    assert paths == []


def test_paths_through_different_vias_do_not_join():
    categories, paths = run(("a", "knows", "c"), ("d", "knows", "f"))
    assert categories == ["shared head", "shared tail"]
    assert paths == []


def test_a_via_with_several_triples_on_each_side():
    categories, paths = run(
        ("c", "likes", "f"),
        ("a", "knows", "c"),
        ("e", "likes", "d"),
        ("c", "mentors", "a"),
        ("f", "knows", "c"),
    )
    assert categories == [
        "two-hop path",
        "two-hop path",
        "shared relation",
        "two-hop path",
        "two-hop path",
    ]
    assert paths == [(PEOPLE.index("c"), [1, 3], [0, 4])]


def test_self_loop_on_the_via_is_not_on_the_path():
    categories, paths = run(("a", "knows", "c"), ("c", "knows", "c"), ("c", "knows", "f"))
    assert categories == ["two-hop path", "other", "two-hop path"]
    assert paths == [(PEOPLE.index("c"), [0], [2])]


def test_self_loop_on_the_tail_is_a_shared_tail():
    categories, paths = run(("f", "knows", "f"))
    assert categories == ["shared tail"]
    assert paths == []


def test_relation_of_the_query_does_not_outrank_shared_head_or_tail():
    categories, _ = run(("a", "likes", "b"), ("c", "likes", "f"))
    assert categories == ["shared head", "shared tail"]


def test_head_equal_to_tail_makes_every_touching_triple_a_link():
    query = ("a", "likes", "a")
    categories, paths = run(
        ("a", "knows", "c"),
        ("c", "knows", "a"),
        ("a", "likes", "a"),
        ("d", "likes", "e"),
        ("d", "knows", "e"),
        query=query,
    )
    assert categories == [
        "head-tail link",
        "head-tail link",
        "head-tail link",
        "shared relation",
        "other",
    ]
    assert paths == []


def test_empty_explanation():
    categories, paths = categorise(*query_ids(), torch.empty(0, 3, dtype=torch.long))
    assert categories == []
    assert paths == []


def test_triple_via():
    head, _, tail = query_ids()
    c = PEOPLE.index("c")
    assert triple_via(head, tail, ids(("a", "knows", "c"))[0].tolist()) == ("head", c)
    assert triple_via(head, tail, ids(("c", "knows", "a"))[0].tolist()) == ("head", c)
    assert triple_via(head, tail, ids(("f", "knows", "c"))[0].tolist()) == ("tail", c)
    assert triple_via(head, tail, ids(("a", "knows", "f"))[0].tolist()) is None
    assert triple_via(head, tail, ids(("a", "knows", "a"))[0].tolist()) is None
    assert triple_via(head, tail, ids(("c", "knows", "d"))[0].tolist()) is None


def test_category_counts_in_category_order():
    counts = category_counts(["shared tail", "two-hop path", "shared tail", "head-tail link"])
    assert list(counts) == list(CATEGORIES)
    assert counts == {
        "head-tail link": 1,
        "two-hop path": 1,
        "shared head": 0,
        "shared tail": 2,
        "shared relation": 0,
    }


def test_category_counts_other_only_when_present():
    assert OTHER not in CATEGORIES
    assert OTHER not in category_counts([])
    counts = category_counts(["other", "shared head", "other"])
    assert list(counts) == [*CATEGORIES, OTHER]
    assert counts[OTHER] == 2
    assert counts["shared head"] == 1


def test_category_counts_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown category"):
        category_counts(["shared-head"])


def brute_force_paths(head, tail, triples):
    """Find paths by comparing every pair of triples, the obvious O(n^2) way."""
    rows = triples.tolist()
    found = {}
    for i, (h1, _, t1) in enumerate(rows):
        for j, (h2, _, t2) in enumerate(rows):
            first, second = {h1, t1}, {h2, t2}
            if h1 == t1 or h2 == t2 or head == tail or tail in first or head in second:
                continue
            if head in first and tail in second and (first - {head}) == (second - {tail}):
                (via,) = first - {head}
                heads, tails = found.setdefault(via, (set(), set()))
                heads.add(i)
                tails.add(j)
    return [(via, sorted(found[via][0]), sorted(found[via][1])) for via in sorted(found)]


@pytest.mark.parametrize("seed", range(5))
def test_paths_match_a_pairwise_search(seed):
    generator = torch.Generator().manual_seed(seed)
    num_entities = 7
    triples = torch.stack(
        (
            torch.randint(num_entities, (60,), generator=generator),
            torch.randint(3, (60,), generator=generator),
            torch.randint(num_entities, (60,), generator=generator),
        ),
        dim=1,
    )
    for head, tail in ((0, 1), (2, 2), (3, 0)):
        expected = brute_force_paths(head, tail, triples)
        assert find_paths(head, tail, triples) == expected
        categories, paths = categorise(head, 1, tail, triples)
        assert paths == expected
        on_path = {p for _, heads, tails in expected for p in heads + tails}
        assert {p for p, c in enumerate(categories) if c == "two-hop path"} == on_path

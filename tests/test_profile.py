"""Data-set profiles: counted by gr_core.profile, and again by hand or from the raw files."""

from collections import Counter

import pytest
import torch

from gr_core.data import DATA_DIR, load_dataset
from gr_core.profile import (
    dataset_sizes,
    entity_degrees,
    neighbourhood_sizes,
    profile_dataset,
    relation_frequencies,
)
from tests.conftest import TINY_TRIPLES

TINY_TEST = (
    ("bob", "mentors", "dave"),
    ("alice", "knows", "alice"),  # head and tail are one entity
    ("erin", "likes", "bob"),
)


def raw_triples(split: str) -> list[tuple[str, str, str]]:
    """Read a Nations split straight from its file."""
    text = (DATA_DIR / "nations" / f"{split}.txt").read_text(encoding="utf-8")
    return [tuple(line.split("\t")) for line in text.splitlines() if line.strip()]


@pytest.fixture
def tiny_dataset(tmp_path):
    """The tiny graph of conftest as a data set, with three test triples."""

    def write(name: str, triples) -> None:
        lines = "".join("\t".join(triple) + "\n" for triple in triples)
        (tmp_path / name).write_text(lines, encoding="utf-8")

    write("train.txt", TINY_TRIPLES)
    write("valid.txt", [("bob", "knows", "dave")])
    write("test.txt", TINY_TEST)
    return load_dataset(tmp_path)


def test_tiny_graph_counts_match_a_hand_count(tiny_dataset):
    assert dataset_sizes(tiny_dataset) == {
        "entities": 5,
        "relations": 3,
        "train": 12,
        "valid": 1,
        "test": 3,
    }
    degrees = dict(zip(*entity_degrees(tiny_dataset)[["entity", "degree"]].values.T, strict=True))
    # alice's self-loop counts once: 12 triples name 24 ends, 23 distinct.
    assert degrees == {"alice": 5, "bob": 4, "carol": 5, "dave": 5, "erin": 4}
    relations = relation_frequencies(tiny_dataset)
    assert list(relations["relation"]) == ["knows", "likes", "mentors"]  # ties keep id order
    assert list(relations["triples"]) == [4, 4, 4]
    assert list(relations["share"]) == pytest.approx([1 / 3] * 3)


def test_tiny_graph_neighbourhoods_match_a_hand_count(tiny_dataset):
    table = neighbourhood_sizes(tiny_dataset)

    assert [tuple(row) for row in table[["head", "relation", "tail"]].values] == list(TINY_TEST)
    # bob (rows 0 1 6 9), dave (2 3 7 8 10), mentors (8 9 10 11): 10 distinct rows.
    # alice (0 4 5 8 10), knows (0 1 2 3): 8. erin (3 6 7 11), bob, likes (4 5 6 7): 9.
    assert list(table["neighbours"]) == [10, 8, 9]


def test_nations_sizes_match_the_raw_files(nations):
    splits = {split: raw_triples(split) for split in ("train", "valid", "test")}
    train = splits["train"]
    entities = {head for head, _, _ in train} | {tail for _, _, tail in train}

    assert dataset_sizes(nations) == {
        "entities": len(entities),
        "relations": len({relation for _, relation, _ in train}),
        **{split: len(triples) for split, triples in splits.items()},
    }
    assert dataset_sizes(nations)["entities"] == 14
    assert dataset_sizes(nations)["relations"] == 55


def test_nations_relation_frequencies_match_the_raw_file(nations):
    counted = Counter(relation for _, relation, _ in raw_triples("train"))
    table = relation_frequencies(nations)

    assert dict(zip(table["relation"], table["triples"], strict=True)) == dict(counted)
    assert list(table["triples"]) == sorted(counted.values(), reverse=True)
    assert table["share"].sum() == pytest.approx(1.0)


def test_nations_degrees_match_the_raw_file(nations):
    counted = Counter()
    for head, _, tail in raw_triples("train"):
        counted.update({head, tail})  # a set: a self-loop counts once
    table = entity_degrees(nations)

    assert dict(zip(table["entity"], table["degree"], strict=True)) == dict(counted)
    assert list(table["entity"]) == list(nations.entities)


def test_nations_neighbourhoods_match_a_scan_of_every_training_triple(nations):
    table = neighbourhood_sizes(nations)
    train = nations.train

    expected = []
    for head, relation, tail in nations.test.tolist():
        touches = (train[:, 0] == head) | (train[:, 2] == head)
        touches |= (train[:, 0] == tail) | (train[:, 2] == tail)
        expected.append(int((touches | (train[:, 1] == relation)).sum()))
    assert list(table["neighbours"]) == expected
    assert len(table) == len(nations.test)


def test_profile_reports_progress_and_bundles_the_counts(nations):
    calls = []
    profile = profile_dataset(nations, on_progress=lambda done, total: calls.append((done, total)))

    total = len(nations.test)
    assert calls == [(total, total)]  # one pass, reported when done
    assert profile.sizes == dataset_sizes(nations)
    assert profile.relations.equals(relation_frequencies(nations))
    assert profile.degrees.equals(entity_degrees(nations))
    assert profile.mean_neighbourhood == pytest.approx(profile.neighbourhoods["neighbours"].mean())
    # The paper reports 508 neighbours on average for Nations (with predicted tails).
    assert 300 < profile.mean_neighbourhood < 700


def test_neighbourhoods_of_chosen_triples(nations):
    triples = torch.tensor([[0, 0, 1], [2, 3, 2]])
    table = neighbourhood_sizes(nations, triples)

    assert list(table["head"]) == [nations.entities[0], nations.entities[2]]
    assert list(table["relation"]) == [nations.relations[0], nations.relations[3]]
    assert (table["neighbours"] > 0).all()

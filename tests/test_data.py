"""Tests for gr_core.data: loading data-set folders into id tensors."""

import hashlib
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from gr_core.data import (
    BUILTIN_DATASETS,
    DATA_DIR,
    Dataset,
    DatasetWarning,
    builtin_dataset_path,
    load_dataset,
)
from gr_core.errors import DatasetError, UnknownNameError

TRAIN = [
    ("paris", "capital_of", "france"),
    ("berlin", "capital_of", "germany"),
    ("france", "borders", "germany"),
    ("germany", "borders", "france"),
    ("rome", "capital_of", "italy"),
]
VALID = [("italy", "borders", "france")]
TEST = [("paris", "borders", "germany")]


def _lines(triples) -> str:
    """Return triples as tab-separated lines with LF endings."""
    return "".join("\t".join(triple) + "\n" for triple in triples)


def _write_dataset(folder: Path, train=TRAIN, valid=VALID, test=TEST) -> Path:
    """Write a small data set folder and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, triples in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"{split}.txt").write_text(_lines(triples), encoding="utf-8", newline="")
    return folder


def _load_quietly(folder) -> Dataset:
    """Load a data set and fail if it issues any DatasetWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)
        return load_dataset(folder)


def test_nations_counts():
    dataset = load_dataset("nations")
    assert dataset.summary() == {
        "name": "nations",
        "entities": 14,
        "relations": 55,
        "train": 1592,
        "valid": 199,
        "test": 201,
    }
    assert dataset.num_entities == 14 and dataset.num_relations == 55
    assert dataset.source == "nations"
    assert dataset.report.dropped == {"valid": 0, "test": 0}


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("nations", (1592, 199, 201, 14, 55)),
        ("kinships", (8544, 1068, 1074, 104, 25)),
        ("umls", (5216, 652, 661, 135, 46)),
    ],
)
def test_all_builtins_load(name, counts):
    dataset = _load_quietly(name)
    found = (len(dataset.train), len(dataset.valid), len(dataset.test))
    assert (*found, dataset.num_entities, dataset.num_relations) == counts
    assert builtin_dataset_path(name) == DATA_DIR / name
    for split in (dataset.train, dataset.valid, dataset.test):
        assert split.dtype == torch.int64 and split.shape[1] == 3


def test_builtin_names_match_data_folder():
    assert BUILTIN_DATASETS == ("nations", "kinships", "umls")
    for name in BUILTIN_DATASETS:
        assert (DATA_DIR / name / "README.md").is_file()


def test_source_reloads_the_same_data(tmp_path):
    folder = _write_dataset(tmp_path / "tiny")
    dataset = _load_quietly(folder)
    assert dataset.name == "tiny"
    assert Path(dataset.source).is_absolute()
    again = _load_quietly(dataset.source)
    assert torch.equal(again.train, dataset.train)
    assert again.content_hash == dataset.content_hash


def test_ids_are_sorted_and_round_trip(tmp_path):
    dataset = _load_quietly(_write_dataset(tmp_path / "tiny"))
    assert list(dataset.entities) == sorted(dataset.entities)
    assert list(dataset.relations) == sorted(dataset.relations)
    assert dataset.entities == ("berlin", "france", "germany", "italy", "paris", "rome")
    for row, (head, relation, tail) in zip(dataset.train.tolist(), TRAIN, strict=True):
        assert dataset.entities[row[0]] == head
        assert dataset.relations[row[1]] == relation
        assert dataset.entities[row[2]] == tail


def test_builtin_ids_round_trip_file_order():
    dataset = load_dataset("nations")
    lines = (DATA_DIR / "nations" / "train.txt").read_text(encoding="utf-8").splitlines()
    for row, line in zip(dataset.train.tolist(), lines, strict=True):
        head, relation, tail = line.split("\t")
        assert (dataset.entities[row[0]], dataset.relations[row[1]]) == (head, relation)
        assert dataset.entities[row[2]] == tail


def test_crlf_and_bom_give_same_triples_and_ids(tmp_path):
    plain = _load_quietly(_write_dataset(tmp_path / "plain"))
    windows = _write_dataset(tmp_path / "windows")
    for split in ("train", "valid", "test"):
        path = windows / f"{split}.txt"
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    converted = _load_quietly(windows)
    assert converted.entities == plain.entities
    assert converted.relations == plain.relations
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(converted, split), getattr(plain, split))
    assert converted.content_hash != plain.content_hash


def test_blank_lines_are_skipped(tmp_path):
    folder = _write_dataset(tmp_path / "blank")
    train = folder / "train.txt"
    train.write_text("\n" + _lines(TRAIN[:2]) + "  \n\n" + _lines(TRAIN[2:]) + "\n\n")
    dataset = _load_quietly(folder)
    assert len(dataset.train) == len(TRAIN)


def test_wrong_column_count_names_file_and_line(tmp_path):
    folder = _write_dataset(tmp_path / "bad")
    (folder / "valid.txt").write_text(_lines(VALID) + "italy\tborders\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(folder)
    message = str(caught.value)
    assert "valid.txt" in message
    assert "line 2" in message
    assert "found 2" in message and "expected 3" in message
    assert "'italy\\tborders'" in message


def test_long_bad_line_is_truncated(tmp_path):
    folder = _write_dataset(tmp_path / "long")
    (folder / "train.txt").write_text("x" * 500 + "\n")
    with pytest.raises(DatasetError, match="line 1") as caught:
        load_dataset(folder)
    assert "x" * 100 not in str(caught.value)


def test_empty_field_is_rejected(tmp_path):
    folder = _write_dataset(tmp_path / "hole")
    (folder / "test.txt").write_text(_lines(TEST) + "paris\t\tgermany\n")
    with pytest.raises(DatasetError, match=r"test\.txt, line 2: field 2 is empty"):
        load_dataset(folder)


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_empty_file_is_rejected(tmp_path, split):
    folder = _write_dataset(tmp_path / "empty")
    (folder / f"{split}.txt").write_text("\n\n")
    with pytest.raises(DatasetError, match=rf"{split}\.txt.*empty"):
        load_dataset(folder)


def test_missing_split_file_is_named(tmp_path):
    folder = _write_dataset(tmp_path / "partial")
    (folder / "valid.txt").unlink()
    with pytest.raises(DatasetError, match=r"valid\.txt") as caught:
        load_dataset(folder)
    assert "partial" in str(caught.value)


def test_non_utf8_names_the_line(tmp_path):
    folder = _write_dataset(tmp_path / "latin")
    (folder / "train.txt").write_bytes(_lines(TRAIN[:2]).encode() + b"caf\xff\tr\tx\n")
    with pytest.raises(DatasetError, match=r"train\.txt, line 3: not valid UTF-8"):
        load_dataset(folder)


def test_unseen_entity_in_test_is_dropped_with_one_warning(tmp_path):
    test = [*TEST, ("paris", "borders", "spain"), ("madrid", "capital_of", "spain")]
    folder = _write_dataset(tmp_path / "unseen", test=test)
    with pytest.warns(DatasetWarning) as caught:
        dataset = load_dataset(folder)
    assert len(caught) == 1
    assert "test 2" in str(caught[0].message)
    assert caught[0].filename == __file__
    assert dataset.report.dropped == {"valid": 0, "test": 2}
    assert len(dataset.test) == 1
    assert "spain" not in dataset.entities


def test_unseen_relation_in_valid_is_dropped(tmp_path):
    valid = [*VALID, ("italy", "allied_with", "france")]
    folder = _write_dataset(tmp_path / "unseen", valid=valid)
    with pytest.warns(DatasetWarning, match="valid 1"):
        dataset = load_dataset(folder)
    assert dataset.report.dropped == {"valid": 1, "test": 0}
    assert len(dataset.valid) == 1


def test_duplicates_are_counted_and_kept(tmp_path):
    train = [*TRAIN, TRAIN[0], TRAIN[0]]
    folder = _write_dataset(tmp_path / "dup", train=train, test=[*TEST, *TEST])
    with pytest.warns(DatasetWarning, match="duplicate") as caught:
        dataset = load_dataset(folder)
    assert len(caught) == 1
    assert dataset.report.duplicates == {"train": 2, "valid": 0, "test": 1}
    assert len(dataset.train) == len(TRAIN) + 2
    assert len(dataset.test) == 2


def test_name_files_give_labels(tmp_path):
    folder = _write_dataset(tmp_path / "named")
    (folder / "entity_names.tsv").write_text(
        "paris\tParis, France\textra column\nfrance\tFrance\nnowhere\tNot in data\n"
    )
    (folder / "relation_names.tsv").write_text("capital_of\tis the capital of\r\n")
    dataset = _load_quietly(folder)
    labels = dict(zip(dataset.entities, dataset.entity_labels, strict=True))
    assert labels == {
        "berlin": "berlin",
        "france": "France",
        "germany": "germany",
        "italy": "italy",
        "paris": "Paris, France",
        "rome": "rome",
    }
    relation_labels = dict(zip(dataset.relations, dataset.relation_labels, strict=True))
    assert relation_labels == {"borders": "borders", "capital_of": "is the capital of"}


def test_malformed_name_file_names_the_line(tmp_path):
    folder = _write_dataset(tmp_path / "badnames")
    (folder / "entity_names.tsv").write_text("paris\tParis\nfrance\n")
    with pytest.raises(DatasetError, match=r"entity_names\.tsv, line 2: found 1"):
        load_dataset(folder)


def test_conflicting_names_are_rejected(tmp_path):
    folder = _write_dataset(tmp_path / "twice")
    (folder / "relation_names.tsv").write_text("borders\tborders\nborders\tis next to\n")
    with pytest.raises(DatasetError, match=r"relation_names\.tsv, line 2.*line 1"):
        load_dataset(folder)


def test_unknown_builtin_suggests_close_match():
    with pytest.raises(UnknownNameError) as caught:
        load_dataset("nation")
    assert caught.value.close_matches[0] == "nations"
    assert "'nations'" in str(caught.value)
    with pytest.raises(UnknownNameError):
        builtin_dataset_path("wordnet")


def test_missing_folder_path_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "absent")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(str(tmp_path / "absent"))
    a_file = tmp_path / "train.txt"
    a_file.write_text(_lines(TRAIN))
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset(a_file)


def test_content_hash_ignores_location_and_sees_one_byte(tmp_path):
    first = _write_dataset(tmp_path / "a")
    second = tmp_path / "deeper" / "b"
    shutil.copytree(first, second)
    hash_first = _load_quietly(first).content_hash
    assert hash_first.startswith("sha256:") and len(hash_first) == len("sha256:") + 64
    assert _load_quietly(second).content_hash == hash_first
    test_file = second / "test.txt"
    test_file.write_bytes(test_file.read_bytes().replace(b"germany", b"germanx", 1))
    with pytest.warns(DatasetWarning):
        assert load_dataset(second).content_hash != hash_first


def test_content_hash_follows_the_documented_layout(tmp_path):
    folder = _write_dataset(tmp_path / "layout")
    (folder / "relation_names.tsv").write_text("borders\tborders on\n")
    digest = hashlib.sha256()
    for file_name in ("train.txt", "valid.txt", "test.txt", "relation_names.tsv"):
        data = (folder / file_name).read_bytes()
        digest.update(file_name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    assert _load_quietly(folder).content_hash == f"sha256:{digest.hexdigest()}"


def test_content_hash_covers_name_files(tmp_path):
    folder = _write_dataset(tmp_path / "names")
    before = _load_quietly(folder).content_hash
    (folder / "entity_names.tsv").write_text("paris\tParis\n")
    assert _load_quietly(folder).content_hash != before


def test_entity_and_relation_id_by_key_and_label(tmp_path):
    folder = _write_dataset(tmp_path / "lookup")
    (folder / "entity_names.tsv").write_text("paris\tParis\n")
    (folder / "relation_names.tsv").write_text("borders\tshares a border with\n")
    dataset = _load_quietly(folder)
    assert dataset.entity_id("paris") == dataset.entities.index("paris")
    assert dataset.entity_id("Paris") == dataset.entities.index("paris")
    assert dataset.relation_id("shares a border with") == dataset.relations.index("borders")
    with pytest.raises(UnknownNameError) as caught:
        dataset.entity_id("pariss")
    assert "paris" in caught.value.close_matches
    with pytest.raises(UnknownNameError):
        dataset.relation_id("capital")


def test_shared_label_must_be_resolved_by_key(tmp_path):
    folder = _write_dataset(tmp_path / "shared")
    (folder / "entity_names.tsv").write_text("paris\tCapital\nrome\tCapital\n")
    dataset = _load_quietly(folder)
    with pytest.raises(UnknownNameError, match="use the key") as caught:
        dataset.entity_id("Capital")
    assert caught.value.close_matches == ["paris", "rome"]


def test_shown_names_add_the_key_only_to_a_shared_label(tmp_path):
    folder = _write_dataset(tmp_path / "shown")
    (folder / "entity_names.tsv").write_text("paris\tCapital\nrome\tCapital\n")
    dataset = _load_quietly(folder)
    shown = dict(zip(dataset.entities, dataset.entity_display, strict=True))
    assert shown["paris"] == "Capital (paris)" and shown["rome"] == "Capital (rome)"
    unlabelled = [key for key in dataset.entities if key not in ("paris", "rome")]
    assert unlabelled and all(shown[key] == key for key in unlabelled)
    assert len(set(dataset.entity_display)) == dataset.num_entities
    assert dataset.relation_display == dataset.relation_labels  # no shared relation label

    # What is shown can be typed back: a shown name finds its entity.
    assert dataset.entity_id("Capital (rome)") == dataset.entities.index("rome")
    assert all(dataset.entity_id(name) == i for i, name in enumerate(dataset.entity_display))
    with pytest.raises(UnknownNameError, match="'Capital \\(paris\\)'"):
        dataset.entity_id("Capital")
    with pytest.raises(UnknownNameError) as caught:
        dataset.entity_id("Capital (romee)")
    assert "Capital (rome)" in caught.value.close_matches


def test_hostile_names_survive_unchanged(tmp_path):
    script = "<img src=x onerror=alert(1)>"
    spaced = " spaced  name "
    unicode_name = "Zürich ✓ 東京"
    train = [(script, "r e l", spaced), (spaced, "r e l", unicode_name)]
    test = [(unicode_name, "r e l", script)]
    folder = _write_dataset(tmp_path / "hostile", train=train, valid=test, test=test)
    (folder / "entity_names.tsv").write_text(f"{script}\t\"'); DROP TABLE x;--\n")
    dataset = _load_quietly(folder)
    assert set(dataset.entities) == {script, spaced, unicode_name}
    assert dataset.relations == ("r e l",)
    assert dataset.entity_labels[dataset.entities.index(script)] == "\"'); DROP TABLE x;--"
    assert dataset.entity_id(spaced) == dataset.entities.index(spaced)
    assert dataset.entities[dataset.test[0, 2]] == script

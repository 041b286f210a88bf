"""Load knowledge-graph data sets: train/valid/test triples plus optional readable names.

Three kinds of source: a built-in name (``nations``, ``kinships``, ``umls``,
committed under ``data/``), an external name (``fb15k-237``, ``wn18rr``,
``ml-100k``, read from a data folder the user names; see ``gr_core.external``)
or the path of a folder. A folder holds ``train.txt``, ``valid.txt`` and
``test.txt``, or MovieLens's ``u.data`` and ``u.item`` (split by a seed; see
``gr_core.movielens``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from gr_core.errors import ConfigError, DatasetError, UnknownNameError
from gr_core.external import EXTERNAL_DATASETS, EXTERNAL_NAMES, external_folder
from gr_core.movielens import DEFAULT_SPLIT_SEED, RATINGS_FILE, read_movielens
from gr_core.names import Names

logger = logging.getLogger(__name__)

BUILTIN_DATASETS: tuple[str, ...] = ("nations", "kinships", "umls")
DATA_DIR: Path = Path(__file__).resolve().parent.parent / "data"

SPLITS: tuple[str, ...] = ("train", "valid", "test")
ENTITY_NAMES_FILE = "entity_names.tsv"
RELATION_NAMES_FILE = "relation_names.tsv"
HASHED_FILES: tuple[str, ...] = (
    "train.txt",
    "valid.txt",
    "test.txt",
    ENTITY_NAMES_FILE,
    RELATION_NAMES_FILE,
)

_BOM = b"\xef\xbb\xbf"
_SHOWN_CHARS = 80
# How far up the stack the caller of load_dataset() sits, seen from _warn().
_WARN_STACKLEVEL = 5

Triple = tuple[str, str, str]


class DatasetWarning(UserWarning):
    """A data set loaded, but some of its lines were dropped or repeated."""


@dataclass(frozen=True)
class LoadReport:
    """Count what loading left out or found repeated, per split."""

    dropped: dict[str, int]
    duplicates: dict[str, int]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Hold a data set's vocabulary and its triples as (n, 3) int64 id tensors.

    ``tail_candidates`` (num_entities,) bool marks the entities that may answer a
    query ``(head, relation, ?)``; None allows every entity. MovieLens allows the
    movies only, never a user. Filtered metrics, predictions and the filtered
    top-1 rank candidates only. Training does not use it: the loss still scores
    every entity (users included), as in the paper. ``split_seed`` is the seed
    that split a data set that came unsplit (MovieLens), else None.
    """

    name: str
    source: str
    entities: tuple[str, ...]
    relations: tuple[str, ...]
    entity_labels: tuple[str, ...]
    relation_labels: tuple[str, ...]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    content_hash: str
    report: LoadReport
    tail_candidates: torch.Tensor | None = None
    split_seed: int | None = None

    def __post_init__(self):
        candidates = self.tail_candidates
        if candidates is not None and (
            candidates.dtype != torch.bool or tuple(candidates.shape) != (len(self.entities),)
        ):
            raise DatasetError(
                f"tail_candidates must be a bool tensor of shape ({len(self.entities)},), "
                f"got {candidates.dtype} {tuple(candidates.shape)}"
            )

    @property
    def num_entities(self) -> int:
        """Return the number of entities."""
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        """Return the number of relations."""
        return len(self.relations)

    @cached_property
    def query_heads(self) -> tuple[str, ...]:
        """Return the entity keys a query ``(head, relation, ?)`` sensibly starts from.

        Every entity, unless the data set restricts its tails: then only the
        entities that head a triple in some split (MovieLens: the users, since a
        movie never rates anything).
        """
        if self.tail_candidates is None:
            return self.entities
        heads = torch.cat([self.train[:, 0], self.valid[:, 0], self.test[:, 0]]).unique()
        return tuple(self.entities[i] for i in heads.tolist())

    @cached_property
    def entity_names(self) -> Names:
        """Keys, labels and shown names of the entities, to find and search them by."""
        return Names("entity", self.entities, self.entity_labels)

    @cached_property
    def relation_names(self) -> Names:
        """Keys, labels and shown names of the relations."""
        return Names("relation", self.relations, self.relation_labels)

    @property
    def entity_display(self) -> tuple[str, ...]:
        """Return what to show for each entity: its label, with the key where it is shared."""
        return self.entity_names.shown

    @property
    def relation_display(self) -> tuple[str, ...]:
        """Return what to show for each relation: its label, with the key where it is shared."""
        return self.relation_names.shown

    def entity_id(self, key_or_label: str) -> int:
        """Return the id of the entity with this key, else this readable label or shown name."""
        return self.entity_names.find(key_or_label)

    def relation_id(self, key_or_label: str) -> int:
        """Return the id of the relation with this key, else this readable label or shown name."""
        return self.relation_names.find(key_or_label)

    def summary(self) -> dict[str, object]:
        """Return the name and the entity, relation and per-split triple counts."""
        return {
            "name": self.name,
            "entities": self.num_entities,
            "relations": self.num_relations,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
        }


def builtin_dataset_path(name: str) -> Path:
    """Return the folder of a built-in data set."""
    if name not in BUILTIN_DATASETS:
        raise UnknownNameError("data set", name, list(BUILTIN_DATASETS))
    return DATA_DIR / name


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    split_seed: int | None = None,
) -> Dataset:
    """Load a built-in or external data set by name, or a data set folder by path.

    External data sets are read from ``data_dir/<name>/``; ``data_dir`` defaults
    to the environment variable GR_DATA_DIR. ``split_seed`` splits a data set
    that comes unsplit (MovieLens; default ``DEFAULT_SPLIT_SEED``); giving it
    for a data set that comes split raises ConfigError.
    """
    folder, name, source = _resolve(name_or_path, data_dir)
    if _holds_movielens(folder):
        parts = _read_movielens(folder, DEFAULT_SPLIT_SEED if split_seed is None else split_seed)
    elif split_seed is not None:
        raise ConfigError(
            f"data set {name!r} comes split into train.txt, valid.txt and test.txt; "
            "split_seed applies only to MovieLens (u.data)"
        )
    else:
        parts = _read_folder(folder)
    dataset = _assemble(name, source, parts)
    logger.debug("loaded data set %s from %s: %s", name, folder, dataset.summary())
    return dataset


def available_datasets(data_dir: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Return the built-in names, then the external names whose files are in the data folder."""
    found = []
    for name in EXTERNAL_NAMES:
        try:
            external_folder(name, data_dir)
        except DatasetError:
            continue
        found.append(name)
    return (*BUILTIN_DATASETS, *found)


@dataclass(frozen=True)
class _Parts:
    """A data set as read from disk, before ids: key triples, vocabulary order, labels, hash."""

    splits: dict[str, list[Triple]]
    entity_order: tuple[str, ...]  # ids follow this order, keeping only entities of train
    relation_order: tuple[str, ...]
    entity_labels: dict[str, str]
    relation_labels: dict[str, str]
    content_hash: str
    tail_candidates: frozenset[str] | None = None
    split_seed: int | None = None


def _read_folder(folder: Path) -> _Parts:
    """Read a folder of split files and optional name files."""
    raw = _read_raw_files(folder)
    splits = {
        split: _parse_triples(folder / f"{split}.txt", raw[f"{split}.txt"]) for split in SPLITS
    }
    entities, relations = _vocabulary(splits["train"])
    return _Parts(
        splits=splits,
        entity_order=entities,
        relation_order=relations,
        entity_labels=_names(folder, ENTITY_NAMES_FILE, raw),
        relation_labels=_names(folder, RELATION_NAMES_FILE, raw),
        content_hash=_content_hash(raw),
    )


def _holds_movielens(folder: Path) -> bool:
    """Return whether a folder holds MovieLens's ratings rather than split files."""
    return (folder / RATINGS_FILE).is_file() and not (folder / "train.txt").is_file()


def _read_movielens(folder: Path, split_seed: int) -> _Parts:
    """Read MovieLens-100k and split its ratings with ``split_seed``."""
    graph = read_movielens(folder, split_seed)
    return _Parts(
        splits=graph.splits,
        entity_order=graph.entities,
        relation_order=graph.relations,
        entity_labels=graph.labels,
        relation_labels=graph.labels,
        content_hash=graph.content_hash,
        tail_candidates=graph.tail_candidates,
        split_seed=split_seed,
    )


def _assemble(name: str, source: str, parts: _Parts) -> Dataset:
    """Return the Dataset: ids for what train holds; valid/test triples unseen in it dropped."""
    splits, train = parts.splits, parts.splits["train"]
    seen_entities = {head for head, _, _ in train} | {tail for _, _, tail in train}
    seen_relations = {relation for _, relation, _ in train}
    entities = tuple(key for key in parts.entity_order if key in seen_entities)
    relations = tuple(key for key in parts.relation_order if key in seen_relations)

    kept, dropped = _drop_unseen(splits, seen_entities, seen_relations)
    duplicates = {split: len(triples) - len(set(triples)) for split, triples in splits.items()}
    _report_problems(name, dropped, duplicates)
    entity_index = {key: i for i, key in enumerate(entities)}
    relation_index = {key: i for i, key in enumerate(relations)}
    tensors = {s: _to_ids(kept[s], entity_index, relation_index) for s in SPLITS}

    candidates = None
    if parts.tail_candidates is not None:
        candidates = torch.tensor([key in parts.tail_candidates for key in entities])
    return Dataset(
        name=name,
        source=source,
        entities=entities,
        relations=relations,
        entity_labels=tuple(parts.entity_labels.get(key, key) for key in entities),
        relation_labels=tuple(parts.relation_labels.get(key, key) for key in relations),
        train=tensors["train"],
        valid=tensors["valid"],
        test=tensors["test"],
        content_hash=parts.content_hash,
        report=LoadReport(dropped=dropped, duplicates=duplicates),
        tail_candidates=candidates,
        split_seed=parts.split_seed,
    )


def _resolve(
    name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None
) -> tuple[Path, str, str]:
    """Return the folder, the display name and the reload source for a name or path."""
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_DATASETS:
        return builtin_dataset_path(name_or_path), name_or_path, name_or_path
    if isinstance(name_or_path, str) and name_or_path in EXTERNAL_DATASETS:
        return external_folder(name_or_path, data_dir), name_or_path, name_or_path
    text = os.fspath(name_or_path)
    path = Path(text)
    if text and path.is_dir():
        folder = path.resolve()
        return folder, folder.name, str(folder)
    if text and path.exists():
        raise DatasetError(f"data set path {text!r} is not a folder")
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if not isinstance(name_or_path, str) or any(sep in text for sep in separators):
        raise DatasetError(f"data set folder {text!r} does not exist")
    raise UnknownNameError("data set", text, [*BUILTIN_DATASETS, *EXTERNAL_NAMES])


def _read_raw_files(folder: Path) -> dict[str, bytes]:
    """Return the bytes of every data-set file present; the three splits are required."""
    raw: dict[str, bytes] = {}
    for file_name in HASHED_FILES:
        path = folder / file_name
        if not path.is_file():
            if file_name.endswith(".txt"):
                raise DatasetError(f"data set folder {str(folder)!r} has no {file_name}")
            continue
        try:
            raw[file_name] = path.read_bytes()
        except OSError as error:
            raise DatasetError(f"cannot read {str(path)!r}: {error}") from error
    return raw


def _content_hash(raw: dict[str, bytes]) -> str:
    """Return a sha256 over the names, lengths and bytes of the present files."""
    digest = hashlib.sha256()
    for file_name in HASHED_FILES:
        data = raw.get(file_name)
        if data is None:
            continue
        digest.update(file_name.encode("utf-8") + b"\0")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return f"sha256:{digest.hexdigest()}"


def _decode(path: Path, data: bytes) -> str:
    """Return the UTF-8 text of a file, without a byte-order mark."""
    body = data.removeprefix(_BOM)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        line_number = body.count(b"\n", 0, error.start) + 1
        bad = body[error.start : error.end]
        raise DatasetError(
            f"{path}, line {line_number}: not valid UTF-8 (byte {bad!r} cannot be decoded)"
        ) from None


def _content_lines(path: Path, data: bytes) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line) for every line with content, without line ends."""
    for number, raw_line in enumerate(_decode(path, data).split("\n"), start=1):
        line = raw_line.removesuffix("\r")
        if line and not line.isspace():
            yield number, line


def _shown(line: str) -> str:
    """Return a line repr'd and cut to a readable length."""
    text = repr(line)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _check_fields(path: Path, number: int, line: str, fields: list[str], expected: str) -> None:
    """Raise DatasetError if any field is empty or only whitespace."""
    for position, field in enumerate(fields, start=1):
        if not field or field.isspace():
            raise DatasetError(
                f"{path}, line {number}: field {position} is empty "
                f"(expected {expected}): {_shown(line)}"
            )


def _parse_triples(path: Path, data: bytes) -> list[Triple]:
    """Return the (head, relation, tail) strings of a split file, in file order."""
    triples: list[Triple] = []
    for number, line in _content_lines(path, data):
        fields = line.split("\t")
        if len(fields) != 3:
            raise DatasetError(
                f"{path}, line {number}: found {len(fields)} tab-separated field(s), expected 3 "
                f"(head, relation, tail): {_shown(line)}"
            )
        _check_fields(path, number, line, fields, "head, relation, tail")
        triples.append((fields[0], fields[1], fields[2]))
    if not triples:
        raise DatasetError(f"{path}: file is empty (no triples)")
    return triples


def _vocabulary(train: list[Triple]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the sorted entity and relation keys that occur in the training triples."""
    entities = {head for head, _, _ in train} | {tail for _, _, tail in train}
    relations = {relation for _, relation, _ in train}
    return tuple(sorted(entities)), tuple(sorted(relations))


def _drop_unseen(
    splits: dict[str, list[Triple]], entities: set[str], relations: set[str]
) -> tuple[dict[str, list[Triple]], dict[str, int]]:
    """Return the splits without valid/test triples naming anything unseen in train."""
    kept = {"train": splits["train"]}
    dropped: dict[str, int] = {}
    for split in SPLITS[1:]:
        kept[split] = [
            (head, relation, tail)
            for head, relation, tail in splits[split]
            if head in entities and tail in entities and relation in relations
        ]
        dropped[split] = len(splits[split]) - len(kept[split])
    return kept, dropped


def _report_problems(name: str, dropped: dict[str, int], duplicates: dict[str, int]) -> None:
    """Warn once about dropped triples and once about duplicate lines, if there are any."""
    if any(dropped.values()):
        _warn(
            f"data set {name!r}: dropped {_counts(dropped)} triple(s) whose entity or "
            "relation does not occur in train"
        )
    if any(duplicates.values()):
        _warn(f"data set {name!r}: found {_counts(duplicates)} duplicate line(s), kept")


def _counts(per_split: dict[str, int]) -> str:
    """Return per-split counts as readable text, e.g. 'valid 2, test 1'."""
    return ", ".join(f"{split} {count:,}" for split, count in per_split.items() if count)


def _warn(message: str) -> None:
    """Issue a DatasetWarning pointing at load_dataset()'s caller, and log it."""
    logger.info(message)
    warnings.warn(message, DatasetWarning, stacklevel=_WARN_STACKLEVEL)


def _to_ids(
    triples: list[Triple], entity_index: dict[str, int], relation_index: dict[str, int]
) -> torch.Tensor:
    """Return an (n, 3) int64 tensor of head, relation and tail ids."""
    ids = [
        (entity_index[head], relation_index[relation], entity_index[tail])
        for head, relation, tail in triples
    ]
    return torch.tensor(ids, dtype=torch.int64).reshape(len(ids), 3)


def _names(folder: Path, file_name: str, raw: dict[str, bytes]) -> dict[str, str]:
    """Return key -> readable label from a names file, or nothing when it is absent."""
    data = raw.get(file_name)
    return {} if data is None else _parse_names(folder / file_name, data)


def _parse_names(path: Path, data: bytes) -> dict[str, str]:
    """Return key -> readable name from a two-column names file."""
    names: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in _content_lines(path, data):
        fields = line.split("\t")
        if len(fields) < 2:
            raise DatasetError(
                f"{path}, line {number}: found {len(fields)} tab-separated field(s), "
                f"expected at least 2 (key, name): {_shown(line)}"
            )
        key, label = fields[0], fields[1]
        _check_fields(path, number, line, [key, label], "key, name")
        if key in names and names[key] != label:
            raise DatasetError(
                f"{path}, line {number}: key {key!r} already has the name "
                f"{names[key]!r} on line {first_line[key]}: {_shown(line)}"
            )
        names.setdefault(key, label)
        first_line.setdefault(key, number)
    return names

"""Run folders: one trained model, its ledger, settings and metrics on disk.

Layout (format version 1, documented in ``docs/run-format.md``)::

    config.json         settings, data-set identity and hash, format version
    model.safetensors   entity (num_entities, width), relation (num_relations, width)
    ledger.safetensors  head, relation, tail (num_train_triples, width) in float32, float16
                        or bfloat16; absent if off
    entities.tsv        id, name, label per entity, in id order (with a header)
    relations.tsv       id, name, label per relation, in id order (with a header)
    metrics.json        {"valid": {...}, "test": {...}} with mrr, hits@1, hits@3, hits@10
    history.jsonl       one JSON object per epoch

A run is written into a hidden temporary folder beside the target and renamed
into place at the end, so a crash never leaves a half-written run. Loading
checks the format version, every tensor's shape and, when a data set is
given, its content hash. The model is read with safetensors, the ledger
file is memory-mapped by ``gr_core.ledger_file``: nothing is unpickled.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gr_core.config import TrainConfig
from gr_core.data import load_dataset
from gr_core.errors import ConfigError, GRError, RunFormatError
from gr_core.ledger import Ledger
from gr_core.ledger_file import LEDGER_DTYPES, MappedLedger, open_ledger, write_ledger
from gr_core.models import KGEModel, build_model, model_width

FORMAT_VERSION = 1
METRIC_KEYS = ("mrr", "hits@1", "hits@3", "hits@10")
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "entities.tsv",
    "relations.tsv",
    "metrics.json",
    "history.jsonl",
)


class RunExistsError(GRError, FileExistsError):
    """The target run folder already exists and overwriting was not asked for."""


@dataclass(eq=False)
class Run:
    """A loaded run folder."""

    path: Path
    config: dict
    model: KGEModel
    ledger: Ledger | MappedLedger | None
    entities: list[str]
    entity_labels: list[str]
    relations: list[str]
    relation_labels: list[str]
    metrics: dict
    history: list[dict]

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config["training"])

    @property
    def dataset_hash(self) -> str:
        return self.config["dataset"]["content_hash"]


def save_run(
    path, dataset, config: TrainConfig, result, *, overwrite: bool = False,
    ledger_dtype: str = "float32",
) -> Path:  # fmt: skip
    """Write a training result as a run folder at ``path``; return the path.

    ``dataset`` is the ``Dataset`` trained on, ``result`` a ``TrainResult``. The
    ledger is stored in ``ledger_dtype`` (float32, float16 or bfloat16); a value
    beyond float16's range raises ``LedgerPrecisionError`` and writes nothing.
    """
    if ledger_dtype not in LEDGER_DTYPES:  # before staging anything
        raise ConfigError(
            f"ledger dtype must be one of {', '.join(LEDGER_DTYPES)}; got {ledger_dtype!r}"
        )
    path = Path(path)
    if path.exists() and not overwrite:
        raise RunExistsError(f"run folder {path} already exists; choose another or overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _write_files(staging, dataset, config, result, ledger_dtype)
        _make_readable(staging)
        _move_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _write_files(folder: Path, dataset, config: TrainConfig, result, ledger_dtype: str) -> None:
    model, ledger = result.model, result.ledger
    ledger_record = None
    if ledger is not None:  # first: a value beyond the dtype's range stops the save early
        losses = write_ledger(folder / "ledger.safetensors", ledger, ledger_dtype)
        ledger_record = {"mode": config.ledger, "dtype": ledger_dtype, **losses}
    document = {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "dataset": {
            "name": dataset.name,
            "source": dataset.source,
            "content_hash": dataset.content_hash,
            **({} if dataset.split_seed is None else {"split_seed": dataset.split_seed}),
            **{k: v for k, v in dataset.summary().items() if k != "name"},
        },
        "training": config.to_dict(),
        "model": {"name": model.name, "width": model.width},
        "ledger": ledger_record,
        "result": {
            "epochs_run": result.epochs_run,
            "kept_epoch": result.kept_epoch,
            "seconds": round(result.seconds, 3),
        },
    }
    _write_json(folder / "config.json", document)
    save_file(
        _cpu32({"entity": model.entity, "relation": model.relation}), folder / "model.safetensors"
    )
    _write_names(folder / "entities.tsv", dataset.entities, dataset.entity_labels)
    _write_names(folder / "relations.tsv", dataset.relations, dataset.relation_labels)
    _write_json(folder / "metrics.json", result.metrics)
    with open(folder / "history.jsonl", "w", encoding="utf-8") as stream:
        for record in result.history:
            stream.write(json.dumps(record) + "\n")


def _make_readable(folder: Path) -> None:
    """Give the folder and its files ordinary permissions (mkdtemp makes them private)."""
    folder.chmod(0o755)
    for file in folder.iterdir():
        file.chmod(0o644)


def _cpu32(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def _write_names(path: Path, names, labels) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as stream:
        stream.write("id\tname\tlabel\n")
        for index, (name, label) in enumerate(zip(names, labels, strict=True)):
            stream.write(f"{index}\t{name}\t{label}\n")


def _move_into_place(staging: Path, path: Path) -> None:
    """Rename the finished folder to ``path``, replacing an old run only at the end."""
    if not path.exists():
        os.replace(staging, path)
        return
    retired = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.replace(path, retired)
    os.replace(staging, path)
    shutil.rmtree(retired, ignore_errors=True)


def delete_run(path) -> None:
    """Delete the run folder at ``path``; refuse a folder that is not a run."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise RunFormatError(f"{path} holds no config.json, so it is not a run; nothing deleted")
    shutil.rmtree(path)


def load_run(path, *, dataset=None, load_ledger: bool = True, map_ledger: bool = True) -> Run:
    """Load and check the run folder at ``path``.

    With ``dataset``, fail unless it is the data the run was trained on (same
    content hash). The ledger stays in its file, memory-mapped read-only
    (a ``MappedLedger``), unless ``map_ledger`` is False: then it is copied into
    memory as a float32 ``Ledger``. Raises ``RunFormatError`` naming the file and
    the problem.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunFormatError(f"run folder {path} does not exist")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise RunFormatError(f"run folder {path} is missing {', '.join(missing)}")

    config = _read_json(path / "config.json")
    _check_config(path, config)
    if dataset is not None and dataset.content_hash != config["dataset"]["content_hash"]:
        raise RunFormatError(
            f"run {path} was trained on data with hash {config['dataset']['content_hash']}, "
            f"but data set {dataset.name!r} has hash {dataset.content_hash}: the files changed"
        )

    counts, width = config["dataset"], config["model"]["width"]
    tables = _read_tensors(
        path / "model.safetensors",
        {
            "entity": (counts["entities"], width),
            "relation": (counts["relations"], width),
        },
    )
    model = build_model(config["model"]["name"], tables["entity"], tables["relation"])
    ledger = None
    if load_ledger and config["ledger"] is not None:
        ledger = _open_ledger(path, config, counts["train"], width)
        ledger = ledger if map_ledger else ledger.to_memory()

    entities, entity_labels = _read_names(path / "entities.tsv", counts["entities"])
    relations, relation_labels = _read_names(path / "relations.tsv", counts["relations"])
    metrics = _read_json(path / "metrics.json")
    _check_metrics(path / "metrics.json", metrics)
    history = [
        _parse_json(path / "history.jsonl", line, number)
        for number, line in enumerate(_read_lines(path / "history.jsonl"), 1)
        if line
    ]
    return Run(
        path,
        config,
        model,
        ledger,
        entities,
        entity_labels,
        relations,
        relation_labels,
        metrics,
        history,
    )


def load_run_with_dataset(path, *, load_ledger: bool = True):
    """Load a run and the data set it was trained on; return ``(run, dataset)``.

    The data set is loaded from the source the run recorded (a built-in name, an
    external name found through GR_DATA_DIR, or a folder), split again with the
    recorded ``split_seed`` if it has one, and must have the recorded content hash.
    """
    run = load_run(path, load_ledger=load_ledger)
    source = run.config["dataset"]["source"]
    try:
        dataset = load_dataset(source, split_seed=run.config["dataset"].get("split_seed"))
    except GRError as error:
        raise RunFormatError(
            f"run {run.path} was trained on data set {source!r}, which cannot be loaded: {error}"
        ) from None
    if dataset.content_hash != run.dataset_hash:
        raise RunFormatError(
            f"run {run.path} was trained on data with hash {run.dataset_hash}, but "
            f"{source!r} now has hash {dataset.content_hash}: the files changed"
        )
    return run, dataset


def _open_ledger(path: Path, config: dict, num_triples: int, width: int) -> MappedLedger:
    file = path / "ledger.safetensors"
    if not file.is_file():
        raise RunFormatError(f"{file} is missing")
    ledger = open_ledger(file, num_triples, width)
    recorded = config["ledger"].get("dtype") if isinstance(config["ledger"], dict) else None
    if recorded != ledger.dtype_name:
        raise RunFormatError(
            f"{file} holds {ledger.dtype_name} tables, but config.json records {recorded!r}"
        )
    return ledger


def _check_config(path: Path, config: dict) -> None:
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise RunFormatError(
            f"{path / 'config.json'} has format version {version!r}; this gr_core reads "
            f"version {FORMAT_VERSION}"
        )
    try:
        training = TrainConfig.from_dict(config["training"])
        _require(config["dataset"], ("content_hash", "entities", "relations", "train"))
        _require(config["result"], ("epochs_run", "kept_epoch", "seconds"))
        _require(config, ("ledger",))
        if config["model"]["width"] != model_width(training.model, training.dim):
            raise ConfigError(f"width {config['model']['width']} does not match the settings")
    except (KeyError, TypeError, ConfigError) as error:
        raise RunFormatError(f"{path / 'config.json'} is incomplete or invalid: {error}") from None


def _require(section: dict, keys: tuple[str, ...]) -> None:
    """Raise KeyError naming the first of ``keys`` missing from ``section``."""
    if not isinstance(section, dict):
        raise TypeError(f"expected an object with {', '.join(keys)}")
    for key in keys:
        if key not in section:
            raise KeyError(key)


def _check_metrics(path: Path, metrics) -> None:
    for split in ("valid", "test"):
        values = metrics.get(split) if isinstance(metrics, dict) else None
        if not isinstance(values, dict) or not all(
            isinstance(values.get(key), (int, float)) for key in METRIC_KEYS
        ):
            raise RunFormatError(f"{path} lacks {split} values for {', '.join(METRIC_KEYS)}")


def _read_tensors(path: Path, shapes: dict[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise RunFormatError(f"{path} is missing")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise RunFormatError(f"{path} is not a readable safetensors file: {error}") from None
    for name, shape in shapes.items():
        if name not in tensors:
            raise RunFormatError(f"{path} has no tensor {name!r}")
        if tuple(tensors[name].shape) != tuple(shape):
            raise RunFormatError(
                f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                f"expected {tuple(shape)}"
            )
        if not tensors[name].dtype.is_floating_point:
            raise RunFormatError(f"{path}: tensor {name!r} is {tensors[name].dtype}, not float")
    return {name: tensors[name].float() for name in shapes}


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise RunFormatError(f"{path} is not readable UTF-8 text: {error}") from None


def _parse_json(path: Path, text: str, line: int | None = None):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"{path} line {line}" if line else str(path)
        raise RunFormatError(f"{where} is not valid JSON: {error}") from None


def _read_json(path: Path):
    return _parse_json(path, "\n".join(_read_lines(path)))


def _read_names(path: Path, expected: int) -> tuple[list[str], list[str]]:
    lines = [line for line in _read_lines(path)[1:] if line]
    if len(lines) != expected:
        raise RunFormatError(f"{path} lists {len(lines)} names, expected {expected}")
    names, labels = [], []
    for number, line in enumerate(lines):
        fields = line.split("\t")
        if len(fields) != 3 or fields[0] != str(number):
            raise RunFormatError(f"{path} line {number + 2} is not 'id<TAB>name<TAB>label'")
        names.append(fields[1])
        labels.append(fields[2])
    return names, labels

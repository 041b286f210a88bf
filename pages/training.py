"""Not a page: training a run from what the Runs page's form asks for.

A ``TrainRequest`` is checked before anything is read or written (names, the
required uploads). Its data set is then loaded: a built-in one, a folder on this
machine, or uploaded files, kept beside the runs folder once they load without
errors. The model trains behind a progress bar and a live loss chart and is
saved in the runs folder; ``gr_core`` does the work.
"""

import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from gr_core import PRESETS, Dataset, load_dataset, save_run, train
from gr_core.colours import LOSS_COLOUR, MRR_COLOUR
from gr_core.errors import GRError
from pages.shared import FLASH_KEY, RUN_PARAM

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
MAX_NAME = 100
UPLOADS_FOLDER = "uploads"  # beside the runs folder
SOURCES = {"built-in": "Built-in", "folder": "Folder on this machine", "upload": "Upload files"}
UPLOAD_FILES = {  # file name in the data set folder: (label, required)
    "train.txt": ("Training triples", True),
    "valid.txt": ("Validation triples", True),
    "test.txt": ("Test triples", True),
    "entity_names.tsv": ("Entity labels (optional)", False),
    "relation_names.tsv": ("Relation labels (optional)", False),
}
VALIDATION_CHECKS = 20  # validation MRR points drawn while training
CHART_SECONDS = 0.25  # the live chart is redrawn at most this often


@dataclass(frozen=True)
class TrainRequest:
    """What the training form asked for."""

    source: str  # a SOURCES key
    dataset: str  # built-in name, folder path or upload name
    model: str
    preset: str
    name: str  # run name; empty: data set-model-preset
    overrides: dict = field(default_factory=dict)  # TrainConfig settings the user set
    uploads: dict = field(default_factory=dict)  # UPLOAD_FILES name -> UploadedFile


# ---- checking the request -------------------------------------------------------------


def name_problem(name: str, folder: Path, kind: str) -> str | None:
    """Return why ``name`` cannot name a new ``kind`` in ``folder``, or None when it can."""
    if not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME:
        return (
            f"A {kind} name needs 1 to {MAX_NAME} characters, each a letter, a digit, "
            "`-`, `_` or `.`."
        )
    if name.startswith("."):
        return f"A {kind} name must not start with `.` (such folders are hidden)."
    if (folder / name).exists():
        return f"A {kind} named `{name}` already exists; choose another name."
    return None


def dataset_label(request: TrainRequest) -> str:
    """Return the data set's short name, used in the default run name."""
    if request.source == "folder":
        return Path(request.dataset).name or "folder"
    return request.dataset


def request_problem(request: TrainRequest, root: Path) -> str | None:
    """Return what is wrong with the request before anything is loaded or written."""
    if request.source == "folder" and not request.dataset:
        return "Name the data set folder: it holds train.txt, valid.txt and test.txt."
    if request.source == "upload":
        missing = [name for name, (_, required) in UPLOAD_FILES.items() if required]
        missing = [name for name in missing if name not in request.uploads]
        if missing:
            return f"Upload the {', '.join(missing)} file(s) as well."
        uploads = root.parent / UPLOADS_FOLDER
        problem = name_problem(request.dataset, uploads, "data set")
        if problem:
            return problem
    return name_problem(request.name, root, "run")


# ---- data ---------------------------------------------------------------------------


def load_with_warnings(source) -> tuple[Dataset, list[str]]:
    """Load a data set; return it and the loader's warnings (dropped or duplicate triples)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(source)
    return dataset, [str(warning.message) for warning in caught]


def write_files(folder: Path, uploads: dict) -> None:
    """Write the uploaded files into ``folder`` under their data set file names."""
    for file_name, upload in uploads.items():
        (folder / file_name).write_bytes(upload.getvalue())


def save_upload(uploads: dict, folder: Path) -> None:
    """Check the uploaded files as a data set, then keep them as ``folder``.

    They are loaded from a temporary folder first: a malformed file raises
    DatasetError and leaves nothing behind. The checked files are staged next to
    ``folder`` and renamed into place, so a half-written upload is never seen.
    """
    with tempfile.TemporaryDirectory(prefix="gr-upload-") as scratch:
        write_files(Path(scratch), uploads)
        load_with_warnings(Path(scratch))  # the warnings come again from the kept copy

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write_files(staging, uploads)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_request_dataset(request: TrainRequest, root: Path) -> tuple[Dataset, list[str]]:
    """Load (and for uploads, first keep) the data set the request names."""
    if request.source == "built-in":
        return load_with_warnings(request.dataset)
    if request.source == "folder":
        return load_with_warnings(Path(request.dataset).expanduser())
    folder = root.parent / UPLOADS_FOLDER / request.dataset
    save_upload(request.uploads, folder)
    return load_with_warnings(folder)


# ---- training -------------------------------------------------------------------------


def progress_reporter(bar, label: str):
    """Return an ``on_step`` callback that moves ``bar`` once per whole percent.

    Batch-1 presets take thousands of steps; one browser update per step would
    cost more than the training.
    """
    shown = -1

    def on_step(done: int, total: int) -> None:
        nonlocal shown
        percent = 100 * done // total
        if percent != shown:
            shown = percent
            bar.progress(min(percent, 100) / 100, text=f"{label}: step {done:,} of {total:,}")

    return on_step


def live_chart(placeholder, epochs: int):
    """Return an ``on_epoch`` callback that redraws the loss and MRR chart in ``placeholder``."""
    history: list[dict] = []
    drawn_at = 0.0

    def on_epoch(record: dict) -> None:
        nonlocal drawn_at
        history.append(record)
        now = time.perf_counter()
        if now - drawn_at < CHART_SECONDS and record["epoch"] < epochs:
            return
        drawn_at = now
        figure = loss_figure(history)
        placeholder.plotly_chart(figure, key=f"live_chart_{len(history)}")

    return on_epoch


def training_config(request: TrainRequest):
    """Return the preset with the request's overrides and regular validation checks.

    Raises ConfigError when an override cannot work.
    """
    config = PRESETS[request.preset].replace(model=request.model, **request.overrides)
    if not config.eval_every:
        config = config.replace(eval_every=max(1, config.epochs // VALIDATION_CHECKS))
    return config


def train_run(root: Path, request: TrainRequest) -> bool:
    """Load the data, train, save as ``root / name`` and report; return whether it worked."""
    try:
        config = training_config(request)
        dataset, notes = load_request_dataset(request, root)
    except (GRError, OSError) as error:
        st.error(str(error))
        return False
    for note in notes:
        st.warning(note)

    label = f"Training {request.model} on {dataset.name} ({request.preset} preset)"
    bar = st.progress(0.0, text=label)
    chart = st.empty()
    try:
        result = train(
            dataset,
            config,
            on_step=progress_reporter(bar, label),
            on_epoch=live_chart(chart, config.epochs),
        )
        save_run(root / request.name, dataset, config, result)
    except (GRError, OSError) as error:  # OSError: the runs folder is not writable
        bar.empty()
        st.error(str(error))
        return False

    bar.empty()
    test = result.metrics["test"]
    st.session_state[FLASH_KEY] = (
        f"Trained `{request.name}` in {result.seconds:.1f} s: test MRR {test['mrr']:.3f}, "
        f"Hits@1 {test['hits@1']:.3f}, Hits@10 {test['hits@10']:.3f}."
    )
    st.query_params[RUN_PARAM] = request.name
    return True


# ---- the loss chart -------------------------------------------------------------------


def loss_figure(history: list[dict]) -> go.Figure | None:
    """Return training loss (and validation MRR, when recorded) per epoch, or None."""
    records = pd.DataFrame([record for record in history if isinstance(record, dict)])
    if not {"epoch", "loss"} <= set(records.columns):
        return None

    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Scatter(
            x=records["epoch"],
            y=records["loss"],
            name="training loss",
            mode="lines",
            line={"color": LOSS_COLOUR},
        ),
        secondary_y=False,
    )
    if "valid_mrr" in records.columns:
        checks = records.dropna(subset=["valid_mrr"])
        figure.add_trace(
            go.Scatter(
                x=checks["epoch"],
                y=checks["valid_mrr"],
                name="valid MRR",
                mode="lines+markers",
                line={"color": MRR_COLOUR},
            ),
            secondary_y=True,
        )
        figure.update_yaxes(title_text="valid MRR (filtered)", tickformat=".3f", secondary_y=True)
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(title_text="training loss", secondary_y=False)
    figure.update_layout(height=360, margin={"t": 30, "b": 10}, legend={"orientation": "h"})
    return figure

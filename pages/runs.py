"""Runs page: train a model into a run folder, list every run, show or delete the selected run.

The runs folder and the selected run come from the router (``app.py``) through
Session State; the run selector itself sits in the sidebar. Training data is a
built-in data set, a folder on this machine or uploaded files (checked by
``gr_core.data.load_dataset`` before anything is kept). Training, loading and
metrics all come from ``gr_core``; this page only collects choices and draws.
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

from gr_core import BUILTIN_DATASETS, PRESETS, Dataset, load_dataset, save_run, train
from gr_core.colours import LOSS_COLOUR, MRR_COLOUR
from gr_core.errors import GRError
from gr_core.models import MODELS
from gr_core.runs import delete_run
from pages.shared import (
    FLASH_KEY,
    METRICS,
    RUN_PARAM,
    SELECTED_RUN_KEY,
    SPLITS,
    RunEntry,
    plain,
    read_runs,
    run_router_first,
    runs_root,
    selected_entry,
)

DEFAULT_RUN = ("nations", "distmult", "default")
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
MAX_NAME = 100
DELETE_PENDING_KEY = "delete_pending"
DELETE_ERROR_KEY = "delete_error"
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


# ---- the runs table -------------------------------------------------------------------


def runs_table(entries: list[RunEntry]) -> pd.DataFrame:
    """Return one row per run: data set, model, epochs, test metrics, seconds, problem."""
    rows = [
        {"run": entry.name, **(entry.row or {}), "problem": entry.error or ""} for entry in entries
    ]
    return pd.DataFrame(rows)


# ---- checking the form ----------------------------------------------------------------


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


@st.cache_data(show_spinner=False)
def dataset_summary(name: str) -> dict:
    """Return a built-in data set's name and sizes."""
    return load_dataset(name).summary()


def welcome_ui(root: Path) -> bool:
    """Offer to train the default model into an empty runs folder; return whether it did."""
    sizes = dataset_summary(DEFAULT_RUN[0])
    welcome = st.empty()
    with welcome.container():
        st.markdown(
            "No runs yet. A run is a trained model with its rollback ledger, settings and "
            f"metrics. Start with DistMult on Nations ({sizes['entities']} entities, "
            f"{sizes['relations']} relations, {sizes['train']:,} training triples); it trains "
            "in about a second."
        )
        clicked = st.button(
            "Train the default Nations model (DistMult)", type="primary", key="train_default"
        )
    if not clicked:
        return False
    dataset, model, preset = DEFAULT_RUN
    request = TrainRequest("built-in", dataset, model, preset, "-".join(DEFAULT_RUN))
    trained = train_run(root, request)
    if trained:
        welcome.empty()
    return trained


# ---- the training form ----------------------------------------------------------------


def data_source_ui(source: str) -> tuple[str, dict]:
    """Draw the inputs of one data source (a SOURCES key); return (data set, uploads)."""
    if source == "built-in":
        return st.selectbox("Data set", BUILTIN_DATASETS, key="dataset"), {}
    if source == "folder":
        folder = st.text_input(
            "Data set folder",
            key="dataset_folder",
            placeholder="/path/to/my-graph",
            help="A folder on the machine running the dashboard, holding train.txt, valid.txt "
            "and test.txt (head, relation and tail separated by tabs) and optionally "
            "entity_names.tsv and relation_names.tsv.",
        )
        return folder.strip(), {}

    limit = st.get_option("server.maxUploadSize")
    name = st.text_input(
        "Data set name",
        key="upload_name",
        placeholder="my-graph",
        help=f"The files are kept in `{UPLOADS_FOLDER}/NAME/` beside the runs folder once "
        "they load without errors. Letters, digits, -, _ and . only.",
    )
    st.caption(
        "Tab-separated head, relation, tail; one triple per line; UTF-8. "
        f"At most {limit} MB per file (`server.maxUploadSize`)."
    )
    columns = st.columns(len(UPLOAD_FILES))
    uploads = {}
    for column, (file_name, (label, _)) in zip(columns, UPLOAD_FILES.items(), strict=True):
        key = f"upload_{file_name.split('.')[0]}"
        upload = column.file_uploader(label, type=["txt", "tsv"], key=key, help=file_name)
        if upload is not None:
            uploads[file_name] = upload
    return name.strip(), uploads


def overrides_ui() -> dict:
    """Draw the main settings; return those the user set (the preset supplies the rest)."""
    epochs_column, dim_column, rate_column = st.columns(3)
    presets = ", ".join(
        f"{name}: {config.epochs} epochs, dim {config.dim}, learning rate {config.learning_rate}"
        for name, config in sorted(PRESETS.items())
    )
    chosen = {
        "epochs": epochs_column.number_input(
            "Epochs", 1, 10_000, None, key="epochs", placeholder="preset", help=presets
        ),
        "dim": dim_column.number_input(
            "Embedding dim", 1, 4096, None, key="dim", placeholder="preset", help=presets
        ),
        "learning_rate": rate_column.number_input(
            "Learning rate",
            1e-6,
            10.0,
            None,
            step=1e-3,
            format="%.4g",
            key="learning_rate",
            placeholder="preset",
            help=presets,
        ),
    }
    return {setting: value for setting, value in chosen.items() if value is not None}


def train_form_ui(root: Path, expanded: bool) -> bool:
    """Draw the form for another run; train when it is submitted; return whether it did."""
    with st.expander("Train another run", expanded=expanded, icon=":material/model_training:"):
        source = st.segmented_control(
            "Data from",
            tuple(SOURCES),
            format_func=SOURCES.get,
            default="built-in",
            required=True,
            key="data_source",
        )
        with st.form("train_form", border=False):
            dataset, uploads = data_source_ui(source)
            model_column, preset_column, name_column = st.columns(3)
            model = model_column.selectbox("Model", tuple(MODELS), key="model")
            preset = preset_column.selectbox(
                "Preset",
                sorted(PRESETS),
                key="preset",
                help="default: 1-vs-all softmax, batch 128, 50 epochs. "
                "paper: the original authors' Nations setup, batch 1, 10 epochs (slower).",
            )
            name = name_column.text_input(
                "Run name",
                key="name",
                placeholder="DATASET-MODEL-PRESET",
                help="Letters, digits, -, _ and . only. Empty: data set-model-preset.",
            )
            overrides = overrides_ui()
            submitted = st.form_submit_button(
                "Train", icon=":material/play_arrow:", key="train_submit"
            )
    if not submitted:
        return False

    request = TrainRequest(source, dataset, model, preset, name.strip(), overrides, uploads)
    if not request.name:
        default_name = f"{dataset_label(request)}-{model}-{preset}"
        request = TrainRequest(source, dataset, model, preset, default_name, overrides, uploads)
    problem = request_problem(request, root)
    if problem:
        st.error(problem)
        return False
    return train_run(root, request)


# ---- one run --------------------------------------------------------------------------


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


def ask_to_delete(name: str) -> None:
    """Button callback: show the confirmation for run ``name``."""
    st.session_state[DELETE_PENDING_KEY] = name


def cancel_delete() -> None:
    """Button callback: hide the confirmation, delete nothing."""
    st.session_state.pop(DELETE_PENDING_KEY, None)


def confirm_delete(path: Path) -> None:
    """Button callback: delete the run, forget it in the selector and the URL."""
    st.session_state.pop(DELETE_PENDING_KEY, None)
    try:
        delete_run(path)
    except (OSError, GRError) as error:
        st.session_state[DELETE_ERROR_KEY] = f"Could not delete {path}: {error}"
        return
    st.session_state.pop(SELECTED_RUN_KEY, None)
    st.query_params.pop(RUN_PARAM, None)
    st.session_state[FLASH_KEY] = f"Deleted run `{path.name}`."


def delete_ui(entry: RunEntry) -> None:
    """Offer to delete the run; the folder goes only after a second, explicit confirmation."""
    if DELETE_ERROR_KEY in st.session_state:
        st.error(st.session_state.pop(DELETE_ERROR_KEY))
    if st.session_state.get(DELETE_PENDING_KEY) != entry.name:
        st.button(
            "Delete this run…",
            key="delete_run",
            icon=":material/delete:",
            on_click=ask_to_delete,
            args=(entry.name,),
        )
        return

    with st.container(border=True):
        st.warning(
            f"Really delete run **{plain(entry.name)}**? Its folder, model and ledger are "
            "removed from disk; this cannot be undone.",
            icon=":material/warning:",
        )
        buttons = st.container(horizontal=True)
        buttons.button(
            "Delete",
            type="primary",
            key="delete_confirm",
            on_click=confirm_delete,
            args=(entry.path,),
        )
        buttons.button("Cancel", key="delete_cancel", on_click=cancel_delete)


def run_details_ui(entry: RunEntry) -> None:
    """Show one run's metrics, loss curve and settings, and offer to delete it."""
    st.subheader(f"Run {plain(entry.name)}")
    if entry.run is None:
        st.error(entry.error)
        delete_ui(entry)
        return

    for split in SPLITS:
        columns = st.columns(len(METRICS))
        for column, (key, label) in zip(columns, METRICS.items(), strict=True):
            value = entry.metrics.loc[split, key]
            column.metric(f"{split.capitalize()} {label}", f"{value:.3f}")

    figure = loss_figure(entry.run.history)
    if figure is None:
        st.info("This run's history.jsonl records no loss per epoch.")
    else:
        st.plotly_chart(figure, key="loss_chart")
    with st.expander("Settings (config.json)"):
        st.json(entry.run.config)
    delete_ui(entry)


# ---- the page -------------------------------------------------------------------------


def runs_page() -> None:
    """Draw the Runs page."""
    run_router_first()
    st.title("Runs")
    root = runs_root()
    if root is None:
        st.error("Start the dashboard with `streamlit run app.py`; it sets the runs folder.")
        st.stop()
    if FLASH_KEY in st.session_state:
        st.success(st.session_state.pop(FLASH_KEY))

    entries = read_runs(root)
    trained = welcome_ui(root) if not entries else False
    trained = train_form_ui(root, expanded=False) or trained
    if trained:
        st.rerun()  # the sidebar's run selector is drawn before this page: refresh it
    if not entries:
        return

    st.subheader("All runs")
    st.dataframe(
        runs_table(entries),
        hide_index=True,
        column_config={
            column: st.column_config.NumberColumn(format="%.3f")
            for column in ("test MRR", "test Hits@1", "test Hits@10")
        },
    )
    entry = selected_entry(entries)
    if entry is not None:
        run_details_ui(entry)


runs_page()

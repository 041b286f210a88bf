"""Runs page: train a model into a run folder, list every run, and show one run's results.

The runs folder comes from the router (``app.py``) through Session State. The
selected run lives in the ``run`` query parameter, so a link reopens the same
view. Training, loading and metrics all come from ``gr_core``; this page only
collects choices and draws.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from gr_core import BUILTIN_DATASETS, PRESETS, Run, load_dataset, load_run, save_run, train
from gr_core.errors import GRError
from gr_core.models import MODELS

RUNS_ROOT_KEY = "runs_root"  # set by app.py before this page runs
RUN_PARAM = "run"
SELECTED_RUN_KEY = "selected_run"
DEFAULT_RUN = ("nations", "distmult", "default")
RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
MAX_RUN_NAME = 100
SPLITS = ("valid", "test")
METRICS = {"mrr": "MRR", "hits@1": "Hits@1", "hits@3": "Hits@3", "hits@10": "Hits@10"}


@dataclass(frozen=True)
class RunEntry:
    """One folder in the runs folder: its run, metrics and table row, or why it is unreadable."""

    name: str
    run: Run | None = None
    metrics: pd.DataFrame | None = None  # index: SPLITS; columns: METRICS keys
    row: dict | None = None
    error: str | None = None


# ---- reading runs ---------------------------------------------------------------------


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_run(path: str, config_mtime_ns: int) -> Run:
    """Load a run without its ledger; the config.json time only keys the cache.

    Saving a run again replaces its config.json, so a rewritten run is read anew.
    """
    return load_run(path, load_ledger=False)


def config_mtime_ns(folder: Path) -> int:
    """Return the modification time of the folder's config.json, or -1 when there is none."""
    try:
        return (folder / "config.json").stat().st_mtime_ns
    except OSError:
        return -1


def metric_table(run: Run) -> pd.DataFrame:
    """Return the run's filtered metrics as floats, one row per split.

    Raises KeyError, TypeError or ValueError when metrics.json lacks a value.
    """
    rows = {split: {key: float(run.metrics[split][key]) for key in METRICS} for split in SPLITS}
    return pd.DataFrame.from_dict(rows, orient="index")


def summary_row(run: Run, metrics: pd.DataFrame) -> dict:
    """Return the run's line in the runs table (KeyError or TypeError if config.json lacks it)."""
    test = metrics.loc["test"]
    return {
        "data set": run.config["dataset"]["name"],
        "model": run.train_config.model,
        "epochs": run.config["result"]["epochs_run"],
        "test MRR": test["mrr"],
        "test Hits@1": test["hits@1"],
        "test Hits@10": test["hits@10"],
        "training seconds": run.config["result"]["seconds"],
    }


def read_entry(folder: Path) -> RunEntry:
    """Read one run folder; a broken folder becomes an entry that carries its error."""
    try:
        run = cached_run(str(folder), config_mtime_ns(folder))
        metrics = metric_table(run)
        return RunEntry(folder.name, run, metrics, summary_row(run, metrics))
    except GRError as error:
        return RunEntry(folder.name, error=str(error))
    except (KeyError, TypeError, ValueError) as error:
        return RunEntry(folder.name, error=f"{folder}: config.json or metrics.json lacks {error!r}")


def read_runs(root: Path) -> list[RunEntry]:
    """Read every visible folder under ``root``, sorted by name.

    Folders starting with a dot are skipped: save_run stages its work in them.
    """
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [read_entry(folder) for folder in folders]


def runs_table(entries: list[RunEntry]) -> pd.DataFrame:
    """Return one row per run: data set, model, epochs, test metrics, seconds, problem."""
    rows = [
        {"run": entry.name, **(entry.row or {}), "problem": entry.error or ""} for entry in entries
    ]
    return pd.DataFrame(rows)


# ---- training -------------------------------------------------------------------------


def run_name_problem(name: str, root: Path) -> str | None:
    """Return why ``name`` cannot name a new run in ``root``, or None when it can."""
    if not RUN_NAME_PATTERN.fullmatch(name) or len(name) > MAX_RUN_NAME:
        return (
            f"A run name needs 1 to {MAX_RUN_NAME} characters, each a letter, a digit, "
            "`-`, `_` or `.`."
        )
    if name.startswith("."):
        return "A run name must not start with `.` (such folders are hidden)."
    if (root / name).exists():
        return f"A run named `{name}` already exists in the runs folder; choose another name."
    return None


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


def train_run(root: Path, name: str, dataset_name: str, model: str, preset: str) -> bool:
    """Train, save as ``root / name`` and report the result; return whether it worked."""
    config = PRESETS[preset].replace(model=model)
    label = f"Training {model} on {dataset_name} ({preset} preset)"
    bar = st.progress(0.0, text=label)
    try:
        dataset = load_dataset(dataset_name)
        result = train(dataset, config, on_step=progress_reporter(bar, label))
        save_run(root / name, dataset, config, result)
    except (GRError, OSError) as error:  # OSError: the runs folder is not writable
        bar.empty()
        st.error(str(error))
        return False

    bar.empty()
    test = result.metrics["test"]
    st.success(
        f"Trained `{name}` in {result.seconds:.1f} s: test MRR {test['mrr']:.3f}, "
        f"Hits@1 {test['hits@1']:.3f}, Hits@10 {test['hits@10']:.3f}."
    )
    st.query_params[RUN_PARAM] = name
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
    trained = train_run(root, "-".join(DEFAULT_RUN), *DEFAULT_RUN)
    if trained:
        welcome.empty()
    return trained


def train_form_ui(root: Path, expanded: bool) -> bool:
    """Draw the form for another run; train when it is submitted; return whether it did."""
    with st.expander("Train another run", expanded=expanded, icon=":material/model_training:"):
        with st.form("train_form", border=False):
            dataset_column, model_column, preset_column, name_column = st.columns(4)
            dataset_name = dataset_column.selectbox("Data set", BUILTIN_DATASETS, key="dataset")
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
            submitted = st.form_submit_button(
                "Train", icon=":material/play_arrow:", key="train_submit"
            )
    if not submitted:
        return False

    name = name.strip() or f"{dataset_name}-{model}-{preset}"
    problem = run_name_problem(name, root)
    if problem:
        st.error(problem)
        return False
    return train_run(root, name, dataset_name, model, preset)


# ---- one run --------------------------------------------------------------------------


def remember_selection() -> None:
    """Copy the selectbox's choice into the URL before the rerun reads it."""
    st.query_params[RUN_PARAM] = st.session_state[SELECTED_RUN_KEY]


def select_run_ui(entries: list[RunEntry]) -> RunEntry:
    """Draw the run selector, kept in step with the ``run`` query parameter."""
    names = [entry.name for entry in entries]
    readable = [entry.name for entry in entries if entry.run is not None]
    wanted = st.query_params.get(RUN_PARAM)
    if wanted in names:
        st.session_state[SELECTED_RUN_KEY] = wanted
    elif st.session_state.get(SELECTED_RUN_KEY) not in names:
        st.session_state[SELECTED_RUN_KEY] = (readable or names)[0]
    if wanted is not None and wanted not in names:
        # The link's text is not echoed: a crafted link could put markdown on the page.
        st.warning("The run named in the link does not exist here; showing another run.")

    broken = {entry.name for entry in entries if entry.run is None}
    selected = st.selectbox(
        "Run",
        names,
        key=SELECTED_RUN_KEY,
        on_change=remember_selection,
        format_func=lambda name: f"{name} (unreadable)" if name in broken else name,
    )
    if st.query_params.get(RUN_PARAM) != selected:
        st.query_params[RUN_PARAM] = selected
    return entries[names.index(selected)]


def loss_figure(history: list[dict]) -> go.Figure | None:
    """Return training loss (and validation MRR, when recorded) per epoch, or None."""
    records = pd.DataFrame([record for record in history if isinstance(record, dict)])
    if not {"epoch", "loss"} <= set(records.columns):
        return None

    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Scatter(x=records["epoch"], y=records["loss"], name="training loss", mode="lines"),
        secondary_y=False,
    )
    if "valid_mrr" in records.columns:
        checks = records.dropna(subset=["valid_mrr"])
        figure.add_trace(
            go.Scatter(
                x=checks["epoch"], y=checks["valid_mrr"], name="valid MRR", mode="lines+markers"
            ),
            secondary_y=True,
        )
        figure.update_yaxes(title_text="valid MRR (filtered)", secondary_y=True)
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(title_text="training loss", secondary_y=False)
    figure.update_layout(height=360, margin={"t": 30, "b": 10}, legend={"orientation": "h"})
    return figure


def run_details_ui(entry: RunEntry) -> None:
    """Show one run's metrics, loss curve and settings."""
    if entry.run is None:
        st.error(entry.error)
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


# ---- the page -------------------------------------------------------------------------


def runs_page() -> None:
    """Draw the Runs page."""
    st.title("Runs")
    if RUNS_ROOT_KEY not in st.session_state:
        st.error("Start the dashboard with `streamlit run app.py`; it sets the runs folder.")
        st.stop()
    root = Path(st.session_state[RUNS_ROOT_KEY])

    entries = read_runs(root)
    trained = welcome_ui(root) if not entries else False
    trained = train_form_ui(root, expanded=False) or trained
    if trained:
        entries = read_runs(root)
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
    st.subheader("One run")
    run_details_ui(select_run_ui(entries))


runs_page()

"""Runs page: train a model into a run folder, list every run, show or delete the selected run.

The runs folder and the selected run come from the router (``app.py``) through
Session State; the run selector itself sits in the sidebar. Training data is a
built-in data set, a folder on this machine or uploaded files (checked by
``gr_core.data.load_dataset`` before anything is kept); what happens once the
form is sent lives in ``pages.training``. Training, loading and metrics all come
from ``gr_core``; this page only collects choices and draws.
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from gr_core import PRESETS, load_dataset
from gr_core.data import available_datasets
from gr_core.errors import GRError
from gr_core.external import DATA_DIR_VARIABLE, EXTERNAL_NAMES
from gr_core.models import MODELS
from gr_core.runs import delete_run
from pages.shared import (
    FLASH_KEY,
    METRICS,
    NOT_ROUTED,
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
from pages.training import (
    SOURCES,
    UPLOAD_FILES,
    UPLOADS_FOLDER,
    TrainRequest,
    dataset_label,
    loss_figure,
    request_problem,
    train_run,
)

DEFAULT_RUN = ("nations", "distmult", "default")
DELETE_PENDING_KEY = "delete_pending"
DELETE_ERROR_KEY = "delete_error"


# ---- the runs table -------------------------------------------------------------------


def runs_table(entries: list[RunEntry]) -> pd.DataFrame:
    """Return one row per run: data set, model, epochs, test metrics, seconds, problem."""
    rows = [
        {"run": entry.name, **(entry.row or {}), "problem": entry.error or ""} for entry in entries
    ]
    return pd.DataFrame(rows)


# ---- training: the welcome offer and the form ---------------------------------------


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


def data_source_ui(source: str) -> tuple[str, dict]:
    """Draw the inputs of one data source (a SOURCES key); return (data set, uploads)."""
    if source == "built-in":
        external = ", ".join(EXTERNAL_NAMES)
        hint = f"{external} are offered when {DATA_DIR_VARIABLE} names the folder holding them."
        return st.selectbox("Data set", available_datasets(), key="dataset", help=hint), {}
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
        st.error(NOT_ROUTED)
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

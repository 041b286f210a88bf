"""Not a page: what the router (``app.py``) and the pages share.

The session-state keys and query parameters they agree on, reading the runs
folder (cached per run), the run selector of the sidebar, and keeping a page's
view in the URL. The selected run lives in the ``run`` query parameter, so a
link reopens it; the router keeps its name in
``st.session_state[SELECTED_RUN_KEY]`` for the page to read.
"""

import runpy
import string
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from gr_core import Run, load_run
from gr_core.errors import GRError

APP_PATH = Path(__file__).resolve().parents[1] / "app.py"
RUNS_ROOT_KEY = "runs_root"  # set by app.py before any page runs
ROUTED_KEY = "routed"  # set by app.py right before it runs a page; the page takes it
SELECTED_RUN_KEY = "selected_run"
FLASH_KEY = "flash"  # a success message to show after the next rerun
RUN_PARAM = "run"
SPLITS = ("valid", "test")
METRICS = {"mrr": "MRR", "hits@1": "Hits@1", "hits@3": "Hits@3", "hits@10": "Hits@10"}
NOT_ROUTED = "Start the dashboard with `streamlit run app.py`; it sets the runs folder."


@dataclass(frozen=True)
class RunEntry:
    """One folder in the runs folder: its run, metrics and table row, or why it is unreadable."""

    name: str
    path: Path
    run: Run | None = None
    metrics: pd.DataFrame | None = None  # index: SPLITS; columns: METRICS keys
    row: dict | None = None
    error: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """Return (path, config.json mtime): what the caches of a run are keyed by."""
        return str(self.path), config_mtime_ns(self.path)


# ---- the router --------------------------------------------------------------------


def run_router_first() -> None:
    """Make sure app.py drew the sidebar in this script run; run it when Streamlit did not.

    Next to a folder named ``pages/``, Streamlit starts in its old multipage mode
    and runs a page file on its own until app.py has called ``st.navigation``
    once: on a fresh server, a first visitor arriving at ``/explain`` would get
    the page without the router (and AppTest reruns hit the same path). Running
    app.py here hands the request to ``st.navigation``, which runs the page again
    with the router's state; this outer run then stops.
    """
    if st.session_state.pop(ROUTED_KEY, False):
        return
    runpy.run_path(str(APP_PATH), run_name="__main__")
    st.stop()


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
        return RunEntry(folder.name, folder, run, metrics, summary_row(run, metrics))
    except GRError as error:
        return RunEntry(folder.name, folder, error=str(error))
    except (KeyError, TypeError, ValueError) as error:
        problem = f"{folder}: config.json or metrics.json lacks {error!r}"
        return RunEntry(folder.name, folder, error=problem)


def read_runs(root: Path) -> list[RunEntry]:
    """Read every visible folder under ``root``, sorted by name.

    Folders starting with a dot are skipped: save_run stages its work in them.
    """
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [read_entry(folder) for folder in folders]


def runs_root() -> Path | None:
    """Return the runs folder the router chose, or None when the page runs on its own."""
    root = st.session_state.get(RUNS_ROOT_KEY)
    return None if root is None else Path(root)


def selected_entry(entries: list[RunEntry]) -> RunEntry | None:
    """Return the entry the sidebar selected, or None when there are no runs."""
    by_name = {entry.name: entry for entry in entries}
    return by_name.get(st.session_state.get(SELECTED_RUN_KEY))


def dataset_caption(entry: RunEntry) -> str:
    """Return "data set · model · test MRR" for the sidebar, or why the run is unreadable."""
    if entry.run is None:
        return "This run cannot be read; the Runs page says why."
    row = entry.row
    dataset = plain(row["data set"])
    return f"Data set **{dataset}** · {row['model']} · test MRR {row['test MRR']:.3f}"


# ---- the run selector -----------------------------------------------------------------


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


# ---- a page's view in the URL -------------------------------------------------------


def whole_number(text: str, low: int, high: int) -> int | None:
    """Return ``text`` as an int in [low, high], or None."""
    try:
        number = int(text)
    except ValueError:
        return None
    return number if low <= number <= high else None


def as_text(value) -> str:
    """Return a widget value as it is written in the URL."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def keep_in_url(param: str, value) -> None:
    """Write the shown value into the URL; None or an empty text drops the parameter."""
    if value is None or value == "":
        st.query_params.pop(param, None)
    elif st.query_params.get(param) != as_text(value):
        st.query_params[param] = as_text(value)


def forget_other_run(view_run_key: str, run_name: str, keys: dict[str, str]) -> None:
    """Drop the widget states and parameters in ``keys`` when they were chosen for another run.

    ``keys`` maps query parameters to widget keys; ``view_run_key`` remembers the
    run the page's view belongs to.
    """
    if st.session_state.get(view_run_key) not in (None, run_name):
        for param, key in keys.items():
            st.session_state.pop(key, None)
            st.query_params.pop(param, None)
    st.session_state[view_run_key] = run_name


def restore_from_url(parsers: dict, keys: dict[str, str]) -> list[str]:
    """Copy URL parameters into their widgets' state; return the names that did not fit.

    ``parsers`` maps a parameter to a function from its text to a value, or None
    when the text does not fit; such a parameter leaves the URL and its widget
    keeps its state.
    """
    rejected = []
    for param, parse in parsers.items():
        text = st.query_params.get(param)
        if text is None:
            continue
        value = parse(text)
        if value is None:
            rejected.append(param)
            st.query_params.pop(param)
        else:
            st.session_state[keys[param]] = value
    return rejected


# ---- text -------------------------------------------------------------------------------


def plain(text: str) -> str:
    """Escape every ASCII punctuation mark so markdown shows ``text`` as it is.

    Entity and relation names come from data files; in a markdown string a name
    like ``**x**`` or ``[a](b)`` would otherwise turn into formatting or a link.
    """
    return "".join(f"\\{char}" if char in string.punctuation else char for char in text)

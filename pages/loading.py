"""Not a page: the run chosen in the sidebar, checked, and loaded with its Explainer.

A page that shows one run asks ``chosen_entry`` for it, which says on the page
why there is none (no runs folder, no runs yet, an unreadable run). Explain and
Review ask ``chosen_run``, which also loads the run's ledger, data set and
``Explainer``: once per server and run folder, in one cache for both pages.
"""

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from gr_core import Dataset, Explainer, Run, load_run_with_dataset
from gr_core.errors import GRError
from pages.shared import NOT_ROUTED, RunEntry, plain, read_runs, runs_root, selected_entry

RUNS_PAGE = Path(__file__).with_name("runs.py")


@dataclass(frozen=True)
class LoadedRun:
    """A run with its ledger, its data set, an Explainer and display labels."""

    run: Run
    dataset: Dataset
    explainer: Explainer
    entity_labels: dict[str, str]  # entity key -> what the page shows
    relation_labels: dict[str, str]

    def entity_key(self, text: str) -> str | None:
        """Return the entity key named by a key or label, or None when there is none."""
        try:
            return self.dataset.entities[self.dataset.entity_id(text)]
        except GRError:
            return None

    def relation_key(self, text: str) -> str | None:
        """Return the relation key named by a key or label, or None when there is none."""
        try:
            return self.dataset.relations[self.dataset.relation_id(text)]
        except GRError:
            return None


@st.cache_resource(max_entries=8, show_spinner="Loading the run and its ledger…")
def cached_loaded_run(path: str, config_mtime_ns: int) -> LoadedRun:
    """Load a run with its ledger and data set once per server; the mtime keys the cache.

    Raises GRError when the run cannot be read, its data changed, or it has no ledger.
    """
    run, dataset = load_run_with_dataset(path)
    return LoadedRun(
        run,
        dataset,
        Explainer(run, dataset),
        dict(zip(dataset.entities, dataset.entity_display, strict=True)),
        dict(zip(dataset.relations, dataset.relation_display, strict=True)),
    )


def chosen_entry(no_runs: str) -> RunEntry | None:
    """Return the sidebar's readable run, or None after saying why there is none.

    ``no_runs`` is the page's own hint for an empty runs folder; a link to the
    Runs page follows it.
    """
    root = runs_root()
    if root is None:
        st.error(NOT_ROUTED)
        return None
    entry = selected_entry(read_runs(root))
    if entry is None:
        st.info(no_runs)
        st.page_link(str(RUNS_PAGE), label="Go to Runs", icon=":material/arrow_forward:")
        return None
    if entry.run is None:
        st.error(plain(entry.error or "This run cannot be read."))
        return None
    return entry


def chosen_run(no_runs: str) -> tuple[RunEntry, LoadedRun] | None:
    """Return the sidebar's run loaded with its Explainer, or None after saying why not."""
    entry = chosen_entry(no_runs)
    if entry is None:
        return None
    try:
        return entry, cached_loaded_run(*entry.key)
    except GRError as error:
        st.error(plain(str(error)))
        return None

"""Approximation page: how closely GR's predicted probability matches retraining (Figure 2).

For GR-1, each evaluated query gives two numbers: the probability GR predicts
after removing the most influential triple (``Pr - influence``) and the
probability after really retraining without it. Each saved evaluation that
holds GR-1 becomes one scatter panel, with its Pearson r, mean absolute error
and empirical Lipschitz constant (approximation.json).

The evaluations of every run in the runs folder trained on the selected run's
data set are listed, grouped by the runs' weight constraint (none, unit norm,
max norm c). By default one panel per constraint is drawn, taking the selected
run's own evaluation for its constraint and, for the others, the run whose
remaining settings come closest, so runs that differ only in the constraint
sit side by side.
"""

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from gr_core.errors import GRError
from gr_core.evaluations import (
    constraint_label,
    constraint_order,
    list_evaluations,
    read_approximation,
    settings_distance,
)
from gr_core.figures import approximation_figure
from pages.shared import (
    NOT_ROUTED,
    RunEntry,
    plain,
    read_runs,
    run_router_first,
    runs_root,
    selected_entry,
)

SHOWN_KEY = "approximation_shown"
OPTIONS_KEY = "approximation_options"  # the run and candidates the selection was made for
MIN_QUERIES = 2  # a Pearson r needs two points
ABOUT_FIGURE = (
    "Each point is one test query. Across: the probability of the explained tail that "
    "gradient rollback predicts after removing its most influential training triple (GR-1). "
    "Up: the probability after really retraining without that triple. Points on the dotted "
    "diagonal are predicted exactly. Weight constraints bound how far one removal can move "
    "a prediction (the empirical Lipschitz constant) and so should tighten the fit."
)
FIT_COLUMNS = {
    "Pearson r": st.column_config.NumberColumn(format="%.3f"),
    "mean abs. error": st.column_config.NumberColumn(format="%.4f"),
    "Lipschitz": st.column_config.NumberColumn(format="%.4f"),
}


@dataclass(frozen=True)
class Candidate:
    """A saved evaluation with a GR-1 fit, and the run it belongs to."""

    entry: RunEntry
    folder: Path
    fit: dict  # approximation.json

    @property
    def id(self) -> str:
        return f"{self.entry.name}/{self.folder.name}"

    @property
    def training(self) -> dict:
        return self.entry.run.config["training"]

    @property
    def constraint(self) -> str:
        return constraint_label(self.training)


# ---- finding the evaluations ----------------------------------------------------------


def find_candidates(entries: list[RunEntry], selected: RunEntry) -> list[Candidate]:
    """Return the GR-1 fits of every run on the selected run's data, in constraint order.

    A folder that cannot be read is reported with a warning and left out.
    """
    data_hash = selected.run.dataset_hash
    found = []
    for entry in entries:
        if entry.run is None or entry.run.dataset_hash != data_hash:
            continue
        for folder in list_evaluations(entry.path):
            try:
                fit = read_approximation(folder)
            except GRError as error:
                st.warning(plain(str(error)))
                continue
            if fit is not None and fit.get("n", 0) >= MIN_QUERIES:
                found.append(Candidate(entry, folder, fit))
    found.sort(key=lambda c: (constraint_order(c.training), c.entry.name, c.folder.name))
    return found


def default_panels(found: list[Candidate], selected: RunEntry) -> list[str]:
    """Return one candidate per weight constraint: the selected run's, else the closest run's."""
    reference = selected.run.config["training"]

    def preference(candidate: Candidate) -> tuple:
        distance = settings_distance(candidate.training, reference)
        return candidate.entry.name != selected.name, distance, -candidate.fit["n"], candidate.id

    chosen: dict[str, str] = {}
    for candidate in sorted(found, key=preference):
        chosen.setdefault(candidate.constraint, candidate.id)
    return [candidate.id for candidate in found if candidate.id in chosen.values()]


# ---- drawing --------------------------------------------------------------------------


def panels_ui(found: list[Candidate], selected: RunEntry) -> list[Candidate]:
    """Draw the choice of panels (default: one per constraint); return the chosen, in order."""
    ids = [candidate.id for candidate in found]
    marker = (selected.name, tuple(ids))
    if st.session_state.get(OPTIONS_KEY) != marker or SHOWN_KEY not in st.session_state:
        st.session_state[OPTIONS_KEY] = marker
        st.session_state[SHOWN_KEY] = default_panels(found, selected)

    by_id = {candidate.id: candidate for candidate in found}
    shown = st.multiselect(
        "Panels",
        ids,
        key=SHOWN_KEY,
        format_func=lambda key: f"{by_id[key].constraint} · {key}",
        help="Saved evaluations (run / evaluation) that include GR-1, on this data set. "
        "By default one per weight constraint.",
    )
    return [candidate for candidate in found if candidate.id in shown]


def fits_table(found: list[Candidate], shown: list[Candidate]) -> pd.DataFrame:
    """Return one row per candidate: constraint, run, evaluation and its GR-1 fit."""
    drawn = {candidate.id for candidate in shown}
    return pd.DataFrame(
        {
            "constraint": [c.constraint for c in found],
            "run": [c.entry.name for c in found],
            "evaluation": [c.folder.name for c in found],
            "model": [c.training.get("model", "") for c in found],
            "queries": [c.fit["n"] for c in found],
            "Pearson r": [c.fit["pearson"] for c in found],
            "mean abs. error": [c.fit["mean_abs_error"] for c in found],
            "Lipschitz": [c.fit["lipschitz"] for c in found],
            "shown": [c.id in drawn for c in found],
        }
    )


def figure_ui(shown: list[Candidate]) -> None:
    """Draw one scatter panel per chosen evaluation."""
    if not shown:
        st.info("Choose at least one evaluation above.")
        return
    # Folder names come from disk; plotly titles take HTML, so they are escaped.
    titles = [html.escape(f"{c.constraint}: {c.id}") for c in shown]
    figure = approximation_figure([c.folder for c in shown], titles)
    st.plotly_chart(figure, key="approximation_chart")


def no_evaluation_ui() -> None:
    """Say that there is nothing to draw yet and point to the Evaluate page."""
    st.info(
        "No saved evaluation of a run on this data set includes GR-1 (with at least "
        f"{MIN_QUERIES} queries) yet. Evaluate a run with GR-1 on the Evaluate page. To compare "
        "weight constraints, train runs with constraint none, unit-norm and max-norm, and "
        "evaluate each of them."
    )
    st.page_link(
        str(Path(__file__).with_name("evaluate.py")),
        label="Go to Evaluate",
        icon=":material/arrow_forward:",
    )


# ---- the page -------------------------------------------------------------------------


def approximation_page() -> None:
    """Draw the Approximation page."""
    run_router_first()
    st.title("Approximation quality")
    st.caption(ABOUT_FIGURE)
    root = runs_root()
    if root is None:
        st.error(NOT_ROUTED)
        return
    entries = read_runs(root)
    selected = selected_entry(entries)
    if selected is None or selected.run is None:
        st.info("Select a readable run in the sidebar; its data set chooses the evaluations.")
        return

    found = find_candidates(entries, selected)
    if not found:
        no_evaluation_ui()
        return
    shown = panels_ui(found, selected)
    figure_ui(shown)
    st.markdown("**Per weight constraint**")
    st.caption(
        "Every saved evaluation with GR-1 of a run trained on the same data as the selected "
        f"run ({plain(selected.row['data set'])}), grouped by the runs' weight constraint."
    )
    table = fits_table(found, shown)
    st.dataframe(table, hide_index=True, key="approximation_fits", column_config=FIT_COLUMNS)


approximation_page()

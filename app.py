"""Start the Gradient Rollback explorer: page setup, the shared sidebar and the page router.

Run it with ``streamlit run app.py``. Runs are read from and written to ``runs/``
under the current directory, or the folder named by the ``GR_RUNS_DIR``
environment variable. Before a page runs, this router puts that folder in
``st.session_state[RUNS_ROOT_KEY]`` and the run chosen in the sidebar in
``st.session_state[SELECTED_RUN_KEY]`` (mirrored in the ``run`` query parameter).

Pages: Runs (``/``, train, compare and delete runs), Explain (``/explain``,
predictions of one run and their gradient-rollback explanations), Evaluate
(``/evaluate``, RemOve And Retrain faithfulness of one run, saved in its
``evaluations/`` folder), Approximation (``/approximation``, GR-1's predicted
against retrained probability per evaluation and weight constraint), Data (``/data``,
sizes and distributions of the run's data set) and Review (``/review``, step
through the test predictions and record verdicts on their explanations).
"""

import os
from pathlib import Path

import streamlit as st

from pages.shared import (
    ROUTED_KEY,
    RUNS_ROOT_KEY,
    dataset_caption,
    read_runs,
    select_run_ui,
)

APP_DIR = Path(__file__).resolve().parent
LOGO = APP_DIR / "assets" / "logo.svg"
RUNS_DIR_VARIABLE = "GR_RUNS_DIR"


def runs_root() -> Path:
    """Return the runs folder: ``$GR_RUNS_DIR`` when set, else ``runs/`` here."""
    return Path(os.environ.get(RUNS_DIR_VARIABLE) or "runs").resolve()


def sidebar() -> Path:
    """Draw the sidebar shared by every page (runs folder, run selector); return the folder."""
    root = runs_root()
    st.logo(str(LOGO), size="large")
    with st.sidebar:
        entries = read_runs(root)
        if entries:
            entry = select_run_ui(entries)
            st.caption(dataset_caption(entry))
        st.caption(f"Runs folder (set `{RUNS_DIR_VARIABLE}` to change it)")
        st.text(str(root))
    return root


st.set_page_config(page_title="Gradient Rollback explorer", page_icon=str(LOGO), layout="wide")
st.session_state[RUNS_ROOT_KEY] = str(sidebar())
page = st.navigation(
    [
        st.Page(APP_DIR / "pages" / "runs.py", title="Runs", icon=":material/table_chart:"),
        st.Page(
            APP_DIR / "pages" / "explain.py",
            title="Explain",
            icon=":material/hub:",
            url_path="explain",
        ),
        st.Page(
            APP_DIR / "pages" / "evaluate.py",
            title="Evaluate",
            icon=":material/science:",
            url_path="evaluate",
        ),
        st.Page(
            APP_DIR / "pages" / "approximation.py",
            title="Approximation",
            icon=":material/scatter_plot:",
            url_path="approximation",
        ),
        st.Page(
            APP_DIR / "pages" / "data.py",
            title="Data",
            icon=":material/bar_chart:",
            url_path="data",
        ),
        st.Page(
            APP_DIR / "pages" / "review.py",
            title="Review",
            icon=":material/rate_review:",
            url_path="review",
        ),
    ]
)
st.session_state[ROUTED_KEY] = True
page.run()

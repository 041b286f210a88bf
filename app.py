"""Start the Gradient Rollback explorer: page setup, the shared sidebar and the page router.

Run it with ``streamlit run app.py``. Runs are read from and written to ``runs/``
under the current directory, or the folder named by the ``GR_RUNS_DIR``
environment variable. Pages find that folder in ``st.session_state[RUNS_ROOT_KEY]``,
which this router sets on every rerun before the page runs.
"""

import os
from pathlib import Path

import streamlit as st

APP_DIR = Path(__file__).resolve().parent
LOGO = APP_DIR / "assets" / "logo.svg"
RUNS_DIR_VARIABLE = "GR_RUNS_DIR"
RUNS_ROOT_KEY = "runs_root"


def runs_root() -> Path:
    """Return the runs folder: ``$GR_RUNS_DIR`` when set, else ``runs/`` here."""
    return Path(os.environ.get(RUNS_DIR_VARIABLE) or "runs").resolve()


def sidebar() -> Path:
    """Draw the sidebar shared by every page and return the runs folder."""
    root = runs_root()
    st.logo(str(LOGO), size="large")
    with st.sidebar:
        st.caption(f"Runs folder (set `{RUNS_DIR_VARIABLE}` to change it)")
        st.text(str(root))
    return root


st.set_page_config(page_title="Gradient Rollback explorer", page_icon=str(LOGO), layout="wide")
st.session_state[RUNS_ROOT_KEY] = str(sidebar())
page = st.navigation(
    [
        st.Page(APP_DIR / "pages" / "runs.py", title="Runs", icon=":material/table_chart:"),
    ]
)
page.run()

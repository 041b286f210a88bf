"""Not a page: the Explain page's check of an explanation by retraining without its triples.

``gr_core.verify`` retrains the run six times as one stack. The checks it returns
are kept server-wide, keyed by run folder, config.json time and query, so they
stay on view across reruns and sessions.
"""

import pandas as pd
import streamlit as st

from gr_core.errors import GRError
from gr_core.verify import RetrainingCheck, verify_explanation
from pages.loading import LoadedRun
from pages.shared import RunEntry, plain

ABOUT_CHECKS = (
    "Retrains the model from scratch six times, with the same seed, initial weights and "
    "batch order, each time without one set of training triples: the GR top 1, top 10 "
    "and every positive one (GR-ALL), and as many random neighbours (NH-1, NH-10, "
    "NH-ALL). A faithful explanation lowers the probability more than random removals."
)


@st.cache_resource(show_spinner=False)
def verification_store() -> dict:
    """Return the server-wide store of retraining checks, keyed by run and query."""
    return {}


def checks_table(checks: list[RetrainingCheck], labels: dict[str, str]) -> pd.DataFrame:
    """Return one row per removal set: size, probability and top-1 before and after."""
    return pd.DataFrame(
        {
            "set": [check.name for check in checks],
            "triples removed": [check.removed for check in checks],
            "probability before": [check.probability_before for check in checks],
            "probability after": [check.probability_after for check in checks],
            "dropped": [check.probability_dropped for check in checks],
            "top-1 before": [labels[check.top1_before] for check in checks],
            "top-1 after": [labels[check.top1_after] for check in checks],
            "top-1 changed": [check.top1_changed for check in checks],
        }
    )


def retrain_with_progress(loaded: LoadedRun, head: str, relation: str, tail: str):
    """Run the six retrainings behind a progress bar; return the checks, or None on error."""
    bar = st.progress(0.0, text="Retraining…")

    shown = -1

    def on_progress(done: int, total: int) -> None:
        nonlocal shown
        percent = 100 * done // total
        if percent != shown:  # one browser update per percent, not per step
            shown = percent
            bar.progress(percent / 100, text=f"Retraining six models together: {percent}%")

    try:
        run, dataset, explainer = loaded.run, loaded.dataset, loaded.explainer
        return verify_explanation(
            run, dataset, explainer, head, relation, tail, on_progress=on_progress
        )
    except GRError as error:
        st.error(plain(str(error)))
        return None
    finally:
        bar.empty()


def verify_ui(entry: RunEntry, loaded: LoadedRun, head: str, relation: str, tail: str) -> None:
    """Offer to retrain without the explanation; show the checks once they exist."""
    st.subheader("Verify by retraining")
    st.caption(ABOUT_CHECKS)
    store, key = verification_store(), (*entry.key, head, relation, tail)
    seconds = float(loaded.run.config["result"]["seconds"])
    clicked = st.button(
        "Verify by retraining",
        key="verify",
        icon=":material/science:",
        help=f"Six trainings; this run took {seconds:.1f} s to train.",
    )
    if clicked:
        checks = retrain_with_progress(loaded, head, relation, tail)
        if checks is not None:
            store[key] = checks
    if key in store:
        st.dataframe(
            checks_table(store[key], loaded.entity_labels),
            hide_index=True,
            key="verification_table",
            column_config={
                "probability before": st.column_config.NumberColumn(format="%.4f"),
                "probability after": st.column_config.NumberColumn(format="%.4f"),
            },
        )

"""Explain page: the top predictions of a query and their gradient-rollback explanations.

The run comes from the sidebar (``run`` query parameter). The view is kept in the
URL too, so a link reopens it exactly: ``head``, ``relation`` (keys or readable
labels), ``tail`` (default: the filtered top-1), ``method`` (``gr``, ``gr-o``,
``first-order``, ``all-positive``, and ``criage`` for runs trained with a
sigmoid), ``k`` (triples in the explanation), ``top``
(predictions shown) and ``known`` (``1``: also show tails the data already give).
A parameter that does not fit the run is replaced by the default, with a warning
that does not repeat the parameter's text.

The run, its data set and its ``Explainer`` are loaded once per server and run
folder (``pages.loading``, one cache with the Review page); explanations are
cached per query. The choices and their link live in ``pages.explain_choices``,
the check by retraining in ``pages.verification``. Everything computed comes
from ``gr_core``; this page collects choices and draws.
"""

import json
import re

import pandas as pd
import streamlit as st

from gr_core import Explanation, Prediction
from gr_core.categories import category_counts
from gr_core.colours import PROBABILITY_COLOUR
from gr_core.errors import GRError
from pages.explain_choices import method_ui, query_ui, restore_view, tail_ui
from pages.explanation_view import RANK_COLUMN, coloured_categories, explanation_table, graph_ui
from pages.loading import LoadedRun, cached_loaded_run, chosen_run
from pages.shared import RunEntry, plain, run_router_first
from pages.verification import verify_ui

ABOUT_GR = (
    "**Gradient rollback** (GR) records, while the model trains, how much each training "
    "triple moved its own embeddings. To explain a prediction it undoes one triple's updates "
    "at a time: a triple's **influence** is how much the prediction's probability drops "
    "without it, so the most influential triples are the model's reasons."
)
GRAPH_HEIGHT = 560
CATEGORY_OPTIONS_KEY = "explain_category_options"
CATEGORY_KEY = "explain_categories"
UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


# ---- cached work ----------------------------------------------------------------------


@st.cache_data(max_entries=256, show_spinner=False)
def cached_explanation(
    path: str, config_mtime_ns: int, head: str, relation: str, tail: str, method: str, k: int
) -> Explanation:
    """Explain ``tail`` for ``(head, relation, ?)``; recomputed only when an input changes."""
    explainer = cached_loaded_run(path, config_mtime_ns).explainer
    return explainer.explain(head, relation, tail, method=method, k=k)


# ---- predictions ------------------------------------------------------------------------


def predictions_table(predictions: list[Prediction], loaded: LoadedRun) -> pd.DataFrame:
    """Return rank, tail label, probability and whether the tail is known."""
    return pd.DataFrame(
        {
            "rank": [p.rank for p in predictions],
            "tail": [loaded.entity_labels[p.name] for p in predictions],
            "probability": [p.probability for p in predictions],
            "known": [p.known for p in predictions],
        }
    )


def predictions_ui(predictions: list[Prediction], loaded: LoadedRun, known: bool) -> None:
    """Draw the predictions as a table with probability bars."""
    table = predictions_table(predictions, loaded)
    if not known:
        table = table.drop(columns="known")
    longest_bar = max([*table["probability"], 1e-12])
    st.dataframe(
        table,
        hide_index=True,
        key="predictions_table",
        column_config={
            "rank": RANK_COLUMN,
            "probability": st.column_config.ProgressColumn(
                format="%.3f",
                min_value=0.0,
                max_value=longest_bar,
                color=PROBABILITY_COLOUR,
                help="Pr(tail | head, relation), softmax over every entity. The bars are "
                "drawn relative to the likeliest tail shown.",
            ),
            "known": st.column_config.CheckboxColumn(
                help="Training or validation already hold this triple."
            ),
        },
    )


# ---- the explanation ------------------------------------------------------------------


def category_ui(explanation: Explanation) -> list[str]:
    """Draw the category filter (all present categories on by default); return the chosen."""
    counts = category_counts([row.category for row in explanation.rows])
    present = [category for category, count in counts.items() if count]
    if st.session_state.get(CATEGORY_OPTIONS_KEY) != present:
        st.session_state[CATEGORY_OPTIONS_KEY] = present
        st.session_state[CATEGORY_KEY] = present
    chosen = st.pills(
        "Categories",
        present,
        selection_mode="multi",
        format_func=lambda category: f"{category} · {counts[category]}",
        key=CATEGORY_KEY,
        help="How each triple relates to the explained triple; the graph's legend shows "
        "the colours. Click to hide or show a category.",
    )
    return list(chosen)


def summary_ui(explanation: Explanation, shown: int) -> None:
    """Draw the explained triple's probability, the neighbourhood size and the rows shown."""
    columns = st.columns(3)
    columns[0].metric(
        "Probability of the tail",
        f"{explanation.probability:.3f}",
        help="Pr(tail | head, relation): softmax over every entity.",
    )
    columns[1].metric(
        "Candidate triples",
        f"{explanation.num_neighbours:,}",
        help="Training triples the method chose from: those that share the head, the tail "
        "or the relation (GR-O: those whose tail is the explained tail).",
    )
    columns[2].metric("Triples shown", f"{shown} of {len(explanation.rows)}")


def explanation_ui(explanation: Explanation, loaded: LoadedRun) -> tuple[pd.DataFrame, str]:
    """Draw the graph and the table of the explanation; return both for the downloads."""
    if not explanation.rows:
        st.info("No triple of the chosen categories is in this explanation.")
    html = graph_ui(explanation, loaded, GRAPH_HEIGHT)
    table = explanation_table(explanation, loaded)
    st.dataframe(
        coloured_categories(table),
        hide_index=True,
        key="explanation_table",
        column_config={
            "rank": RANK_COLUMN,
            "influence": st.column_config.NumberColumn(
                format="%.4g", help="Drop of the tail's probability when the triple is rolled back"
            ),
            "probability after removal": st.column_config.NumberColumn(
                format="%.4f", help="The tail's probability GR predicts without the triple"
            ),
        },
    )
    return table, html


# ---- downloads ------------------------------------------------------------------------


def file_stem(entry: RunEntry, explanation: Explanation) -> str:
    """Return a safe file name stem: run-head-relation-tail-method."""
    parts = (
        entry.name,
        explanation.head_name,
        explanation.relation_name,
        explanation.tail_name,
        explanation.method,
    )
    return "-".join(UNSAFE_FILE_CHARACTERS.sub("_", part).strip("_") or "x" for part in parts)


def downloads_ui(stem: str, explanation: Explanation, table: pd.DataFrame, html: str) -> None:
    """Offer the shown explanation as CSV, JSON and a standalone graph page."""
    row = st.container(horizontal=True)
    row.download_button(
        "Table (CSV)",
        table.to_csv(index=False),
        file_name=f"{stem}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="download_csv",
    )
    row.download_button(
        "Explanation (JSON)",
        json.dumps(explanation.to_dict(), indent=2, ensure_ascii=False),
        file_name=f"{stem}.json",
        mime="application/json",
        on_click="ignore",
        icon=":material/download:",
        key="download_json",
    )
    row.download_button(
        "Graph (HTML)",
        html,
        file_name=f"{stem}.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/download:",
        key="download_html",
    )


# ---- the page -------------------------------------------------------------------------


def explain_page() -> None:
    """Draw the Explain page."""
    run_router_first()
    st.title("Explain a prediction")
    st.caption(ABOUT_GR)
    chosen = chosen_run("No runs yet: train one on the Runs page, then come back to explain it.")
    if chosen is None:
        return
    entry, loaded = chosen
    restore_view(loaded, entry.name)

    head, relation, top, known = query_ui(loaded)
    explainer = loaded.explainer
    predictions = explainer.predict(head, relation, k=top, filtered=not known)
    filtered_top = explainer.predict(head, relation, k=1, filtered=True)
    if not filtered_top:
        st.info("Train and valid already give this query every entity as a tail.")
        return

    predictions_column, explanation_column = st.columns([2, 3], gap="large")
    with predictions_column:
        st.subheader("Predictions")
        predictions_ui(predictions, loaded, known)
    with explanation_column:
        st.subheader("Explanation")
        tail = tail_ui(predictions, filtered_top[0].name, loaded)
        method, k = method_ui(loaded)
        try:
            explanation = cached_explanation(*entry.key, head, relation, tail, method, k)
        except GRError as error:
            st.error(plain(str(error)))
            return
        categories = category_ui(explanation)
        shown = explanation.only(categories)
        summary_ui(explanation, len(shown.rows))

    table, html = explanation_ui(shown, loaded)
    downloads_ui(file_stem(entry, shown), shown, table, html)
    verify_ui(entry, loaded, head, relation, tail)


explain_page()

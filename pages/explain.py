"""Explain page: the top predictions of a query and their gradient-rollback explanations.

The run comes from the sidebar (``run`` query parameter). The view is kept in the
URL too, so a link reopens it exactly: ``head``, ``relation`` (keys or readable
labels), ``tail`` (default: the filtered top-1), ``method`` (``gr``, ``gr-o``,
``first-order``, ``all-positive``), ``k`` (triples in the explanation), ``top``
(predictions shown) and ``known`` (``1``: also show tails the data already give).
A parameter that does not fit the run is replaced by the default, with a warning
that does not repeat the parameter's text.

The run, its data set and its ``Explainer`` are loaded once per server and run
folder; explanations are cached per query. Everything computed comes from
``gr_core``; this page collects choices and draws.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from gr_core import Dataset, Explainer, Explanation, Prediction, Run, load_run_with_dataset
from gr_core.categories import category_counts
from gr_core.colours import PROBABILITY_COLOUR, category_colour
from gr_core.errors import GRError
from gr_core.explain import METHODS
from gr_core.graph import explanation_graph
from gr_core.render import graph_html
from gr_core.verify import RetrainingCheck, verify_explanation
from pages.shared import (
    RunEntry,
    plain,
    read_runs,
    run_router_first,
    runs_root,
    selected_entry,
)

METHOD_LABELS = {"gr": "GR", "gr-o": "GR-O", "first-order": "First-order", "all-positive": "GR-ALL"}
METHOD_HELP = (
    "GR: the k triples whose rollback lowers the probability most. "
    "GR-O: the same, among triples whose tail is the explained tail. "
    "First-order: ranked by the linearised rollback (gradient · ledger), a cheap estimate. "
    "GR-ALL: every triple whose rollback lowers the probability at all."
)
ABOUT_GR = (
    "**Gradient rollback** (GR) records, while the model trains, how much each training "
    "triple moved its own embeddings. To explain a prediction it undoes one triple's updates "
    "at a time: a triple's **influence** is how much the prediction's probability drops "
    "without it, so the most influential triples are the model's reasons."
)
MAX_K = 50
MAX_TOP = 20
DEFAULTS = {"k": 10, "method": "gr", "top": 10, "known": False}
GRAPH_HEIGHT = 560
KEY = {  # query parameter -> session-state key of its widget
    param: f"explain_{param}"
    for param in ("head", "relation", "tail", "k", "method", "top", "known")
}
VIEW_RUN_KEY = "explain_view_run"  # the run the view's choices belong to
CATEGORY_OPTIONS_KEY = "explain_category_options"
CATEGORY_KEY = "explain_categories"
UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LoadedRun:
    """A run with its ledger, its data set, an Explainer and display labels."""

    run: Run
    dataset: Dataset
    explainer: Explainer
    entity_labels: dict[str, str]  # entity key -> what the page shows
    relation_labels: dict[str, str]


# ---- cached work ----------------------------------------------------------------------


def display_labels(keys, labels) -> dict[str, str]:
    """Map each key to its readable label, adding the key where the label is not unique."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return {
        key: label if label == key or counts[label] == 1 else f"{label} ({key})"
        for key, label in zip(keys, labels, strict=True)
    }


@st.cache_resource(max_entries=8, show_spinner="Loading the run and its ledger…")
def cached_explainer(path: str, config_mtime_ns: int) -> LoadedRun:
    """Load a run with its ledger and data set once per server; the mtime keys the cache.

    Raises GRError when the run cannot be read, its data changed, or it has no ledger.
    """
    run, dataset = load_run_with_dataset(path)
    return LoadedRun(
        run,
        dataset,
        Explainer(run, dataset),
        display_labels(dataset.entities, dataset.entity_labels),
        display_labels(dataset.relations, dataset.relation_labels),
    )


@st.cache_data(max_entries=256, show_spinner=False)
def cached_explanation(
    path: str, config_mtime_ns: int, head: str, relation: str, tail: str, method: str, k: int
) -> Explanation:
    """Explain ``tail`` for ``(head, relation, ?)``; recomputed only when an input changes."""
    explainer = cached_explainer(path, config_mtime_ns).explainer
    return explainer.explain(head, relation, tail, method=method, k=k)


@st.cache_resource(show_spinner=False)
def verification_store() -> dict:
    """Return the server-wide store of retraining checks, keyed by run and query."""
    return {}


# ---- the view in the URL --------------------------------------------------------------


def entity_key(loaded: LoadedRun, text: str) -> str | None:
    """Return the entity key named by a key or label, or None when there is none."""
    try:
        return loaded.dataset.entities[loaded.dataset.entity_id(text)]
    except GRError:
        return None


def relation_key(loaded: LoadedRun, text: str) -> str | None:
    """Return the relation key named by a key or label, or None when there is none."""
    try:
        return loaded.dataset.relations[loaded.dataset.relation_id(text)]
    except GRError:
        return None


def whole_number(text: str, low: int, high: int) -> int | None:
    """Return ``text`` as an int in [low, high], or None."""
    try:
        number = int(text)
    except ValueError:
        return None
    return number if low <= number <= high else None


def parsers(loaded: LoadedRun) -> dict:
    """Return, per query parameter, a function from its text to a value or None."""
    return {
        "head": lambda text: entity_key(loaded, text),
        "relation": lambda text: relation_key(loaded, text),
        "tail": lambda text: entity_key(loaded, text),
        "k": lambda text: whole_number(text, 1, MAX_K),
        "method": lambda text: text if text in METHODS else None,
        "top": lambda text: whole_number(text, 1, MAX_TOP),
        "known": {"1": True, "true": True, "0": False, "false": False}.get,
    }


def as_text(value) -> str:
    """Return a widget value as it is written in the URL."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def restore_view(loaded: LoadedRun, run_name: str) -> None:
    """Copy the URL's view into the widgets' state before they are drawn.

    Choices made for another run are dropped quietly when the sidebar switches
    runs; a parameter that does not fit gets a warning and is left out (the
    widget keeps its current value, or the default in a fresh session).
    """
    previous = st.session_state.get(VIEW_RUN_KEY)
    if previous is not None and previous != run_name:
        for param in ("head", "relation", "tail"):
            st.session_state.pop(KEY[param], None)
            st.query_params.pop(param, None)
    st.session_state[VIEW_RUN_KEY] = run_name

    rejected = []
    for param, parse in parsers(loaded).items():
        text = st.query_params.get(param)
        if text is None:
            continue
        value = parse(text)
        if value is None:
            rejected.append(param)
            st.query_params.pop(param)
        else:
            st.session_state[KEY[param]] = value
    if rejected:
        # The parameters' text is not echoed: a crafted link could put markdown on the page.
        st.warning(
            f"The link's {', '.join(rejected)} did not fit this run and were replaced; "
            "choose again below."
        )


def remember(param: str) -> None:
    """Widget callback: write the widget's new value into the URL before the rerun."""
    st.query_params[param] = as_text(st.session_state[KEY[param]])


def remember_query(param: str) -> None:
    """Widget callback for head and relation: a new query starts at its own top-1 tail."""
    remember(param)
    st.query_params.pop("tail", None)
    st.session_state.pop(KEY["tail"], None)


def keep_in_url(param: str, value) -> None:
    """Write the shown value into the URL, so that the address always names the view."""
    if st.query_params.get(param) != as_text(value):
        st.query_params[param] = as_text(value)


def seed(param: str, default, allowed) -> None:
    """Give a widget its default unless its state already holds an allowed value."""
    if st.session_state.get(KEY[param]) not in allowed:
        st.session_state[KEY[param]] = default


# ---- choosing the query ---------------------------------------------------------------


def query_ui(loaded: LoadedRun) -> tuple[str, str, int, bool]:
    """Draw head, relation, predictions shown and the known-tails toggle; return them."""
    dataset = loaded.dataset
    first_test = dataset.test[0].tolist() if len(dataset.test) else dataset.train[0].tolist()
    seed("head", dataset.entities[first_test[0]], loaded.entity_labels)
    seed("relation", dataset.relations[first_test[1]], loaded.relation_labels)
    seed("top", DEFAULTS["top"], range(1, MAX_TOP + 1))
    seed("known", DEFAULTS["known"], (True, False))

    columns = st.columns([3, 3, 2, 2], vertical_alignment="bottom")
    head_column, relation_column, top_column, known_column = columns
    head = head_column.selectbox(
        "Head",
        dataset.entities,
        format_func=loaded.entity_labels.get,
        key=KEY["head"],
        on_change=remember_query,
        args=("head",),
        help="The entity the query starts from. Type to search.",
    )
    relation = relation_column.selectbox(
        "Relation",
        dataset.relations,
        format_func=loaded.relation_labels.get,
        key=KEY["relation"],
        on_change=remember_query,
        args=("relation",),
        help="The query is (head, relation, ?): which tail does the model predict?",
    )
    top = top_column.number_input(
        "Predictions shown",
        1,
        MAX_TOP,
        key=KEY["top"],
        on_change=remember,
        args=("top",),
    )
    known = known_column.toggle(
        "Show known tails",
        key=KEY["known"],
        on_change=remember,
        args=("known",),
        help="Also list tails that the training or validation triples already give this "
        "query (marked as known). Off: the filtered ranking used for evaluation.",
    )
    for param, value in (("head", head), ("relation", relation), ("top", top), ("known", known)):
        keep_in_url(param, value)
    return head, relation, top, known


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
            "rank": st.column_config.NumberColumn(width="small"),
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


def tail_ui(predictions: list[Prediction], top1: str, loaded: LoadedRun) -> str:
    """Draw the choice of the tail to explain (default: the filtered top-1); return its key."""
    shown = {p.name: p for p in predictions}
    options = list(shown)
    if top1 not in shown:
        options.append(top1)
    linked = st.session_state.get(KEY["tail"])
    if linked is not None and linked not in options:
        options.append(linked)  # a tail from a link may lie outside the shown predictions
    seed("tail", top1, options)

    def describe(tail: str) -> str:
        label = loaded.entity_labels[tail]
        if tail not in shown:
            return f"{label} (not among the shown predictions)"
        prediction = shown[tail]
        known = ", known" if prediction.known else ""
        top = ", filtered top-1" if tail == top1 else ""
        return f"{label} (p = {prediction.probability:.3f}{known}{top})"

    tail = st.selectbox(
        "Tail to explain",
        options,
        format_func=describe,
        key=KEY["tail"],
        on_change=remember,
        args=("tail",),
    )
    keep_in_url("tail", tail)
    return tail


def method_ui() -> tuple[str, int]:
    """Draw the method and the explanation size; return (method, k)."""
    seed("method", DEFAULTS["method"], METHODS)
    seed("k", DEFAULTS["k"], range(1, MAX_K + 1))
    method_column, k_column = st.columns([3, 1])
    method = method_column.segmented_control(
        "Method",
        METHODS,
        format_func=METHOD_LABELS.get,
        required=True,
        key=KEY["method"],
        on_change=remember,
        args=("method",),
        help=METHOD_HELP,
    )
    k = k_column.number_input(
        "Triples (k)",
        1,
        MAX_K,
        key=KEY["k"],
        on_change=remember,
        args=("k",),
        disabled=method == "all-positive",
        help="How many of the most influential triples to show. GR-ALL shows every triple "
        "with a positive influence.",
    )
    keep_in_url("method", method)
    keep_in_url("k", k)
    return method, k


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


def explanation_table(explanation: Explanation, loaded: LoadedRun) -> pd.DataFrame:
    """Return one row per explanation triple: rank, names, influence, probability, category."""
    entity, relation = loaded.entity_labels, loaded.relation_labels
    return pd.DataFrame(
        {
            "rank": [row.rank for row in explanation.rows],
            "head": [entity[row.head_name] for row in explanation.rows],
            "relation": [relation[row.relation_name] for row in explanation.rows],
            "tail": [entity[row.tail_name] for row in explanation.rows],
            "influence": [row.influence for row in explanation.rows],
            "probability after removal": [row.probability_after for row in explanation.rows],
            "category": [row.category for row in explanation.rows],
        }
    )


def coloured_categories(table: pd.DataFrame):
    """Return the table styled with each category's colour (text only, names untouched)."""
    return table.style.map(
        lambda category: f"color: {category_colour(category)}; font-weight: 600",
        subset=["category"],
    )


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
    table = explanation_table(explanation, loaded)
    graph = explanation_graph(explanation, loaded.entity_labels, loaded.relation_labels)
    html = graph_html(graph, height=GRAPH_HEIGHT)
    if not explanation.rows:
        st.info("No triple of the chosen categories is in this explanation.")
    st.iframe(html, height=GRAPH_HEIGHT + 6, alt="Graph of the explanation's triples")
    st.dataframe(
        coloured_categories(table),
        hide_index=True,
        key="explanation_table",
        column_config={
            "rank": st.column_config.NumberColumn(width="small"),
            "influence": st.column_config.NumberColumn(
                format="%.4g", help="Drop of the tail's probability when the triple is rolled back"
            ),
            "probability after removal": st.column_config.NumberColumn(
                format="%.4f", help="The tail's probability GR predicts without the triple"
            ),
        },
    )
    return table, html


# ---- verification by retraining ---------------------------------------------------------


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
    st.caption(
        "Retrains the model from scratch six times, with the same seed, initial weights and "
        "batch order, each time without one set of training triples: the GR top 1, top 10 "
        "and every positive one (GR-ALL), and as many random neighbours (NH-1, NH-10, "
        "NH-ALL). A faithful explanation lowers the probability more than random removals."
    )
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


def chosen_run() -> tuple[RunEntry, LoadedRun] | None:
    """Return the sidebar's run loaded for explaining, or None after saying why not."""
    root = runs_root()
    if root is None:
        st.error("Start the dashboard with `streamlit run app.py`; it sets the runs folder.")
        return None
    entry = selected_entry(read_runs(root))
    if entry is None:
        st.info("No runs yet: train one on the Runs page, then come back to explain it.")
        st.page_link(
            str(Path(__file__).with_name("runs.py")),
            label="Go to Runs",
            icon=":material/arrow_forward:",
        )
        return None
    if entry.run is None:
        st.error(plain(entry.error or "This run cannot be read."))
        return None
    try:
        return entry, cached_explainer(*entry.key)
    except GRError as error:
        st.error(plain(str(error)))
        return None


def explain_page() -> None:
    """Draw the Explain page."""
    run_router_first()
    st.title("Explain a prediction")
    st.caption(ABOUT_GR)
    chosen = chosen_run()
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
        method, k = method_ui()
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

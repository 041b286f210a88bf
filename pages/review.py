"""Review page: step through a run's test predictions and judge their explanations.

The run comes from the sidebar (``run`` query parameter). The page shows one test
triple at a time: its query, the model's filtered top-1 prediction, the GR
explanation of that prediction as a graph and a table. The reviewer gives a
verdict (plausible, implausible, unsure) and a note; each is saved to the run
folder as it is given (``gr_core.review``). A summary and a CSV export follow.

The view is kept in the URL: ``show`` (``all``, ``correct``, ``wrong``),
``relation`` (key or label; absent: every relation), ``position`` (1-based, in
the filtered list) and ``k`` (triples in the explanation). A parameter that does
not fit is replaced by the default, with a warning that does not repeat it.

The run and its ``Explainer`` come from ``pages.loading``, one cache with the
Explain page. The top-1 predictions of all test triples are computed in one
cached pass, for the filters; an explanation is computed only for the prediction
shown.
"""

import pandas as pd
import streamlit as st

from gr_core import Explanation
from gr_core.errors import GRError
from gr_core.review import (
    SHOWN,
    VERDICTS,
    Review,
    ReviewLog,
    read_reviews,
    record_review,
    review_summary,
    reviews_csv,
    select_predictions,
    top1_predictions,
)
from pages.explanation_view import RANK_COLUMN, coloured_categories, explanation_table, graph_ui
from pages.loading import LoadedRun, cached_loaded_run, chosen_run
from pages.shared import (
    RunEntry,
    forget_other_run,
    keep_in_url,
    plain,
    restore_from_url,
    run_router_first,
    whole_number,
)

SHOWN_LABELS = {"all": "All", "correct": "Correct", "wrong": "Wrong"}
MAX_K = 50
DEFAULT_K = 10
GRAPH_HEIGHT = 480
KEY = {param: f"review_{param}" for param in ("show", "relation", "position", "k")}
VIEW_RUN_KEY = "review_view_run"  # the run the view's choices belong to
SAVE_ERROR_KEY = "review_save_error"
# The relation choice "every relation": data files never hold an empty name, and
# keep_in_url leaves an empty value out of the URL.
ALL_RELATIONS = ""
ABOUT = (
    "Step through the test triples of the run. For each, the model predicts the likeliest "
    "tail that training and validation do not already give the query (the filtered top-1), "
    "and gradient rollback explains that prediction. Judge whether the explanation is a "
    "plausible reason for the prediction; every verdict and note is saved to the run "
    "folder (`reviews.jsonl`) as soon as it is given."
)


# ---- cached work ------------------------------------------------------------------------


@st.cache_data(max_entries=16, show_spinner="Predicting every test triple…")
def cached_predictions(path: str, config_mtime_ns: int) -> pd.DataFrame:
    """Return the filtered top-1 prediction of every test triple of the run."""
    loaded = cached_loaded_run(path, config_mtime_ns)
    return top1_predictions(loaded.explainer, loaded.dataset.test)


@st.cache_data(max_entries=256, show_spinner="Explaining the prediction…")
def cached_explanation(
    path: str, config_mtime_ns: int, head: str, relation: str, tail: str, k: int
) -> Explanation:
    """Explain ``tail`` for ``(head, relation, ?)`` with GR-k."""
    explainer = cached_loaded_run(path, config_mtime_ns).explainer
    return explainer.explain(head, relation, tail, method="gr", k=k)


# ---- the view in the URL ----------------------------------------------------------------


def restore_filters(loaded: LoadedRun, run_name: str) -> list[str]:
    """Copy the URL's filters and k into the widgets' state; return the rejected names.

    Choices made for another run are dropped when the sidebar switches runs.
    """
    forget_other_run(VIEW_RUN_KEY, run_name, KEY)
    if st.query_params.get("relation") is None:
        st.session_state[KEY["relation"]] = ALL_RELATIONS
    parsers = {
        "show": lambda text: text if text in SHOWN else None,
        "relation": loaded.relation_key,
        "k": lambda text: whole_number(text, 1, MAX_K),
    }
    return restore_from_url(parsers, KEY)


def filter_changed(param: str) -> None:
    """Widget callback for the filters: keep the choice in the URL, start at position 1."""
    keep_in_url(param, st.session_state[KEY[param]])
    st.session_state[KEY["position"]] = 1
    keep_in_url("position", 1)


def remember(param: str) -> None:
    """Widget callback: write the widget's new value into the URL before the rerun."""
    keep_in_url(param, st.session_state[KEY[param]])


def step(delta: int, count: int) -> None:
    """Button callback: move the position by ``delta`` within 1..count."""
    position = st.session_state.get(KEY["position"], 1) + delta
    st.session_state[KEY["position"]] = min(max(position, 1), count)
    keep_in_url("position", st.session_state[KEY["position"]])


# ---- choosing what to review ------------------------------------------------------------


def filters_ui(loaded: LoadedRun) -> tuple[str, str | None, int]:
    """Draw which predictions to step through and the explanation size; return them."""
    if st.session_state.get(KEY["show"]) not in SHOWN:
        st.session_state[KEY["show"]] = "all"
    if st.session_state.get(KEY["k"]) is None:
        st.session_state[KEY["k"]] = DEFAULT_K
    show_column, relation_column, k_column = st.columns([2, 3, 1], vertical_alignment="bottom")
    shown = show_column.segmented_control(
        "Predictions",
        SHOWN,
        format_func=SHOWN_LABELS.get,
        required=True,
        key=KEY["show"],
        on_change=filter_changed,
        args=("show",),
        help="Correct: the filtered top-1 is the test triple's tail. Wrong: it is not.",
    )
    relation = relation_column.selectbox(
        "Relation",
        [ALL_RELATIONS, *loaded.dataset.relations],
        format_func=lambda key: loaded.relation_labels.get(key, "All relations"),
        key=KEY["relation"],
        on_change=filter_changed,
        args=("relation",),
    )
    k = k_column.number_input(
        "Triples (k)",
        1,
        MAX_K,
        key=KEY["k"],
        on_change=remember,
        args=("k",),
        help="How many of the most influential training triples the explanation shows.",
    )
    for param, value in (("show", shown), ("relation", relation), ("k", k)):
        keep_in_url(param, value)
    return shown, relation or None, k


def position_ui(count: int) -> int:
    """Draw Previous, the position and Next; return the 1-based position."""
    if restore_from_url({"position": lambda text: whole_number(text, 1, count)}, KEY):
        st.warning("The link's position is not in this list; starting at the first.")
    if st.session_state.get(KEY["position"]) not in range(1, count + 1):
        st.session_state[KEY["position"]] = 1

    row = st.container(horizontal=True, vertical_alignment="bottom")
    position = st.session_state[KEY["position"]]
    row.button(
        "Previous",
        key="review_previous",
        icon=":material/arrow_back:",
        on_click=step,
        args=(-1, count),
        disabled=position <= 1,
    )
    position = row.number_input(
        f"Position (of {count:,})",
        1,
        count,
        key=KEY["position"],
        on_change=remember,
        args=("position",),
        width=160,
    )
    row.button(
        "Next",
        key="review_next",
        icon=":material/arrow_forward:",
        on_click=step,
        args=(1, count),
        disabled=position >= count,
    )
    keep_in_url("position", position)
    return position


# ---- one prediction ---------------------------------------------------------------------


def item_ui(item, loaded: LoadedRun) -> None:
    """Draw the query, the test triple's tail and the prediction."""
    entity, relation = loaded.entity_labels, loaded.relation_labels
    st.markdown(f"**Query** ({plain(entity[item.head])}, {plain(relation[item.relation])}, ?)")
    st.markdown(f"**Test tail** {plain(entity[item.tail])}")
    if item.prediction is None:
        return
    mark = ":green[correct]" if item.correct else ":red[wrong]"
    prediction = plain(entity[item.prediction])
    st.markdown(f"**Prediction** {prediction} (p = {item.probability:.3f}) · {mark}")
    st.caption(f"Test triple {item.row + 1:,} of the data set, in file order.")


def explanation_ui(explanation: Explanation, loaded: LoadedRun) -> None:
    """Draw the explanation's graph and table."""
    if not explanation.rows:
        st.info("No training triple lowers this prediction's probability when rolled back.")
    graph_ui(explanation, loaded, GRAPH_HEIGHT)
    table = explanation_table(explanation, loaded).drop(columns="probability after removal")
    st.dataframe(
        coloured_categories(table),
        hide_index=True,
        key="review_explanation_table",
        column_config={
            "rank": RANK_COLUMN,
            "influence": st.column_config.NumberColumn(
                format="%.4g", help="Drop of the prediction's probability when rolled back"
            ),
        },
    )


# ---- verdicts ---------------------------------------------------------------------------


def save_verdict(run_path: str, row: int, reviewed: dict) -> None:
    """Widget callback: append the shown verdict and note to the run's reviews file."""
    verdict = st.session_state.get(f"review_verdict_{row}")
    if verdict is None:
        return  # a note without a verdict waits for the verdict
    note = st.session_state.get(f"review_note_{row}", "")
    try:
        record_review(run_path, Review(**reviewed, verdict=verdict, note=note))
    except OSError as error:
        st.session_state[SAVE_ERROR_KEY] = f"The verdict could not be saved: {error}"


def verdict_ui(entry: RunEntry, item, explanation: Explanation, log: ReviewLog) -> None:
    """Draw the verdict and the note of the shown prediction, saved as they are given."""
    if SAVE_ERROR_KEY in st.session_state:
        st.error(plain(st.session_state.pop(SAVE_ERROR_KEY)))
    saved = log.reviews.get((item.head, item.relation, item.tail))
    top_category = explanation.rows[0].category if explanation.rows else ""
    reviewed = {
        "head": item.head,
        "relation": item.relation,
        "tail": item.tail,
        "prediction": item.prediction,
        "top_category": top_category,
    }
    callback = {"on_change": save_verdict, "args": (str(entry.path), item.row, reviewed)}
    st.radio(
        "Is the explanation a plausible reason for the prediction?",
        VERDICTS,
        index=None if saved is None else VERDICTS.index(saved.verdict),
        horizontal=True,
        key=f"review_verdict_{item.row}",
        **callback,
    )
    st.text_area(
        "Note",
        value="" if saved is None else saved.note,
        key=f"review_note_{item.row}",
        placeholder="Why? (saved with the verdict)",
        **callback,
    )
    if saved is None:
        st.caption("Not reviewed yet; choosing a verdict saves it with the note.")
    else:
        st.caption(f"Saved: {saved.verdict}, at {saved.time[:19].replace('T', ' ')} UTC.")


def summary_ui(log: ReviewLog, loaded: LoadedRun, entry: RunEntry) -> None:
    """Draw the share plausible overall, by relation and by category; offer the CSV."""
    st.subheader("Summary of the verdicts")
    if log.skipped:
        st.warning(
            f"{log.skipped} line(s) of reviews.jsonl could not be read (an interrupted "
            "write, say) and were left out."
        )
    if not log.reviews:
        st.info("No verdicts yet.")
        return
    reviews = list(log.reviews.values())
    summary = review_summary(reviews)
    overall = summary["overall"].loc["all"]
    columns = st.columns(4)
    columns[0].metric("Reviewed", f"{int(overall['reviewed']):,}")
    columns[1].metric("Share plausible", f"{overall['share plausible']:.0%}")
    columns[2].metric("Implausible", f"{int(overall['implausible']):,}")
    columns[3].metric("Unsure", f"{int(overall['unsure']):,}")

    share = {"share plausible": st.column_config.NumberColumn(format="percent")}
    by_relation = summary["relation"].rename(index=loaded.relation_labels)
    relation_column, category_column = st.columns(2)
    relation_column.caption("By relation")
    relation_column.dataframe(by_relation, key="review_by_relation", column_config=share)
    category_column.caption("By the category of the explanation's top triple")
    category_column.dataframe(summary["category"], key="review_by_category", column_config=share)
    st.download_button(
        "Verdicts (CSV)",
        reviews_csv(reviews),
        file_name=f"{entry.name}-reviews.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="download_reviews",
    )


# ---- the page ---------------------------------------------------------------------------


def reviews_or_error(entry: RunEntry) -> ReviewLog:
    """Read the run's verdicts; say so, and show none, when the file cannot be read."""
    try:
        return read_reviews(entry.path)
    except OSError as error:
        st.error(plain(f"The verdicts in {entry.path} could not be read: {error}"))
        return ReviewLog({})


def review_one(entry: RunEntry, loaded: LoadedRun, item, k: int, log: ReviewLog) -> None:
    """Draw one prediction: query, verdict, and its explanation."""
    if item.prediction is None:
        item_ui(item, loaded)
        st.info("Train and valid already give this query every entity as a tail.")
        return
    try:
        explanation = cached_explanation(*entry.key, item.head, item.relation, item.prediction, k)
    except GRError as error:
        st.error(plain(str(error)))
        return
    query_column, graph_column = st.columns([2, 3], gap="large")
    with query_column:
        item_ui(item, loaded)
        verdict_ui(entry, item, explanation, log)
    with graph_column:
        explanation_ui(explanation, loaded)


def review_page() -> None:
    """Draw the Review page."""
    run_router_first()
    st.title("Review explanations")
    st.caption(ABOUT)
    chosen = chosen_run("No runs yet: train one on the Runs page, then come back to review it.")
    if chosen is None:
        return
    entry, loaded = chosen
    rejected = restore_filters(loaded, entry.name)
    if rejected:
        # The parameters' text is not echoed: a crafted link could put markdown on the page.
        st.warning(f"The link's {', '.join(rejected)} did not fit this run and were replaced.")

    predictions = cached_predictions(*entry.key)
    shown, relation, k = filters_ui(loaded)
    selected = select_predictions(predictions, shown, relation)
    log = reviews_or_error(entry)
    if selected.empty:
        st.info("No test triple fits these filters.")
    else:
        position = position_ui(len(selected))
        item = next(selected.iloc[[position - 1]].itertuples(index=False))
        review_one(entry, loaded, item, k, log)
    summary_ui(log, loaded, entry)


review_page()

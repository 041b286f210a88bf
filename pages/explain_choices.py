"""Not a page: the Explain page's choices, drawn as widgets and kept in the URL.

The query (``head``, ``relation``), the predictions shown (``top``, ``known``),
the tail to explain (``tail``), the method (``method``) and the explanation size
(``k``) each have a widget and a query parameter of that name. A link restores
them before the widgets are drawn; every change is written back, so the address
always names the view.
"""

import streamlit as st

from gr_core import Prediction
from pages.loading import LoadedRun
from pages.shared import forget_other_run, keep_in_url, restore_from_url, whole_number

METHOD_LABELS = {
    "gr": "GR",
    "gr-o": "GR-O",
    "first-order": "First-order",
    "all-positive": "GR-ALL",
    "criage": "CRIAGE",
}
METHODS = tuple(METHOD_LABELS)
SIGMOID_ONLY = ("criage",)  # CRIAGE is defined for runs trained with the sigmoid (bce) loss
METHOD_HELP = (
    "GR: the k triples whose rollback lowers the probability most. "
    "GR-O: the same, among triples whose tail is the explained tail. "
    "First-order: ranked by the linearised rollback (gradient · ledger), a cheap estimate. "
    "GR-ALL: every triple whose rollback lowers the probability at all."
)
CRIAGE_HELP = (
    " CRIAGE (Pezeshkpour et al. 2019, sigmoid runs only): GR-O's triples ranked by a "
    "Newton step on the tail's embedding instead of the ledger."
)


def methods_for(loaded: LoadedRun) -> tuple[str, ...]:
    """Return the methods the run supports: CRIAGE only for sigmoid runs."""
    if loaded.run.train_config.loss == "bce":
        return METHODS
    return tuple(method for method in METHODS if method not in SIGMOID_ONLY)


MAX_K = 50
MAX_TOP = 20
# Every rerun sends a selector's options to the browser: WN18RR's 40,559 names are
# 617 KB and cost about 1.3 s a rerun. Above this many heads, a search narrows them.
MAX_HEAD_OPTIONS = 2_000
MAX_HEAD_MATCHES = 200
HEAD_SEARCH_KEY = "explain_head_search"
DEFAULTS = {"k": 10, "method": "gr", "top": 10, "known": False}
KEY = {  # query parameter -> session-state key of its widget
    param: f"explain_{param}"
    for param in ("head", "relation", "tail", "k", "method", "top", "known")
}
VIEW_RUN_KEY = "explain_view_run"  # the run the view's choices belong to


# ---- the view in the URL --------------------------------------------------------------


def parsers(loaded: LoadedRun) -> dict:
    """Return, per query parameter, a function from its text to a value or None."""
    return {
        "head": loaded.entity_key,
        "relation": loaded.relation_key,
        "tail": loaded.entity_key,
        "k": lambda text: whole_number(text, 1, MAX_K),
        "method": lambda text: text if text in methods_for(loaded) else None,
        "top": lambda text: whole_number(text, 1, MAX_TOP),
        "known": {"1": True, "true": True, "0": False, "false": False}.get,
    }


def restore_view(loaded: LoadedRun, run_name: str) -> None:
    """Copy the URL's view into the widgets' state before they are drawn.

    Choices made for another run are dropped quietly when the sidebar switches
    runs; a parameter that does not fit gets a warning and is left out (the
    widget keeps its current value, or the default in a fresh session).
    """
    query = {param: KEY[param] for param in ("head", "relation", "tail")}
    forget_other_run(VIEW_RUN_KEY, run_name, query)
    rejected = restore_from_url(parsers(loaded), KEY)
    if rejected:
        # The parameters' text is not echoed: a crafted link could put markdown on the page.
        st.warning(
            f"The link's {', '.join(rejected)} did not fit this run and were replaced; "
            "choose again below."
        )


def remember(param: str) -> None:
    """Widget callback: write the widget's new value into the URL before the rerun."""
    keep_in_url(param, st.session_state[KEY[param]])


def remember_query(param: str) -> None:
    """Widget callback for head and relation: a new query starts at its own top-1 tail."""
    remember(param)
    st.query_params.pop("tail", None)
    st.session_state.pop(KEY["tail"], None)


def seed(param: str, default, allowed) -> None:
    """Give a widget its default unless its state already holds an allowed value."""
    if st.session_state.get(KEY[param]) not in allowed:
        st.session_state[KEY[param]] = default


# ---- the widgets ------------------------------------------------------------------------


def query_ui(loaded: LoadedRun) -> tuple[str, str, int, bool]:
    """Draw head, relation, predictions shown and the known-tails toggle; return them."""
    dataset = loaded.dataset
    first_test = dataset.test[0].tolist() if len(dataset.test) else dataset.train[0].tolist()
    heads = dataset.query_heads
    seed("head", dataset.entities[first_test[0]], set(heads))
    seed("relation", dataset.relations[first_test[1]], loaded.relation_labels)
    seed("top", DEFAULTS["top"], range(1, MAX_TOP + 1))
    seed("known", DEFAULTS["known"], (True, False))

    columns = st.columns([3, 3, 2, 2], vertical_alignment="bottom")
    head_column, relation_column, top_column, known_column = columns
    if len(heads) > MAX_HEAD_OPTIONS:
        heads = searched_heads(loaded, head_column)
    head = head_column.selectbox(
        "Head",
        heads,
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


def searched_heads(loaded: LoadedRun, column) -> list[str]:
    """Draw the head search of a large data set; return the heads the selector offers.

    The matches of the search (the test triples' heads while it is empty), at most
    ``MAX_HEAD_MATCHES``, after the current head, so that the selection stays.
    """
    dataset = loaded.dataset
    text = column.text_input(
        "Find a head",
        key=HEAD_SEARCH_KEY,
        placeholder=f"Part of a name, among {len(dataset.query_heads):,}",
        help="Type part of a name and press Enter; the Head list below then holds the "
        "matches. A large data set's names are too many to list at once.",
    ).strip()
    if text:
        found = head_matches(loaded, text)
        shown = found[:MAX_HEAD_MATCHES]
        if not found:
            column.caption("No head matches; the list holds the current head.")
        elif len(found) > len(shown):
            column.caption(f"{len(found):,} matches; the list holds the first {len(shown)}.")
    else:
        shown = [dataset.entities[h] for h in dict.fromkeys(dataset.test[:, 0].tolist())]
        shown = shown[:MAX_HEAD_MATCHES]
    current = st.session_state.get(KEY["head"])
    return list(dict.fromkeys([current, *shown])) if current is not None else shown


def head_matches(loaded: LoadedRun, text: str) -> list[str]:
    """Return the keys of the query heads whose shown name or key contains ``text``, best first."""
    dataset = loaded.dataset
    found = [dataset.entities[i] for i in dataset.entity_names.search(text)]
    if len(dataset.query_heads) == dataset.num_entities:
        return found
    heads = set(dataset.query_heads)
    return [key for key in found if key in heads]


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


def method_ui(loaded: LoadedRun) -> tuple[str, int]:
    """Draw the method and the explanation size; return (method, k)."""
    methods = methods_for(loaded)
    seed("method", DEFAULTS["method"], methods)
    seed("k", DEFAULTS["k"], range(1, MAX_K + 1))
    method_column, k_column = st.columns([3, 1])
    method = method_column.segmented_control(
        "Method",
        methods,
        format_func=METHOD_LABELS.get,
        required=True,
        key=KEY["method"],
        on_change=remember,
        args=("method",),
        help=METHOD_HELP + (CRIAGE_HELP if "criage" in methods else ""),
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

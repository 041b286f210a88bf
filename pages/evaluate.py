"""Evaluate page: are the selected run's explanations faithful? RemOve And Retrain (ROAR).

For N test queries of the run chosen in the sidebar, each method's triples are
removed and the model retrained (``gr_core.evaluation.run_evaluation``); the
page reports how often the explained probability dropped (PD %) and the top-1
changed (TC %), tests each method against the random baseline, and draws both
as bars. Evaluations are saved in ``RUN/evaluations/NAME/``: running a name that
holds the same settings resumes it, other settings are refused. The saved
evaluation on view is kept in the ``evaluation`` query parameter.

An evaluation runs in this browser session's own script thread, so other
sessions keep working. Changing a widget here while it runs stops it; the
batches of queries already finished are kept, and running it again resumes.
"""

import re
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from gr_core.errors import ConfigError, GRError
from gr_core.evaluation import EvaluationMismatchError, run_evaluation
from gr_core.evaluations import (
    TABLE_1_METHODS,
    SavedEvaluation,
    check_name,
    default_name,
    evaluations_folder,
    list_evaluations,
    read_evaluation,
    significance,
    table_2_methods,
    to_outcomes,
)
from gr_core.figures import faithfulness_figure
from gr_core.roar import check_methods
from pages.loading import chosen_entry
from pages.shared import RunEntry, forget_other_run, keep_in_url, plain, run_router_first

EVALUATION_PARAM = "evaluation"
KEY = {
    field: f"evaluate_{field}"
    for field in ("queries", "all", "seed", "methods", "name", "evaluation")
}
VIEW_RUN_KEY = "evaluate_view_run"  # the run the shown evaluation belongs to
DEFAULT_QUERIES = 20
MAX_SEED = 2**31 - 1
METHOD_SEPARATORS = re.compile(r"[\s,;]+")
SUMMARY_ROWS = {"pd": "PD %", "tc": "TC %", "n": "n", "removed": "removed (mean)"}
P_VALUE_COLUMN = st.column_config.NumberColumn(format="%.4f")
SUMMARY_FORMATS = {"PD %": "{:.1f}", "TC %": "{:.1f}", "n": "{:.0f}", "removed (mean)": "{:.1f}"}
ABOUT_ROAR = (
    "**RemOve And Retrain**: for each test query, explain the model's filtered top-1 "
    "prediction, remove each method's chosen training triples, retrain from scratch with the "
    "same seed, initial weights and batch order, and see whether the prediction weakens. "
    "**PD %**: the share of queries whose probability dropped; **TC %**: the share whose "
    "top-1 changed. GR-k removes the k most influential triples, GR-ALL every positive one, "
    "NH-k k random neighbours and NH-ALL as many random neighbours as GR-ALL."
)
METHODS_HELP = (
    "Separated by spaces or commas. GR-k, GR-ALL: gradient rollback; GR-O-k: GR among "
    "triples ending in the predicted tail; FO-k: first-order GR; NH-k, NH-ALL: random "
    "neighbours; CRIAGE-k: runs trained with the bce loss only."
)


@dataclass(frozen=True)
class EvaluationRequest:
    """What the new-evaluation form asked for."""

    queries: int | None  # None: every test query
    methods: str  # as typed
    seed: int
    name: str


# ---- the new-evaluation form ----------------------------------------------------------


def use_methods(methods: tuple[str, ...]) -> None:
    """Button callback: put a method set into the methods field."""
    st.session_state[KEY["methods"]] = " ".join(methods)


def methods_ui(loss: str) -> str:
    """Draw the methods field and the Table 1 and Table 2 presets; return the text."""
    st.session_state.setdefault(KEY["methods"], " ".join(TABLE_1_METHODS))
    table_2 = table_2_methods(loss)
    field_column, buttons_column = st.columns([3, 2], vertical_alignment="bottom")
    text = field_column.text_input("Methods", key=KEY["methods"], help=METHODS_HELP)
    buttons = buttons_column.container(horizontal=True)
    buttons.button(
        "Table 1 set",
        key="evaluate_table_1",
        on_click=use_methods,
        args=(TABLE_1_METHODS,),
        help=" ".join(TABLE_1_METHODS),
    )
    buttons.button(
        "Table 2 set",
        key="evaluate_table_2",
        on_click=use_methods,
        args=(table_2,),
        help=" ".join(table_2)
        + ("" if loss == "bce" else ". CRIAGE needs a run trained with the bce loss."),
    )
    return text


def request_ui(entry: RunEntry) -> EvaluationRequest | None:
    """Draw the form for a new evaluation; return the request when Run is clicked."""
    test_count = int(entry.run.config["dataset"]["test"])
    if not 1 <= st.session_state.get(KEY["queries"], 0) <= test_count:  # new, or another run's
        st.session_state[KEY["queries"]] = min(DEFAULT_QUERIES, test_count)
    count_column, all_column, seed_column, name_column = st.columns(
        [2, 2, 1, 3], vertical_alignment="bottom"
    )
    every = all_column.toggle(f"All {test_count} test queries", key=KEY["all"])
    count = count_column.number_input(
        "Test queries",
        1,
        test_count,
        key=KEY["queries"],
        disabled=every,
        help="Test triples drawn at random (seeded); their filtered top-1 is explained.",
    )
    seed = seed_column.number_input(
        "Seed", 0, MAX_SEED, 0, key=KEY["seed"], help="Draws the queries and the NH baselines."
    )
    queries = None if every else int(count)
    name = name_column.text_input(
        "Evaluation name",
        key=KEY["name"],
        placeholder=default_name(queries, int(seed)),
        help="Saved as evaluations/NAME/ in the run folder. Letters, digits, -, _ and . only. "
        "A name saved with the same settings resumes; other settings are refused.",
    )
    methods = methods_ui(entry.run.train_config.loss)
    clicked = st.button(
        "Run evaluation", type="primary", key="evaluate_run", icon=":material/play_arrow:"
    )
    st.caption(
        f"Retrains 1 + queries × methods models together; this run took "
        f"{float(entry.run.config['result']['seconds']):.1f} s to train once. The work runs in "
        "this browser session only, so other sessions are not held up; changing a setting "
        "while it runs stops it, and running the same name again resumes it."
    )
    if not clicked:
        return None
    name = name.strip() or default_name(queries, int(seed))
    return EvaluationRequest(queries, methods, int(seed), name)


def checked_methods(text: str) -> tuple[str, ...]:
    """Return the typed methods, each once; raise ConfigError for none or an unknown one."""
    names = list(dict.fromkeys(part for part in METHOD_SEPARATORS.split(text) if part))
    if not names:
        raise ConfigError("name at least one method, for example GR-1 NH-1")
    return check_methods(names)


# ---- running an evaluation ------------------------------------------------------------


def progress_reporter(bar, models: int):
    """Return an ``on_step(done, total)`` callback that moves ``bar`` once per whole percent.

    A count that goes back (a new batch of queries) moves the bar back with it.
    """
    shown = -1

    def on_step(done: int, total: int) -> None:
        nonlocal shown
        percent = min(100 * done // max(total, 1), 100)
        if percent != shown:
            shown = percent
            text = f"Retraining {models:,} models together: step {done:,} of {total:,}"
            bar.progress(percent / 100, text=text)

    return on_step


def evaluate_with_progress(entry: RunEntry, name: str, queries: int | None, methods, seed: int):
    """Run (or resume) the evaluation ``name`` behind a progress bar; return whether it worked."""
    test_count = int(entry.run.config["dataset"]["test"])
    count = test_count if queries is None else min(queries, test_count)
    bar = st.progress(0.0, text=f"Explaining the top-1 predictions of {count} queries…")
    try:
        run_evaluation(
            entry.path,
            evaluations_folder(entry.path) / name,
            queries=queries,
            methods=methods,
            seed=seed,
            on_step=progress_reporter(bar, 1 + count * len(methods)),
        )
    except EvaluationMismatchError as error:
        st.error(
            f"The evaluation `{name}` was saved with other settings, so it cannot be resumed "
            f"with these. Choose another name, or view it below. ({plain(str(error))})"
        )
        return False
    except (GRError, OSError) as error:
        st.error(plain(str(error)))
        return False
    finally:
        bar.empty()
    return True


def show_evaluation(name: str) -> None:
    """Make ``name`` the saved evaluation on view (before its selector is drawn)."""
    st.session_state[KEY["evaluation"]] = name
    st.query_params[EVALUATION_PARAM] = name


def new_evaluation_ui(entry: RunEntry) -> None:
    """Draw the form; check and run a submitted request, then put its result on view."""
    st.subheader("New evaluation")
    request = request_ui(entry)
    if request is None:
        return
    try:
        check_name(request.name)
        methods = checked_methods(request.methods)
    except ConfigError as error:
        st.error(plain(str(error)))
        return
    if evaluate_with_progress(entry, request.name, request.queries, methods, request.seed):
        st.success(f"Saved the evaluation `{request.name}`.")
        show_evaluation(request.name)


# ---- a saved evaluation ---------------------------------------------------------------


def remember_evaluation() -> None:
    """Selector callback: write the chosen evaluation into the URL before the rerun."""
    st.query_params[EVALUATION_PARAM] = st.session_state[KEY["evaluation"]]


def select_evaluation_ui(names: list[str], run_name: str) -> str:
    """Draw the saved-evaluation selector, kept in step with the ``evaluation`` parameter."""
    forget_other_run(VIEW_RUN_KEY, run_name, {EVALUATION_PARAM: KEY["evaluation"]})

    wanted = st.query_params.get(EVALUATION_PARAM)
    if wanted in names:
        st.session_state[KEY["evaluation"]] = wanted
    elif wanted is not None:
        # The link's text is not echoed: a crafted link could put markdown on the page.
        st.warning("The evaluation named in the link is not saved for this run; showing another.")
        st.query_params.pop(EVALUATION_PARAM)
    if st.session_state.get(KEY["evaluation"]) not in names:
        st.session_state[KEY["evaluation"]] = names[0]

    selected = st.selectbox(
        "Saved evaluation",
        names,
        key=KEY["evaluation"],
        on_change=remember_evaluation,
        help="Folders under evaluations/ in the run folder.",
    )
    keep_in_url(EVALUATION_PARAM, selected)
    return selected


def summary_table(summary: dict) -> pd.DataFrame:
    """Return the paper's Table 1 layout: PD %, TC %, n and removed as rows, methods as columns."""
    return pd.DataFrame(
        {
            method: {label: float(values[key]) for key, label in SUMMARY_ROWS.items()}
            for method, values in summary.items()
        }
    )


def styled_summary(table: pd.DataFrame):
    """Return the summary table with one number format per row."""
    style = table.style
    for label, number_format in SUMMARY_FORMATS.items():
        style = style.format(number_format, subset=pd.IndexSlice[[label], :])
    return style


@st.cache_data(max_entries=64, show_spinner=False)
def cached_significance(path: str, rows_mtime_ns: int) -> pd.DataFrame:
    """Return the randomization tests of a saved evaluation; rows.csv's time keys the cache."""
    tests = significance(to_outcomes(read_evaluation(path).rows))
    return pd.DataFrame(
        {
            "comparison": [f"{test['method']} vs {test['baseline']}" for test in tests],
            "queries": [test["n"] for test in tests],
            "PD p": [test["pd_p"] for test in tests],
            "TC p": [test["tc_p"] for test in tests],
        }
    )


def significance_ui(evaluation: SavedEvaluation) -> None:
    """Draw each method's test against the baselines, and the saved table.md."""
    st.markdown("**Significance**")
    stamp = (evaluation.path / "rows.csv").stat().st_mtime_ns
    tests = cached_significance(str(evaluation.path), stamp)
    if tests.empty:
        st.caption("No method has an NH or CRIAGE baseline of the same size to be tested against.")
    else:
        st.caption(
            "Approximate randomization test (10,000 trials) on the paired per-query outcomes: "
            "the chance of a difference at least this large if the two methods were alike."
        )
        st.dataframe(
            tests,
            hide_index=True,
            key="evaluate_significance",
            column_config={name: P_VALUE_COLUMN for name in ("PD p", "TC p")},
        )
    table_md = evaluation.path / "table.md"
    if table_md.is_file():
        with st.expander("table.md, as saved"):
            st.markdown(table_md.read_text(encoding="utf-8"))


def rows_ui(entry: RunEntry, evaluation: SavedEvaluation) -> None:
    """Show the per-query rows and offer rows.csv for download."""
    with st.expander(f"Per-query rows ({len(evaluation.rows):,})"):
        st.dataframe(pd.DataFrame(evaluation.rows), hide_index=True, key="evaluate_rows")
    st.download_button(
        "Per-query rows (CSV)",
        (evaluation.path / "rows.csv").read_bytes(),
        file_name=f"{entry.name}-{evaluation.name}-rows.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="evaluate_download_rows",
    )


def resume_ui(entry: RunEntry, evaluation: SavedEvaluation) -> None:
    """Say that the evaluation stopped early and offer to finish it."""
    st.warning(
        f"This evaluation stopped after {evaluation.finished} of {evaluation.total} queries; "
        "the tables show the finished ones."
    )
    if not st.button("Resume", key="evaluate_resume", icon=":material/resume:"):
        return
    settings = evaluation.settings
    queries, methods = len(settings["queries"]), tuple(settings["methods"])
    if evaluate_with_progress(entry, evaluation.name, queries, methods, int(settings["seed"])):
        st.rerun()


def results_ui(entry: RunEntry, evaluation: SavedEvaluation) -> None:
    """Draw a saved evaluation: summary table, bars, significance and rows."""
    settings = evaluation.settings
    st.caption(
        f"{evaluation.finished} of {evaluation.total} queries · seed {settings['seed']} · "
        f"methods {', '.join(evaluation.methods)}"
    )
    if not evaluation.complete:
        resume_ui(entry, evaluation)
    if not evaluation.summary:
        st.info("No query has finished yet.")
        return

    st.dataframe(styled_summary(summary_table(evaluation.summary)), key="evaluate_summary")
    st.plotly_chart(faithfulness_figure(evaluation.summary), key="evaluate_chart")
    significance_ui(evaluation)
    rows_ui(entry, evaluation)


def saved_ui(entry: RunEntry) -> None:
    """Draw the selector of the run's saved evaluations and the one on view."""
    st.subheader("Saved evaluations")
    folders = list_evaluations(entry.path)
    if not folders:
        st.info("No saved evaluations of this run yet: run one above.")
        return
    name = select_evaluation_ui([folder.name for folder in folders], entry.name)
    try:
        evaluation = read_evaluation(evaluations_folder(entry.path) / name)
    except GRError as error:
        st.error(plain(str(error)))
        return
    results_ui(entry, evaluation)


# ---- the page -------------------------------------------------------------------------


def evaluate_page() -> None:
    """Draw the Evaluate page."""
    run_router_first()
    st.title("Evaluate faithfulness")
    st.caption(ABOUT_ROAR)
    entry = chosen_entry("No runs yet: train one on the Runs page, then come back to evaluate it.")
    if entry is None:
        return
    with st.container(border=True):
        new_evaluation_ui(entry)
    saved_ui(entry)


evaluate_page()

"""The Evaluate page driven through app.py with AppTest.

A three-epoch Nations run is trained once for the module and copied into a fresh
runs folder for each test, so evaluations written by one test never reach
another. Numbers the page shows are compared with the files the evaluation
wrote and with ``gr_core.roar.summarise`` of its rows.
"""

import dataclasses
import json
from functools import partial

import pytest
from streamlit.testing.v1 import AppTest

from gr_core import evaluation
from gr_core.evaluation import read_rows, run_evaluation
from gr_core.evaluations import TABLE_1_METHODS, table_2_methods
from gr_core.roar import Outcome, summarise
from tests.pages import SHORT, copy_to_runs_folder, open_page, save_trained, use_runs_folder

RUN = "nations-tiny"
SUMMARY_ROWS = {"pd": "PD %", "tc": "TC %", "n": "n", "removed": "removed (mean)"}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, nations):
    return save_trained(tmp_path_factory.mktemp("template") / RUN, nations, SHORT)


@pytest.fixture
def runs_root(trained_run, tmp_path, monkeypatch):
    """A runs folder of its own holding a copy of the tiny Nations run."""
    return copy_to_runs_folder(trained_run, tmp_path / "runs", monkeypatch).parent


open_evaluate = partial(open_page, "evaluate", timeout=300)


def run_from_page(app: AppTest, name: str, queries: int, methods: str | None = None) -> AppTest:
    """Fill in the form and click Run evaluation."""
    app.number_input(key="evaluate_queries").set_value(queries)
    app.text_input(key="evaluate_name").set_value(name)
    if methods is not None:
        app.text_input(key="evaluate_methods").set_value(methods)
    app.button(key="evaluate_run").click().run()
    assert not app.exception, app.exception
    return app


def shown_summary(app: AppTest) -> dict:
    """Return the summary table on the page as {method: {"pd", "tc", "n", "removed"}}."""
    (table,) = [frame.value for frame in app.dataframe if "PD %" in frame.value.index]
    return {
        method: {key: table.loc[label, method] for key, label in SUMMARY_ROWS.items()}
        for method in table.columns
    }


def chart_bars(app: AppTest) -> dict[tuple[str, str], float]:
    """Return the bar chart's values as {(method, measure axis): value}."""
    (chart,) = app.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    return {
        (method, trace["xaxis"]): value
        for trace in spec["data"]
        for method, value in zip(trace["customdata"], trace["y"], strict=True)
    }


def outcomes_of(rows):
    names = [field.name for field in dataclasses.fields(Outcome)]
    return [Outcome(**{name: row[name] for name in names}) for row in rows]


def assert_same_summary(shown: dict, summary: dict) -> None:
    """Check two summaries name the same methods, in order, with the same numbers."""
    assert list(shown) == list(summary)
    for method, values in summary.items():
        assert shown[method] == pytest.approx(values)


def assert_page_shows(app: AppTest, summary: dict) -> None:
    """Check the summary table and the bars against a summary."""
    assert_same_summary(shown_summary(app), summary)
    bars = chart_bars(app)
    assert {(m, "x"): v["pd"] for m, v in summary.items()} == pytest.approx(
        {key: value for key, value in bars.items() if key[1] == "x"}
    )
    assert {(m, "x2"): v["tc"] for m, v in summary.items()} == pytest.approx(
        {key: value for key, value in bars.items() if key[1] == "x2"}
    )


def test_an_evaluation_runs_from_the_page_and_shows_what_it_saved(runs_root, monkeypatch):
    steps = []
    real_run_evaluation = evaluation.run_evaluation

    def recording(*args, on_step, **kwargs):
        def spy(done, total):
            steps.append((done, total))
            on_step(done, total)

        return real_run_evaluation(*args, on_step=spy, **kwargs)

    monkeypatch.setattr(evaluation, "run_evaluation", recording)
    app = run_from_page(open_evaluate(run=RUN), "three", queries=3)

    assert not app.error
    assert "three" in app.success[0].value
    folder = runs_root / RUN / "evaluations" / "three"
    summary = json.loads((folder / "summary.json").read_text())
    rows = read_rows(folder / "rows.csv")
    assert list(summary) == list(TABLE_1_METHODS)
    assert sorted({row["query"] for row in rows}) == [0, 1, 2]
    assert summarise(outcomes_of(rows)) == summary
    gr_1 = [row for row in rows if row["method"] == "GR-1"]
    assert summary["GR-1"]["pd"] == pytest.approx(100 * sum(r["pd"] for r in gr_1) / 3)
    assert_page_shows(app, summary)

    assert steps and steps[-1][0] == steps[-1][1]  # the progress bar was driven to the end
    assert app.query_params["evaluation"] == "three"
    assert app.selectbox(key="evaluate_evaluation").value == "three"
    (tests,) = [frame.value for frame in app.dataframe if "comparison" in frame.value.columns]
    assert list(tests["comparison"]) == ["GR-1 vs NH-1", "GR-10 vs NH-10", "GR-ALL vs NH-ALL"]
    keys = [button.key for button in app.get("download_button")]
    assert keys == ["evaluate_download_rows"]


def test_saved_evaluations_load_from_the_link_and_the_selector(runs_root):
    run_path = runs_root / RUN
    alpha = run_evaluation(
        run_path, run_path / "evaluations" / "alpha", queries=2, methods=("GR-1", "NH-1")
    )
    beta = run_evaluation(
        run_path, run_path / "evaluations" / "beta", queries=3, methods=("GR-ALL", "NH-ALL"), seed=1
    )
    assert alpha != beta

    app = open_evaluate(run=RUN, evaluation="beta")
    assert not app.error and not app.warning
    assert app.selectbox(key="evaluate_evaluation").value == "beta"
    assert_page_shows(app, beta)

    app.selectbox(key="evaluate_evaluation").set_value("alpha").run()
    assert app.query_params["evaluation"] == "alpha"
    assert_page_shows(app, alpha)


def test_a_link_to_a_missing_evaluation_warns_without_echoing_it(runs_root):
    run_path = runs_root / RUN
    run_evaluation(run_path, run_path / "evaluations" / "only", queries=2, methods=("GR-1",))

    app = open_evaluate(run=RUN, evaluation="**nowhere**")

    assert len(app.warning) == 1 and "nowhere" not in app.warning[0].value
    assert app.query_params["evaluation"] == "only"


@pytest.mark.parametrize(
    ("name", "methods", "message"),
    [
        ("../escape", None, "evaluation name needs"),
        ("a/b", None, "evaluation name needs"),
        ("fine", "GR-1 XY-2", "unknown method 'XY-2'"),
        ("fine", " , ", "at least one method"),
    ],
)
def test_a_bad_name_or_method_shows_an_error_and_writes_nothing(runs_root, name, methods, message):
    app = run_from_page(open_evaluate(run=RUN), name, queries=2, methods=methods)

    assert len(app.error) == 1
    assert message in app.error[0].value.replace("\\", "")
    assert not (runs_root / RUN / "evaluations").exists()
    assert not (runs_root / "escape").exists()


def test_a_name_saved_with_other_settings_is_refused(runs_root):
    folder = runs_root / RUN / "evaluations" / "kept"
    run_evaluation(runs_root / RUN, folder, queries=2, methods=("GR-1",))
    saved = {path.name: path.read_bytes() for path in folder.iterdir()}

    app = run_from_page(open_evaluate(run=RUN), "kept", queries=3, methods="GR-1")

    assert len(app.error) == 1
    assert "other settings" in app.error[0].value
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == saved


def test_a_stopped_evaluation_resumes_to_the_same_result(runs_root):
    folder = runs_root / RUN / "evaluations" / "stopped"
    methods = ("GR-1", "NH-1")
    finished = run_evaluation(runs_root / RUN, folder, queries=3, methods=methods)
    lines = (folder / "rows.csv").read_text().splitlines(keepends=True)
    (folder / "rows.csv").write_text("".join(lines[: 1 + len(methods)]))  # query 0 only
    for name in ("summary.json", "approximation.json", "table.md"):
        (folder / name).unlink()

    app = open_evaluate(run=RUN, evaluation="stopped")
    assert "stopped after 1 of 3 queries" in app.warning[0].value
    first = outcomes_of(read_rows(folder / "rows.csv"))
    assert_same_summary(shown_summary(app), summarise(first))

    app.button(key="evaluate_resume").click().run()

    assert not app.exception and not app.error and not app.warning
    assert json.loads((folder / "summary.json").read_text()) == finished
    assert_page_shows(app, finished)


def test_the_table_2_preset_fills_in_its_methods(runs_root, trained_run, nations):
    save_trained(runs_root / "nations-bce", nations, SHORT.replace(loss="bce"))

    app = open_evaluate(run=RUN)
    assert app.text_input(key="evaluate_methods").value == " ".join(TABLE_1_METHODS)
    app.button(key="evaluate_table_2").click().run()
    methods = app.text_input(key="evaluate_methods").value
    assert methods == " ".join(table_2_methods("softmax")) and "CRIAGE" not in methods

    app = open_evaluate(run="nations-bce")
    app.button(key="evaluate_table_2").click().run()
    methods = app.text_input(key="evaluate_methods").value.split()
    assert methods == list(table_2_methods("bce")) and "CRIAGE-10" in methods
    app.button(key="evaluate_table_1").click().run()
    assert app.text_input(key="evaluate_methods").value == " ".join(TABLE_1_METHODS)


def test_empty_runs_folder_points_to_the_runs_page(tmp_path, monkeypatch):
    use_runs_folder(tmp_path / "runs", monkeypatch)

    app = open_evaluate()

    assert not app.error
    assert "No runs yet" in app.info[0].value

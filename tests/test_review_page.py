"""The Review page driven through app.py with AppTest.

One short Nations run is trained for the module; each test reviews its own copy,
so verdicts do not leak between tests. What the page shows is compared with the
predictions ``gr_core.review`` computes on its own.
"""

import io
from functools import partial

import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from gr_core import Explainer, load_dataset, load_run_with_dataset
from gr_core.review import read_reviews, select_predictions, top1_predictions
from pages import loading
from pages.shared import plain
from tests.pages import (
    HOSTILE,
    SHORT,
    copy_to_runs_folder,
    open_page,
    save_trained,
    use_runs_folder,
    write_hostile_graph,
)

RUN = "nations-short"
HOSTILE_NOTE = 'A "quoted" <b>note</b>,\nover two lines & a </script>'


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, nations):
    """A short Nations run, trained once for the module."""
    return save_trained(tmp_path_factory.mktemp("review-page") / RUN, nations, SHORT)


@pytest.fixture(scope="module")
def predictions(trained_run):
    """The filtered top-1 of every test triple, computed without the page."""
    run, dataset = load_run_with_dataset(trained_run)
    return top1_predictions(Explainer(run, dataset), dataset.test)


@pytest.fixture
def run_folder(trained_run, tmp_path, monkeypatch):
    """A fresh copy of the run in its own runs folder, named by GR_RUNS_DIR."""
    return copy_to_runs_folder(trained_run, tmp_path / "runs", monkeypatch)


open_review = partial(open_page, "review")


def shown_query(app: AppTest) -> str:
    """Return the markdown line that names the shown query."""
    (line,) = [md.value for md in app.markdown if md.value.startswith("**Query**")]
    return line


def query_line(head: str, relation: str) -> str:
    return f"**Query** ({plain(head)}, {plain(relation)}, ?)"


def give_verdict(app: AppTest, row: int, verdict: str, note: str | None = None) -> None:
    """Choose a verdict (and write a note) for the shown test row, as a reviewer would."""
    app.radio(key=f"review_verdict_{row}").set_value(verdict).run()
    if note is not None:
        app.text_area(key=f"review_note_{row}").input(note).run()
    assert not app.exception, app.exception


def test_a_verdict_is_saved_and_survives_a_rerun_and_a_reload(run_folder, predictions):
    app = open_review(run=RUN)
    first = predictions.iloc[0]
    assert shown_query(app) == query_line(first["head"], first["relation"])

    give_verdict(app, 0, "plausible", HOSTILE_NOTE)

    (saved,) = read_reviews(run_folder).reviews.values()
    assert saved.triple == (first["head"], first["relation"], first["tail"])
    assert (saved.prediction, saved.verdict, saved.note) == (
        first["prediction"],
        "plausible",
        HOSTILE_NOTE,
    )
    assert saved.top_category  # the explanation's top triple has a category

    app.run()
    assert app.radio(key="review_verdict_0").value == "plausible"

    reloaded = open_review(run=RUN, position=1)
    assert reloaded.radio(key="review_verdict_0").value == "plausible"
    assert reloaded.text_area(key="review_note_0").value == HOSTILE_NOTE
    metrics = {metric.label: metric.value for metric in reloaded.metric}
    assert metrics["Reviewed"] == "1"
    assert metrics["Share plausible"] == "100%"


def test_changing_a_verdict_keeps_the_last_one(run_folder):
    app = open_review(run=RUN)
    give_verdict(app, 0, "plausible")
    give_verdict(app, 0, "implausible", "on second thought")

    (saved,) = read_reviews(run_folder).reviews.values()
    assert (saved.verdict, saved.note) == ("implausible", "on second thought")
    reloaded = open_review(run=RUN)
    assert reloaded.radio(key="review_verdict_0").value == "implausible"


def test_next_and_previous_step_through_the_queries(run_folder, predictions):
    app = open_review(run=RUN)
    assert app.query_params["position"] == "1"
    assert app.button(key="review_previous").disabled
    relations = app.selectbox(key="review_relation")
    assert (relations.index, relations.options[0]) == (0, "All relations")

    app.button(key="review_next").click().run()
    second = predictions.iloc[1]
    assert app.query_params["position"] == "2"
    assert shown_query(app) == query_line(second["head"], second["relation"])
    assert app.number_input(key="review_position").value == 2

    app.button(key="review_previous").click().run()
    assert app.query_params["position"] == "1"
    first = predictions.iloc[0]
    assert shown_query(app) == query_line(first["head"], first["relation"])


def test_a_link_opens_its_position(run_folder, predictions):
    app = open_review(run=RUN, position=7)

    seventh = predictions.iloc[6]
    assert shown_query(app) == query_line(seventh["head"], seventh["relation"])
    assert app.number_input(key="review_position").value == 7
    assert f"review_verdict_{seventh['row']}" in [radio.key for radio in app.radio]


def test_filters_keep_correct_or_wrong_predictions_of_one_relation(run_folder, predictions):
    app = open_review(run=RUN, position=3)

    app.segmented_control(key="review_show").set_value("correct").run()
    correct = select_predictions(predictions, "correct")
    assert app.query_params["show"] == "correct"
    assert app.query_params["position"] == "1"  # a new list starts at its first prediction
    assert app.number_input(key="review_position").label == f"Position (of {len(correct)})"
    for position in range(1, min(len(correct), 3) + 1):
        expected = correct.iloc[position - 1]
        assert shown_query(app) == query_line(expected["head"], expected["relation"])
        assert any(":green[correct]" in md.value for md in app.markdown)
        app.button(key="review_next").click().run()

    relation = predictions.iloc[0]["relation"]
    app.segmented_control(key="review_show").set_value("wrong").run()
    app.selectbox(key="review_relation").set_value(relation).run()
    wrong = select_predictions(predictions, "wrong", relation)
    assert app.query_params["relation"] == relation
    assert app.number_input(key="review_position").label == f"Position (of {len(wrong)})"
    assert shown_query(app) == query_line(wrong.iloc[0]["head"], relation)
    assert any(":red[wrong]" in md.value for md in app.markdown)


def test_a_filter_link_is_restored(run_folder, predictions):
    relation = predictions.iloc[0]["relation"]
    app = open_review(run=RUN, show="wrong", relation=relation, position=1)

    assert not app.warning
    assert app.segmented_control(key="review_show").value == "wrong"
    assert app.selectbox(key="review_relation").value == relation
    wrong = select_predictions(predictions, "wrong", relation)
    assert shown_query(app) == query_line(wrong.iloc[0]["head"], relation)


def test_bad_link_values_fall_back_with_warnings_that_do_not_echo_them(run_folder, predictions):
    app = open_review(run=RUN, show="**odd**", relation="**nowhere**", position=100000)

    warnings = " ".join(warning.value for warning in app.warning)
    assert "odd" not in warnings and "nowhere" not in warnings
    assert "show" in warnings and "relation" in warnings and "position" in warnings
    assert app.query_params["show"] == "all"
    assert "relation" not in app.query_params
    assert app.query_params["position"] == "1"
    first = predictions.iloc[0]
    assert shown_query(app) == query_line(first["head"], first["relation"])


@pytest.fixture
def downloads(monkeypatch):
    """Record every file the page hands to Streamlit for download: {file name: bytes}."""
    captured = {}
    load = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        captured[filename] = path_or_data
        return load(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return captured


def test_the_csv_export_and_the_summary_hold_the_verdicts(run_folder, predictions, downloads):
    app = open_review(run=RUN)
    give_verdict(app, 0, "plausible", HOSTILE_NOTE)
    app.button(key="review_next").click().run()
    give_verdict(app, 1, "implausible", "no")

    app.run()
    data = downloads[f"{RUN}-reviews.csv"]
    table = pd.read_csv(io.BytesIO(data), keep_default_na=False, dtype=str)
    rows = predictions.iloc[:2]
    assert list(table["head"]) == list(rows["head"])
    assert list(table["tail"]) == list(rows["tail"])
    assert list(table["prediction"]) == list(rows["prediction"])
    assert list(table["verdict"]) == ["plausible", "implausible"]
    assert list(table["note"]) == [HOSTILE_NOTE, "no"]

    metrics = {metric.label: metric.value for metric in app.metric}
    assert (metrics["Reviewed"], metrics["Share plausible"]) == ("2", "50%")
    summaries = [frame.value for frame in app.dataframe if "share plausible" in frame.value]
    by_relation, by_category = summaries
    assert set(by_relation.index) == set(rows["relation"])
    assert int(by_relation["reviewed"].sum()) == int(by_category["reviewed"].sum()) == 2
    assert by_relation["plausible"].sum() == by_category["plausible"].sum() == 1


def test_a_torn_reviews_file_is_reported_and_still_read(run_folder):
    app = open_review(run=RUN)
    give_verdict(app, 0, "unsure")
    with open(run_folder / "reviews.jsonl", "ab") as stream:
        stream.write(b'{"head": "to')

    reloaded = open_review(run=RUN)
    assert reloaded.radio(key="review_verdict_0").value == "unsure"
    assert any("could not be read" in warning.value for warning in reloaded.warning)


def test_review_and_explain_load_the_run_once(run_folder, monkeypatch):
    loads = []
    load = loading.load_run_with_dataset

    def counting(path):
        loads.append(path)
        return load(path)

    monkeypatch.setattr(loading, "load_run_with_dataset", counting)
    app = open_review(run=RUN)
    app.switch_page("pages/explain.py").run()

    assert not app.exception and not app.error
    assert app.selectbox(key="explain_head").value
    assert len(loads) == 1


@pytest.fixture
def hostile_run(tmp_path, monkeypatch):
    """A run on five people, one of them named like an HTML tag."""
    dataset = load_dataset(write_hostile_graph(tmp_path / "hostile-data"))
    root = use_runs_folder(tmp_path / "runs", monkeypatch)
    return save_trained(root / "hostile", dataset, SHORT)


def test_hostile_names_are_shown_as_text_and_saved_exactly(hostile_run):
    app = open_review(run="hostile")

    assert shown_query(app) == query_line(HOSTILE, "knows")
    assert HOSTILE not in app.get("iframe")[0].proto.srcdoc
    give_verdict(app, 0, "plausible", HOSTILE_NOTE)
    (saved,) = read_reviews(hostile_run).reviews.values()
    assert saved.triple == (HOSTILE, "knows", "ben")
    assert saved.note == HOSTILE_NOTE

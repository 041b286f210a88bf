"""Review verdicts on disk, their summaries, and the predictions a reviewer steps through."""

import io
import json

import pandas as pd
import pytest

from gr_core import (
    PRESETS,
    Explainer,
    load_dataset,
    load_run,
    load_run_with_dataset,
    save_run,
    train,
)
from gr_core.errors import ConfigError
from gr_core.review import (
    NO_CATEGORY,
    REVIEWS_FILE,
    Review,
    read_reviews,
    record_review,
    review_summary,
    reviews_csv,
    reviews_table,
    select_predictions,
    top1_predictions,
)

HOSTILE_NOTE = (
    'It said "yes" & <b>no</b>\n<script>alert(1)</script>\r\nline\u2028separator, '
    "tab\there, back\\slash, \U0001f600, lone \ud800 surrogate"
)
HOSTILE_NAME = "<img src=x onerror=alert('1')>"


def review(head="usa", relation="embassy", tail="uk", verdict="plausible", **extra) -> Review:
    extra.setdefault("prediction", tail)
    return Review(head, relation, tail, verdict=verdict, **extra)


def without_time(found: Review) -> Review:
    return Review(**{**found.__dict__, "time": ""})


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, nations):
    """A three-epoch Nations run."""
    config = PRESETS["default"].replace(epochs=3, dim=8)
    folder = tmp_path_factory.mktemp("review") / "run"
    return save_run(folder, nations, config, train(nations, config))


def test_a_folder_without_reviews_has_none(tmp_path):
    log = read_reviews(tmp_path)
    assert log.reviews == {}
    assert log.skipped == 0


def test_verdicts_round_trip_with_a_time(tmp_path):
    given = [
        review(note="fits", top_category="shared head"),
        review("china", "treaties", "india", "implausible", prediction="usa"),
        review("uk", "embassy", "usa", "unsure"),
    ]
    recorded = [record_review(tmp_path, item) for item in given]

    log = read_reviews(tmp_path)
    assert list(log.reviews.values()) == recorded
    assert [without_time(found) for found in log.reviews.values()] == given
    assert all(item.time.endswith("+00:00") for item in recorded)
    assert log.skipped == 0


def test_last_verdict_wins_and_history_is_kept(tmp_path):
    record_review(tmp_path, review(verdict="plausible", note="first"))
    record_review(tmp_path, review("china", "treaties", "india"))
    record_review(tmp_path, review(verdict="implausible", note="second thoughts"))

    log = read_reviews(tmp_path)
    assert list(log.reviews) == [("usa", "embassy", "uk"), ("china", "treaties", "india")]
    assert log.reviews["usa", "embassy", "uk"].verdict == "implausible"
    assert log.reviews["usa", "embassy", "uk"].note == "second thoughts"
    lines = (tmp_path / REVIEWS_FILE).read_text(encoding="ascii").splitlines()
    assert [json.loads(line)["verdict"] for line in lines] == [
        "plausible",
        "plausible",
        "implausible",
    ]


def test_a_torn_last_line_is_skipped_and_the_next_verdict_survives(tmp_path):
    record_review(tmp_path, review(note="whole"))
    with open(tmp_path / REVIEWS_FILE, "ab") as stream:
        stream.write(b'{"head": "china", "relation": "treaties", "ta')  # a crash mid-write

    log = read_reviews(tmp_path)
    assert [found.note for found in log.reviews.values()] == ["whole"]
    assert log.skipped == 1

    record_review(tmp_path, review("china", "treaties", "india", "unsure"))
    log = read_reviews(tmp_path)
    assert list(log.reviews) == [("usa", "embassy", "uk"), ("china", "treaties", "india")]
    assert log.skipped == 1


def test_lines_that_are_no_review_are_skipped_and_counted(tmp_path):
    record_review(tmp_path, review())
    with open(tmp_path / REVIEWS_FILE, "ab") as stream:
        stream.write(b'[1, 2]\n{"head": "x"}\n\xff\xfe\n\n')
        stream.write(json.dumps({**review().__dict__, "verdict": "maybe"}).encode() + b"\n")

    log = read_reviews(tmp_path)
    assert len(log.reviews) == 1
    assert log.skipped == 4


def test_hostile_notes_and_names_round_trip(tmp_path):
    given = review(HOSTILE_NAME, 'say "hi"\n', "a\u2028b", note=HOSTILE_NOTE, prediction="<x>")
    record_review(tmp_path, given)
    record_review(tmp_path, review(note="after"))

    raw = (tmp_path / REVIEWS_FILE).read_bytes()
    assert raw.isascii()
    assert raw.count(b"\n") == 2  # no string split a record
    log = read_reviews(tmp_path)
    assert [without_time(found) for found in log.reviews.values()] == [given, review(note="after")]


def test_the_csv_export_reads_back_to_the_verdicts(tmp_path):
    given = [
        review(HOSTILE_NAME, "embassy", "uk", note=HOSTILE_NOTE.replace("\ud800", "")),
        review("china", "treaties", "india", "implausible", prediction="usa", note="=1+1"),
    ]
    text = reviews_csv(given)

    table = pd.read_csv(io.StringIO(text), keep_default_na=False, dtype=str)
    assert list(table.columns) == list(reviews_table(given).columns)
    assert list(table["head"]) == [HOSTILE_NAME, "china"]
    assert list(table["note"]) == [given[0].note, "'=1+1"]  # shown as text, not run
    assert list(table["verdict"]) == ["plausible", "implausible"]
    assert list(table["correct"]) == ["True", "False"]


def test_the_csv_export_neutralises_spreadsheet_formulas():
    notes = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "fine = ok", "'quoted"]
    given = [review(f"h{i}", "r", "t", note=note) for i, note in enumerate(notes)]
    table = pd.read_csv(io.StringIO(reviews_csv(given)), keep_default_na=False, dtype=str)
    assert list(table["note"]) == ["'" + note for note in notes[:4]] + notes[4:]


def test_a_verdict_outside_the_three_is_refused():
    with pytest.raises(ConfigError, match="verdict must be one of"):
        review(verdict="maybe")
    with pytest.raises(ConfigError, match="note"):
        review(note=None)


def test_summary_counts_match_a_hand_count():
    given = [
        review("a", "r1", "x", "plausible", top_category="shared head"),
        review("b", "r1", "x", "implausible", top_category="shared head"),
        review("c", "r2", "x", "plausible", top_category="head-tail link"),
        review("d", "r2", "x", "unsure", top_category=""),
        review("e", "r1", "x", "plausible", top_category="head-tail link"),
    ]
    summary = review_summary(given)

    overall = summary["overall"].loc["all"]
    assert overall[["plausible", "implausible", "unsure", "reviewed"]].tolist() == [3, 1, 1, 5]
    assert overall["share plausible"] == pytest.approx(3 / 5)
    by_relation = summary["relation"]
    assert list(by_relation.index) == ["r1", "r2"]
    assert by_relation["reviewed"].tolist() == [3, 2]
    assert by_relation["share plausible"].tolist() == pytest.approx([2 / 3, 1 / 2])
    by_category = summary["category"]
    assert list(by_category.index) == ["shared head", "head-tail link", NO_CATEGORY]
    assert by_category["share plausible"].tolist() == pytest.approx([1 / 2, 1.0, 0.0])


def test_summary_of_no_reviews_is_empty():
    summary = review_summary([])
    assert all(table.empty for table in summary.values())
    assert reviews_table([]).empty


def test_load_run_reads_a_run_folder_that_holds_reviews(run_folder):
    record_review(run_folder, review(note=HOSTILE_NOTE))
    assert (run_folder / REVIEWS_FILE).is_file()

    run = load_run(run_folder)
    assert run.config["dataset"]["name"] == "nations"
    assert len(read_reviews(run_folder).reviews) == 1


def test_batched_top1_matches_the_explainer_one_query_at_a_time(run_folder):
    run, dataset = load_run_with_dataset(run_folder)
    explainer = Explainer(run, dataset)
    table = top1_predictions(explainer, dataset.test, batch_size=64)

    assert list(table["row"]) == list(range(len(dataset.test)))
    for row in table.itertuples():
        (expected,) = explainer.predict(row.head, row.relation, k=1, filtered=True)
        assert row.prediction == expected.name
        assert row.probability == pytest.approx(expected.probability)
        assert row.correct == (expected.name == row.tail)
    assert 0 < table["correct"].sum() < len(table)  # the short run gets some right, not all


def test_selection_keeps_correct_wrong_and_one_relation(run_folder):
    run, dataset = load_run_with_dataset(run_folder)
    table = top1_predictions(Explainer(run, dataset), dataset.test)

    correct = select_predictions(table, "correct")
    wrong = select_predictions(table, "wrong")
    assert correct["correct"].all() and not wrong["correct"].any()
    assert sorted([*correct["row"], *wrong["row"]]) == list(table["row"])
    embassy = select_predictions(table, "wrong", "embassy")
    expected = [r.row for r in table.itertuples() if r.relation == "embassy" and not r.correct]
    assert list(embassy["row"]) == expected
    assert select_predictions(table).equals(table)
    with pytest.raises(ConfigError):
        select_predictions(table, "right")


def test_a_query_whose_every_tail_is_known_has_no_prediction(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    train_lines = "a\tr\ta\na\tr\tb\na\tr\tc\nb\ts\tc\n"
    (data / "train.txt").write_text(train_lines, encoding="utf-8")
    (data / "valid.txt").write_text("c\ts\ta\n", encoding="utf-8")
    (data / "test.txt").write_text("a\tr\tb\nb\ts\ta\n", encoding="utf-8")
    dataset = load_dataset(data)
    config = PRESETS["default"].replace(epochs=2, dim=4)
    folder = save_run(tmp_path / "run", dataset, config, train(dataset, config))

    table = top1_predictions(Explainer(*load_run_with_dataset(folder)), dataset.test)
    assert table["prediction"][0] is None
    assert table["probability"][0] == 0.0
    assert not table["correct"][0]
    assert table["prediction"][1] in ("a", "b")  # c is a known tail of (b, s, ?)

"""Saved evaluations: names, method sets, reading folders back, significance, constraints."""

import dataclasses
import json
import shutil

import pytest

from gr_core import PRESETS, save_run, train
from gr_core.errors import ConfigError
from gr_core.evaluation import read_rows, run_evaluation
from gr_core.evaluations import (
    EvaluationReadError,
    check_name,
    comparisons,
    constraint_label,
    constraint_order,
    default_name,
    evaluations_folder,
    list_evaluations,
    read_evaluation,
    settings_distance,
    significance,
    split_method,
    table_2_methods,
    to_outcomes,
)
from gr_core.roar import (
    DEFAULT_METHODS,
    Outcome,
    approximation,
    check_methods,
    randomization_test,
    summarise,
)

CONFIG = PRESETS["default"].replace(epochs=3, dim=8)
METHODS = ("GR-1", "GR-ALL", "NH-1", "NH-ALL")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory, nations):
    path = tmp_path_factory.mktemp("runs") / "nations"
    return save_run(path, nations, CONFIG, train(nations, CONFIG))


@pytest.fixture(scope="module")
def saved(run_path):
    """A finished evaluation of three queries in the run's evaluations folder."""
    out = evaluations_folder(run_path) / "three"
    run_evaluation(run_path, out, queries=3, methods=METHODS)
    return out


def outcomes_of(rows):
    """Build outcomes from rows field by field, without the module under test."""
    names = [field.name for field in dataclasses.fields(Outcome)]
    return [Outcome(**{name: row[name] for name in names}) for row in rows]


def test_names_are_checked_and_defaults_say_count_and_seed():
    for name in ("n20-seed0", "all-seed3", "a.b_c-1"):
        assert check_name(name) == name
    for name in ("", "a/b", "a\\b", "..", ".hidden", "a b", "x" * 101, "é"):
        with pytest.raises(ConfigError):
            check_name(name)
    assert default_name(20, 0) == "n20-seed0"
    assert default_name(None, 3) == "all-seed3"


def test_method_sets_of_the_papers_tables():
    softmax = table_2_methods("softmax")
    assert softmax[:4] == ("NH-1", "NH-3", "NH-5", "NH-10")
    assert softmax[-4:] == ("GR-1", "GR-3", "GR-5", "GR-10")
    assert len(softmax) == 12 and not any(m.startswith("CRIAGE") for m in softmax)
    assert check_methods(softmax) == softmax
    bce = table_2_methods("bce")
    assert len(bce) == 16 and bce[4:8] == ("CRIAGE-1", "CRIAGE-3", "CRIAGE-5", "CRIAGE-10")
    assert split_method("GR-O-3") == ("GR-O", "3")
    assert split_method("NH-ALL") == ("NH", "ALL")
    assert split_method("CRIAGE-10") == ("CRIAGE", "10")


def test_listing_keeps_visible_folders_with_settings(tmp_path):
    folder = evaluations_folder(tmp_path)
    for name in ("b", "a", ".staging", "no-settings"):
        (folder / name).mkdir(parents=True)
    for name in ("b", "a", ".staging"):
        (folder / name / "evaluation.json").write_text("{}")
    (folder / "file.txt").write_text("not a folder")

    assert [path.name for path in list_evaluations(tmp_path)] == ["a", "b"]
    assert list_evaluations(tmp_path / "elsewhere") == []


def test_a_finished_evaluation_reads_back_as_its_files_say(saved):
    evaluation = read_evaluation(saved)

    rows = read_rows(saved / "rows.csv")
    assert evaluation.complete and evaluation.finished == evaluation.total == 3
    assert evaluation.methods == list(METHODS) and evaluation.name == "three"
    # NH rows hold NaN estimates, which never compare equal: compare their text.
    assert repr(evaluation.rows) == repr(rows)
    assert evaluation.summary == json.loads((saved / "summary.json").read_text())
    assert evaluation.summary == summarise(outcomes_of(rows))
    assert repr(to_outcomes(rows)) == repr(outcomes_of(rows))
    fit = approximation(outcomes_of(rows))
    assert evaluation.approximation == pytest.approx(fit, nan_ok=True)


def test_a_stopped_evaluation_is_summarised_from_its_finished_queries(saved, tmp_path):
    folder = tmp_path / "stopped"
    shutil.copytree(saved, folder)
    lines = (folder / "rows.csv").read_text().splitlines(keepends=True)
    # The header, every row of query 0 and the first row of query 1, as a crash leaves it.
    (folder / "rows.csv").write_text("".join(lines[: 2 + len(METHODS)]))
    for name in ("summary.json", "approximation.json", "table.md"):
        (folder / name).unlink()

    evaluation = read_evaluation(folder)

    assert not evaluation.complete and evaluation.approximation is None
    assert evaluation.finished == 1 and evaluation.total == 3
    assert {row["query"] for row in evaluation.rows} == {0}
    first = [row for row in read_rows(saved / "rows.csv") if row["query"] == 0]
    assert evaluation.summary == summarise(outcomes_of(first))
    assert all(values["n"] == 1 for values in evaluation.summary.values())


def test_a_broken_folder_raises_a_named_error(tmp_path):
    (tmp_path / "evaluation.json").write_text("{not json")
    with pytest.raises(EvaluationReadError, match="cannot read"):
        read_evaluation(tmp_path)
    (tmp_path / "evaluation.json").write_text('{"run": "x", "methods": []}')
    with pytest.raises(EvaluationReadError, match="lacks seed, queries"):
        read_evaluation(tmp_path)


def test_comparisons_pair_each_method_with_the_baselines_of_its_size():
    methods = ["GR-1", "CRIAGE-1", "NH-1", "GR-O-1", "GR-3", "NH-ALL", "GR-ALL"]
    assert comparisons(methods) == [
        ("GR-1", "NH-1"),
        ("GR-1", "CRIAGE-1"),
        ("CRIAGE-1", "NH-1"),
        ("GR-O-1", "NH-1"),
        ("GR-O-1", "CRIAGE-1"),
        ("GR-ALL", "NH-ALL"),
    ]
    assert comparisons(DEFAULT_METHODS) == [
        ("GR-1", "NH-1"), ("GR-10", "NH-10"), ("GR-ALL", "NH-ALL"),
    ]  # fmt: skip


def test_significance_equals_randomization_tests_of_the_paired_rows(saved):
    rows = read_rows(saved / "rows.csv")

    tests = significance(to_outcomes(rows), trials=2_000)

    assert [(t["method"], t["baseline"]) for t in tests] == [
        ("GR-1", "NH-1"),
        ("GR-ALL", "NH-ALL"),
    ]
    for test in tests:
        by_method = {
            method: [row for row in rows if row["method"] == method]
            for method in (test["method"], test["baseline"])
        }
        first, second = by_method.values()
        assert [row["query"] for row in first] == [row["query"] for row in second]
        assert test["n"] == 3
        pd_p = randomization_test([r["pd"] for r in first], [r["pd"] for r in second], 2_000)
        tc_p = randomization_test([r["tc"] for r in first], [r["tc"] for r in second], 2_000)
        assert test["pd_p"] == pd_p and test["tc_p"] == tc_p
        assert 0 < test["pd_p"] <= 1 and 0 < test["tc_p"] <= 1


def test_constraints_in_words_order_and_distance():
    none, unit = {"constraint": "none"}, {"constraint": "unit-norm", "max_norm": 1.0}
    two = {"constraint": "max-norm", "max_norm": 2.0}
    half = {"constraint": "max-norm", "max_norm": 2.5}
    assert [constraint_label(t) for t in (none, unit, two, half)] == [
        "none", "unit norm", "max norm 2", "max norm 2.5",
    ]  # fmt: skip
    assert sorted((half, two, none, unit), key=constraint_order) == [none, unit, two, half]

    training = CONFIG.to_dict()
    assert settings_distance(training, training) == 0
    constrained = {**training, "constraint": "max-norm", "max_norm": 3.0}
    assert settings_distance(constrained, training) == 0
    assert settings_distance({**constrained, "dim": 16, "seed": 1}, training) == 2

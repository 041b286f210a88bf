"""Evaluation folders: files, resuming after an interruption, and mismatched settings."""

import csv
import json

import pytest
import torch

from gr_core import evaluation
from gr_core.cli import main
from gr_core.config import DEFAULT
from gr_core.errors import ConfigError
from gr_core.evaluation import (
    EvaluationMismatchError,
    choose_queries,
    read_rows,
    run_evaluation,
)
from gr_core.figures import approximation_figure
from gr_core.roar import summarise
from gr_core.runs import load_run_with_dataset, save_run
from gr_core.training import train

CONFIG = DEFAULT.replace(epochs=5, dim=16)
METHODS = ("GR-1", "NH-1", "GR-ALL")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory, nations):
    path = tmp_path_factory.mktemp("runs") / "nations"
    return save_run(path, nations, CONFIG, train(nations, CONFIG))


def test_an_evaluation_writes_every_file(run_path, tmp_path):
    out = tmp_path / "eval"
    summary = run_evaluation(run_path, out, queries=4, methods=METHODS, batch_queries=3)

    rows = read_rows(out / "rows.csv")
    assert len(rows) == 4 * len(METHODS)
    assert sorted({row["query"] for row in rows}) == [0, 1, 2, 3]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert list(summary) == list(METHODS)
    assert summary["GR-ALL"]["pd"] == pytest.approx(
        100 * sum(r["pd"] for r in rows if r["method"] == "GR-ALL") / 4
    )
    table = (out / "table.md").read_text()
    assert "| PD % |" in table and "GR-1 vs NH-1" in table
    with open(out / "scatter.csv") as stream:
        scatter = list(csv.DictReader(stream))
    assert len(scatter) == 4
    settings = json.loads((out / "evaluation.json").read_text())
    assert settings["methods"] == list(METHODS) and len(settings["queries"]) == 4


def test_an_interrupted_evaluation_resumes_without_redoing_queries(run_path, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    out, real_evaluate, batches = tmp_path / "eval", evaluation.evaluate, []

    def interrupted(run, dataset, explainer, queries, *args):
        if batches:
            raise KeyboardInterrupt
        batches.append(queries.clone())
        return real_evaluate(run, dataset, explainer, queries, *args)

    monkeypatch.setattr(evaluation, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(run_path, out, queries=5, methods=METHODS, batch_queries=2)
    assert len(read_rows(out / "rows.csv")) == 2 * len(METHODS)

    # Cut the file in the middle of a row, as a crash while writing would.
    text = (out / "rows.csv").read_text()
    (out / "rows.csv").write_text(text[: len(text) - 20])

    resumed = []

    def counting(run, dataset, explainer, queries, *args):
        resumed.append(len(queries))
        return real_evaluate(run, dataset, explainer, queries, *args)

    monkeypatch.setattr(evaluation, "evaluate", counting)
    run_evaluation(run_path, out, queries=5, methods=METHODS, batch_queries=2)
    rows = read_rows(out / "rows.csv")
    assert sum(resumed) == 4  # the cut query and the three never started
    assert len(rows) == 5 * len(METHODS)
    assert len({(r["query"], r["method"]) for r in rows}) == len(rows)  # no duplicates

    fresh = run_evaluation(run_path, tmp_path / "fresh", queries=5, methods=METHODS)
    assert summarise_file(out) == fresh


def summarise_file(out):
    return json.loads((out / "summary.json").read_text())


def test_other_settings_in_the_same_folder_are_refused(run_path, tmp_path):
    out = tmp_path / "eval"
    run_evaluation(run_path, out, queries=2, methods=("GR-1",))
    with pytest.raises(EvaluationMismatchError, match="other methods"):
        run_evaluation(run_path, out, queries=2, methods=("GR-1", "NH-1"))
    with pytest.raises(EvaluationMismatchError, match="queries"):
        run_evaluation(run_path, out, queries=3, methods=("GR-1",))


def test_query_choice(nations):
    assert torch.equal(choose_queries(nations, None, 0), nations.test[:, :2])
    assert torch.equal(choose_queries(nations, 10_000, 0), nations.test[:, :2])
    sample = choose_queries(nations, 7, seed=3)
    assert len(sample) == 7
    assert torch.equal(sample, choose_queries(nations, 7, seed=3))
    assert not torch.equal(sample, choose_queries(nations, 7, seed=4))
    test_pairs = {tuple(pair) for pair in nations.test[:, :2].tolist()}
    assert {tuple(pair) for pair in sample.tolist()} <= test_pairs
    with pytest.raises(ConfigError, match="at least 1"):
        choose_queries(nations, 0, 0)


def test_cli_evaluate(run_path, tmp_path, capsys):
    code = main(["evaluate", "--run", str(run_path), "--out", str(tmp_path / "e"),
                 "--queries", "2", "--methods", "GR-1", "NH-1", "--no-progress"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert f"GR-1       {summary['GR-1']['pd']:>6.1f}" in out
    assert main(["evaluate", "--run", str(run_path), "--out", str(tmp_path / "x"),
                 "--methods", "GR-x", "--no-progress"]) == 2  # fmt: skip
    assert "unknown method 'GR-x'" in capsys.readouterr().err


def test_summary_of_rows_matches_roar_summary(run_path, tmp_path):
    out = tmp_path / "eval"
    summary = run_evaluation(run_path, out, queries=3, methods=METHODS)
    outcomes = evaluation._outcomes(read_rows(out / "rows.csv"))
    assert summarise(outcomes) == summary


def test_approximation_figure_and_command(run_path, tmp_path, capsys):
    out = tmp_path / "eval"
    run_evaluation(run_path, out, queries=3, methods=("GR-1", "NH-1"))
    rows = [row for row in read_rows(out / "rows.csv") if row["method"] == "GR-1"]
    figure = approximation_figure([out, out], ["first", "second"])
    scatter = figure.data[0]
    assert list(scatter.x) == [row["predicted_after"] for row in rows]
    assert list(scatter.y) == [row["probability_after"] for row in rows]
    assert len(figure.data) == 4  # points and diagonal per panel
    fit = json.loads((out / "approximation.json").read_text())
    assert f"r = {fit['pearson']:.3f}" in figure.layout.annotations[0].text

    assert main(["figure", str(out), "--out", str(tmp_path / "f.html")]) == 0
    assert "GR: Pr after removal" in (tmp_path / "f.html").read_text()
    assert main(["figure", str(tmp_path), "--out", str(tmp_path / "g.html")]) == 2
    assert "no approximation.json" in capsys.readouterr().err


def test_progress_spans_every_batch(run_path, tmp_path):
    reports = []
    run_evaluation(run_path, tmp_path / "eval", queries=5, methods=METHODS, batch_queries=2,
                   on_step=lambda done, total: reports.append((done, total)))  # fmt: skip
    totals = {total for _, total in reports}
    assert len(totals) == 1  # one bar for the three batches
    done = [d for d, _ in reports]
    assert done == sorted(done) and done[-1] == totals.pop()
    num_train = len(load_run_with_dataset(run_path)[1].train)
    steps_per_stack = CONFIG.epochs * -(-num_train // CONFIG.batch_size)
    assert done[-1] == 3 * steps_per_stack  # batches of 2, 2 and 1 queries, one group each

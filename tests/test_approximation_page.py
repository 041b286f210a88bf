"""The Approximation page driven through app.py with AppTest.

Three tiny Nations runs (no constraint, unit norm, and no constraint at another
dimension) and one UMLS run are each evaluated with GR-1 on a few queries. The
page should draw one panel per weight constraint among the Nations runs, list
every Nations evaluation, and show the Pearson r that approximation.json holds
and that ``gr_core.roar.approximation`` gives again from the rows.
"""

import dataclasses
import json
import math
from functools import partial

import pytest
from streamlit.testing.v1 import AppTest

from gr_core import load_dataset
from gr_core.evaluation import read_rows, run_evaluation
from gr_core.roar import Outcome, approximation
from tests.pages import SHORT, open_page, save_trained, use_runs_folder

NATIONS_RUNS = {
    "c-none": SHORT,
    "c-unit": SHORT.replace(constraint="unit-norm"),
    "c-none-dim12": SHORT.replace(dim=12),
}
EVALUATION = "gr1"


def outcomes_of(rows):
    names = [field.name for field in dataclasses.fields(Outcome)]
    return [Outcome(**{name: row[name] for name in names}) for row in rows]


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory, nations):
    """Nations runs that differ in their constraint, and a UMLS run, all evaluated with GR-1."""
    root = tmp_path_factory.mktemp("approximation") / "runs"
    runs = [(name, nations, config) for name, config in NATIONS_RUNS.items()]
    runs.append(("umls", load_dataset("umls"), SHORT))
    for name, dataset, config in runs:
        path = save_trained(root / name, dataset, config)
        run_evaluation(path, path / "evaluations" / EVALUATION, queries=3, methods=("GR-1",))
    return root


@pytest.fixture
def runs_root(runs_folder, monkeypatch):
    return use_runs_folder(runs_folder, monkeypatch)


open_approximation = partial(open_page, "approximation")


def figure_spec(app: AppTest) -> dict:
    (chart,) = app.get("plotly_chart")
    return json.loads(chart.proto.spec)


def panel_titles(app: AppTest) -> list[str]:
    """Return the first line of each panel's title."""
    annotations = figure_spec(app)["layout"]["annotations"]
    return [annotation["text"].split("<br>")[0] for annotation in annotations]


def fits_table(app: AppTest):
    (table,) = [frame.value for frame in app.dataframe if "Pearson r" in frame.value.columns]
    return table


def test_one_panel_per_constraint_with_the_saved_fit(runs_root):
    app = open_approximation(run="c-none")

    assert not app.error and not app.warning
    assert panel_titles(app) == ["none: c-none/gr1", "unit norm: c-unit/gr1"]
    points = [trace for trace in figure_spec(app)["data"] if trace["name"] == "GR-1"]
    assert len(points) == 2

    table = fits_table(app)
    assert list(zip(table["run"], table["constraint"], table["shown"], strict=True)) == [
        ("c-none", "none", True),
        ("c-none-dim12", "none", False),
        ("c-unit", "unit norm", True),
    ]  # the UMLS run is trained on other data: not listed
    annotations = figure_spec(app)["layout"]["annotations"]
    for row in table.to_dict("records"):
        folder = runs_root / row["run"] / "evaluations" / EVALUATION
        saved = json.loads((folder / "approximation.json").read_text())
        again = approximation(outcomes_of(read_rows(folder / "rows.csv")))
        assert not math.isnan(again["pearson"])
        assert row["Pearson r"] == pytest.approx(saved["pearson"])
        assert row["Pearson r"] == pytest.approx(again["pearson"])
        assert row["Lipschitz"] == pytest.approx(again["lipschitz"])
        assert row["mean abs. error"] == pytest.approx(again["mean_abs_error"])
        if row["shown"]:
            assert any(f"r = {again['pearson']:.3f}" in note["text"] for note in annotations)


def test_the_selected_run_brings_its_own_evaluation(runs_root):
    app = open_approximation(run="c-none-dim12")

    assert panel_titles(app) == ["none: c-none-dim12/gr1", "unit norm: c-unit/gr1"]


def test_more_panels_can_be_chosen(runs_root):
    app = open_approximation(run="c-unit")
    assert panel_titles(app) == ["none: c-none/gr1", "unit norm: c-unit/gr1"]

    every = ["c-none/gr1", "c-none-dim12/gr1", "c-unit/gr1"]
    app.multiselect(key="approximation_shown").set_value(every).run()

    assert len(panel_titles(app)) == 3
    assert list(fits_table(app)["shown"]) == [True, True, True]


def test_without_a_gr_1_evaluation_the_page_points_to_evaluate(tmp_path, monkeypatch, nations):
    root = use_runs_folder(tmp_path / "runs", monkeypatch)
    path = save_trained(root / "plain", nations, SHORT)
    run_evaluation(path, path / "evaluations" / "nh", queries=2, methods=("NH-1",))

    app = open_approximation(run="plain")

    assert not app.error
    assert "includes GR-1" in app.info[0].value
    assert not app.get("plotly_chart")
    (link,) = app.get("page_link")
    assert link.proto.page == "evaluate" and link.proto.label == "Go to Evaluate"

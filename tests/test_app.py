"""Smoke tests of the dashboard: the Runs page driven through app.py with AppTest.

Each test points ``GR_RUNS_DIR`` at its own empty folder. Runs that a test only
needs to exist are written with gr_core directly (a two- or five-epoch Nations
model, trained once per session); the tests that click "Train" train for real.
"""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gr_core import PRESETS, load_dataset, save_run, train

APP = Path(__file__).resolve().parents[1] / "app.py"
# Training inside the app is well under a second on an idle machine; the margin is
# for shared CI machines where other jobs compete for the cores.
TRAIN_TIMEOUT = 300


@pytest.fixture(scope="session")
def nations():
    return load_dataset("nations")


@pytest.fixture(scope="session")
def trained(nations):
    """Two short trainings with different results: {"alpha": (config, result), "beta": ...}."""
    runs = {}
    for name, epochs in (("alpha", 2), ("beta", 5)):
        config = PRESETS["default"].replace(epochs=epochs)
        runs[name] = (config, train(nations, config))
    return runs


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("GR_RUNS_DIR", str(root))
    return root


def write_run(root: Path, name: str, nations, trained, training: str | None = None) -> dict:
    """Save the session's ``training`` (default: ``name``) as run ``name``; return its metrics."""
    config, result = trained[training or name]
    save_run(root / name, nations, config, result)
    return json.loads((root / name / "metrics.json").read_text())


def start_app(query_run: str | None = None) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    if query_run is not None:
        app.query_params["run"] = query_run
    return app.run()


def table_row(app: AppTest, name: str):
    return app.dataframe[0].value.set_index("run").loc[name]


def folder_listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def fill_train_form(app: AppTest, *, name: str, model: str = "distmult") -> AppTest:
    app.selectbox(key="dataset").set_value("nations")
    app.selectbox(key="model").set_value(model)
    app.selectbox(key="preset").set_value("default")
    app.text_input(key="name").input(name)
    return app.button(key="train_submit").click().run(timeout=TRAIN_TIMEOUT)


def test_welcome_button_trains_and_lists_the_default_run(runs_root):
    app = start_app()
    assert not app.exception
    button = app.button(key="train_default")
    assert button.label == "Train the default Nations model (DistMult)"
    assert len(app.dataframe) == 0

    button.click().run(timeout=TRAIN_TIMEOUT)

    assert not app.exception
    assert not app.error
    assert (runs_root / "nations-distmult-default" / "config.json").is_file()
    assert table_row(app, "nations-distmult-default")["model"] == "distmult"
    assert app.query_params["run"] == "nations-distmult-default"
    assert [b for b in app.button if b.key == "train_default"] == []


def test_table_shows_each_run_with_its_test_mrr(runs_root, nations, trained):
    metrics = {name: write_run(runs_root, name, nations, trained) for name in ("alpha", "beta")}

    app = start_app()

    assert not app.exception
    assert list(app.dataframe[0].value["run"]) == ["alpha", "beta"]
    for name, values in metrics.items():
        row = table_row(app, name)
        assert row["test MRR"] == pytest.approx(values["test"]["mrr"], abs=1e-12)
        assert row["test Hits@10"] == pytest.approx(values["test"]["hits@10"], abs=1e-12)
        assert row["data set"] == "nations"
        assert row["problem"] == ""


def test_run_query_parameter_selects_the_run_and_its_metrics(runs_root, nations, trained):
    alpha = write_run(runs_root, "alpha", nations, trained)
    beta = write_run(runs_root, "beta", nations, trained)
    # The test only means something if the two runs show different numbers.
    assert f"{alpha['test']['mrr']:.3f}" != f"{beta['test']['mrr']:.3f}"

    app = start_app(query_run="beta")

    assert not app.exception
    assert app.selectbox(key="selected_run").value == "beta"
    shown = {metric.label: metric.value for metric in app.metric}
    assert shown["Test MRR"] == f"{beta['test']['mrr']:.3f}"
    assert shown["Valid Hits@1"] == f"{beta['valid']['hits@1']:.3f}"
    assert len(app.get("plotly_chart")) == 1


def test_choosing_a_run_updates_the_link(runs_root, nations, trained):
    write_run(runs_root, "alpha", nations, trained)
    beta = write_run(runs_root, "beta", nations, trained)

    app = start_app()
    assert app.query_params["run"] == "alpha"
    app.selectbox(key="selected_run").set_value("beta").run()

    assert not app.exception
    assert app.query_params["run"] == "beta"
    shown = {metric.label: metric.value for metric in app.metric}
    assert shown["Test MRR"] == f"{beta['test']['mrr']:.3f}"


def test_unknown_run_in_the_link_warns_and_shows_another(runs_root, nations, trained):
    write_run(runs_root, "alpha", nations, trained)

    app = start_app(query_run="no-such-run")

    assert not app.exception
    assert app.warning
    assert app.selectbox(key="selected_run").value == "alpha"


def test_form_trains_a_named_run(runs_root):
    app = start_app()

    fill_train_form(app, name="nations_complex-1.0", model="complex")

    assert not app.exception
    assert not app.error
    config = json.loads((runs_root / "nations_complex-1.0" / "config.json").read_text())
    assert config["training"]["model"] == "complex"
    assert table_row(app, "nations_complex-1.0")["model"] == "complex"
    assert app.selectbox(key="selected_run").value == "nations_complex-1.0"


@pytest.mark.parametrize("name", ["bad name", "../outside", "a/b", ".hidden", "x" * 101, "alpha"])
def test_bad_or_taken_run_name_shows_an_error_and_writes_nothing(runs_root, nations, trained, name):
    write_run(runs_root, "alpha", nations, trained)
    before = folder_listing(runs_root.parent)
    app = start_app()

    fill_train_form(app, name=name)

    assert not app.exception
    assert len(app.error) == 1
    assert folder_listing(runs_root.parent) == before


def test_corrupted_run_folders_are_listed_with_their_error(runs_root, nations, trained):
    metrics = write_run(runs_root, "alpha", nations, trained)
    write_run(runs_root, "garbage", nations, trained, training="beta")
    (runs_root / "garbage" / "config.json").write_text("{ this is not json")
    (runs_root / "empty").mkdir()

    app = start_app()

    assert not app.exception
    assert "not valid JSON" in table_row(app, "garbage")["problem"]
    assert "missing" in table_row(app, "empty")["problem"]
    assert table_row(app, "alpha")["test MRR"] == pytest.approx(metrics["test"]["mrr"])
    assert app.selectbox(key="selected_run").value == "alpha"

    app.query_params["run"] = "garbage"
    app.run()
    assert not app.exception
    assert "not valid JSON" in app.error[0].value


def test_unwritable_runs_folder_shows_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the runs folder should be")
    monkeypatch.setenv("GR_RUNS_DIR", str(blocker / "runs"))
    app = start_app()

    app.button(key="train_default").click().run(timeout=TRAIN_TIMEOUT)

    assert not app.exception
    assert len(app.error) == 1
    assert blocker.read_text() == "a file where the runs folder should be"

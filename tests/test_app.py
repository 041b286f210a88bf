"""Smoke tests of the dashboard: the Runs page driven through app.py with AppTest.

Each test points ``GR_RUNS_DIR`` at its own empty folder. Runs that a test only
needs to exist are written with gr_core directly (a two- or five-epoch Nations
model, trained once per session); the tests that click "Train" train for real,
on Nations or on a five-person graph given as a folder or as uploaded files.
"""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gr_core import PRESETS, load_dataset, save_run, train
from tests.test_external import write_fb_style

APP = Path(__file__).resolve().parents[1] / "app.py"
# Training inside the app is well under a second on an idle machine; the margin is
# for shared CI machines where other jobs compete for the cores.
TRAIN_TIMEOUT = 300


# A five-person graph: every entity and relation of valid and test occurs in train.
PEOPLE = ("ann", "ben", "cas", "dee", "eve")
SMALL_GRAPH = {
    "train.txt": "".join(
        f"{PEOPLE[i]}\t{relation}\t{PEOPLE[(i + step) % 5]}\n"
        for i in range(5)
        for step, relation in ((1, "likes"), (2, "knows"))
    ).encode(),
    "valid.txt": b"ann\tknows\tben\n",
    "test.txt": b"ben\tlikes\tdee\n",
}


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


# ---- data from a folder or from uploaded files -------------------------------------


def upload_and_train(app: AppTest, name: str, files: dict[str, bytes]) -> AppTest:
    """Choose "Upload files", give the data set ``name`` and ``files``, press Train."""
    app.segmented_control(key="data_source").set_value("upload").run()
    app.text_input(key="upload_name").input(name)
    for file_name, content in files.items():
        uploader = app.file_uploader(key=f"upload_{file_name.split('.')[0]}")
        uploader.set_value((file_name, content, "text/plain"))
    return app.button(key="train_submit").click().run(timeout=TRAIN_TIMEOUT)


def test_uploaded_files_are_kept_and_trained_on(runs_root):
    app = start_app()

    upload_and_train(app, "five", SMALL_GRAPH)

    assert not app.exception
    assert not app.error
    kept = runs_root.parent / "uploads" / "five"
    assert {path.name: path.read_bytes() for path in kept.iterdir()} == SMALL_GRAPH
    config = json.loads((runs_root / "five-distmult-default" / "config.json").read_text())
    assert config["dataset"]["source"] == str(kept)
    assert app.selectbox(key="selected_run").value == "five-distmult-default"


@pytest.mark.parametrize(
    "problem, files",
    [
        ("two columns", {**SMALL_GRAPH, "train.txt": b"ann\tben\nben\tcas\n"}),
        ("test file missing", {k: v for k, v in SMALL_GRAPH.items() if k != "test.txt"}),
        ("not UTF-8", {**SMALL_GRAPH, "valid.txt": b"ann\tknows\t\xff\xfe\xfa\n"}),
    ],
)
def test_bad_upload_shows_an_error_and_keeps_nothing(runs_root, problem, files):
    before = folder_listing(runs_root.parent)
    app = start_app()

    upload_and_train(app, "broken", files)

    assert not app.exception
    assert len(app.error) == 1, problem
    assert folder_listing(runs_root.parent) == before


def test_a_data_set_folder_trains_a_run(runs_root, tmp_path):
    folder = tmp_path / "five"
    folder.mkdir()
    for file_name, content in SMALL_GRAPH.items():
        (folder / file_name).write_bytes(content)
    app = start_app()

    app.segmented_control(key="data_source").set_value("folder").run()
    app.text_input(key="dataset_folder").input(str(folder))
    app.button(key="train_submit").click().run(timeout=TRAIN_TIMEOUT)

    assert not app.exception
    assert not app.error
    config = json.loads((runs_root / "five-distmult-default" / "config.json").read_text())
    assert config["dataset"]["source"] == str(folder)


def test_a_missing_folder_shows_an_error(runs_root, tmp_path):
    app = start_app()

    app.segmented_control(key="data_source").set_value("folder").run()
    app.text_input(key="dataset_folder").input(str(tmp_path / "nowhere"))
    app.button(key="train_submit").click().run(timeout=TRAIN_TIMEOUT)

    assert not app.exception
    assert len(app.error) == 1
    assert folder_listing(runs_root) == []


def test_main_settings_override_the_preset_and_validation_is_recorded(runs_root):
    app = start_app()
    app.number_input(key="epochs").set_value(4)
    app.number_input(key="dim").set_value(8)
    app.number_input(key="learning_rate").set_value(0.05)

    fill_train_form(app, name="custom")

    assert not app.exception
    assert not app.error
    settings = json.loads((runs_root / "custom" / "config.json").read_text())["training"]
    assert (settings["epochs"], settings["dim"], settings["learning_rate"]) == (4, 8, 0.05)
    history = (runs_root / "custom" / "history.jsonl").read_text().splitlines()
    assert all("valid_mrr" in json.loads(line) for line in history)


# ---- deleting a run ---------------------------------------------------------------------


def test_delete_needs_a_confirmation(runs_root, nations, trained):
    write_run(runs_root, "alpha", nations, trained)
    write_run(runs_root, "beta", nations, trained)
    app = start_app(query_run="beta")

    app.button(key="delete_run").click().run()
    assert (runs_root / "beta").is_dir()
    assert "beta" in app.warning[0].value
    app.button(key="delete_cancel").click().run()
    assert (runs_root / "beta").is_dir()
    assert not app.warning
    assert [b for b in app.button if b.key == "delete_confirm"] == []

    app.button(key="delete_run").click().run()
    app.button(key="delete_confirm").click().run()

    assert not app.exception
    assert not app.warning
    assert not (runs_root / "beta").exists()
    assert (runs_root / "alpha").is_dir()
    assert list(app.dataframe[0].value["run"]) == ["alpha"]
    assert app.query_params["run"] == "alpha"
    assert app.selectbox(key="selected_run").options == ["alpha"]


def test_external_data_sets_are_offered_when_gr_data_dir_names_them(
    runs_root, tmp_path, monkeypatch
):
    monkeypatch.delenv("GR_DATA_DIR", raising=False)
    assert start_app().selectbox(key="dataset").options == ["nations", "kinships", "umls"]

    monkeypatch.setenv("GR_DATA_DIR", str(write_fb_style(tmp_path / "data")))
    app = start_app()
    assert app.selectbox(key="dataset").options[-1] == "fb15k-237"
    app.selectbox(key="dataset").set_value("fb15k-237")
    app.text_input(key="name").input("fb")
    app = app.button(key="train_submit").click().run(timeout=TRAIN_TIMEOUT)

    assert not app.exception and not app.error
    config = json.loads((runs_root / "fb" / "config.json").read_text())
    assert config["dataset"]["source"] == "fb15k-237"

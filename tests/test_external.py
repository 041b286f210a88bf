"""External data sets: finding their folder, the errors that say how to provide them, loading."""

import json
import warnings
from pathlib import Path

import pytest

from gr_core.cli import main
from gr_core.config import DEFAULT
from gr_core.data import DatasetWarning, available_datasets, load_dataset
from gr_core.errors import ConfigError, DatasetError, RunFormatError, UnknownNameError
from gr_core.external import DATA_DIR_VARIABLE, EXTERNAL_DATASETS, resolve_data_dir
from gr_core.runs import load_run_with_dataset, save_run
from gr_core.training import train

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

TRAIN = [
    ("/m/paris", "/location/capital_of", "/m/france"),
    ("/m/berlin", "/location/capital_of", "/m/germany"),
    ("/m/france", "/location/borders", "/m/germany"),
    ("/m/germany", "/location/borders", "/m/france"),
    ("/m/rome", "/location/capital_of", "/m/italy"),
]
VALID = [("/m/italy", "/location/borders", "/m/france")]
TEST = [("/m/paris", "/location/borders", "/m/germany")]
ENTITY_NAMES = {"/m/paris": "Paris", "/m/france": "France", "/m/germany": "Germany"}


def shared_data_dir(name: str) -> Path:
    """Return the shared data folder that holds ``name``, or skip the test saying why."""
    if not (SHARED_DATASETS / name).is_dir():
        pytest.skip(
            f"{SHARED_DATASETS / name} is absent: the licensed benchmark copies live beside "
            "the checkout in shared/datasets/ (see its README), not in the project"
        )
    return SHARED_DATASETS


def write_fb_style(data_dir: Path, train=TRAIN, skip=()) -> Path:
    """Write a tiny FB15k-237-style folder as ``data_dir/fb15k-237``; return ``data_dir``."""
    folder = data_dir / "fb15k-237"
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "train.txt": train,
        "valid.txt": VALID,
        "test.txt": TEST,
        "entity_names.tsv": list(ENTITY_NAMES.items()),
        "relation_names.tsv": [("/location/borders", "borders")],
    }
    for file_name, rows in files.items():
        if file_name not in skip:
            text = "".join("\t".join(row) + "\n" for row in rows)
            (folder / file_name).write_text(text, encoding="utf-8")
    return data_dir


@pytest.fixture
def no_environment(monkeypatch):
    """Run without GR_DATA_DIR, whatever the machine sets."""
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)


# ---- where the data folder comes from -----------------------------------------------------


def test_flag_wins_over_the_environment(tmp_path, monkeypatch):
    from_environment = write_fb_style(tmp_path / "env")
    given = write_fb_style(tmp_path / "flag", train=TRAIN[:4])
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(from_environment))

    assert resolve_data_dir() == (from_environment, f"from {DATA_DIR_VARIABLE}")
    assert resolve_data_dir(given) == (given, "given")
    assert len(load_dataset("fb15k-237").train) == 5
    with pytest.warns(DatasetWarning):  # rome and italy are gone: valid is dropped
        assert len(load_dataset("fb15k-237", data_dir=given).train) == 4


def test_cli_train_takes_the_flag_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(write_fb_style(tmp_path / "env")))
    given = write_fb_style(
        tmp_path / "flag", train=[*TRAIN, ("/m/rome", "/location/borders", "/m/paris")]
    )
    out = tmp_path / "run"
    code = main([
        "train", "--dataset", "fb15k-237", "--data-dir", str(given), "--epochs", "1",
        "--dim", "4", "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    recorded = json.loads((out / "config.json").read_text())["dataset"]
    assert recorded["source"] == "fb15k-237" and recorded["train"] == 6
    assert recorded["content_hash"] == load_dataset("fb15k-237", data_dir=given).content_hash


def test_cli_datasets_lists_the_external_ones_found_and_the_missing(tmp_path, capsys):
    data_dir = write_fb_style(tmp_path / "data")
    assert main(["datasets", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("fb15k-237"))
    assert row.split() == ["fb15k-237", "6", "2", "5", "1", "1", "0"]
    assert "nations" in out and "1,592" in out
    assert f"wn18rr is not available in {data_dir}" in out
    assert f"ml-100k is not available in {data_dir}" in out
    assert "u.data" in out and "grouplens" in out


def test_cli_datasets_without_a_data_folder_says_how_to_name_one(no_environment, capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "--data-dir DIR or GR_DATA_DIR" in out
    assert "fb15k-237" in out and "umls" in out


def test_available_datasets_adds_only_complete_external_folders(tmp_path, no_environment):
    data_dir = write_fb_style(tmp_path / "data")
    (data_dir / "wn18rr").mkdir()  # empty: not offered
    assert available_datasets() == ("nations", "kinships", "umls")
    assert available_datasets(data_dir) == ("nations", "kinships", "umls", "fb15k-237")


# ---- errors that say where to put which files ---------------------------------------------


@pytest.mark.parametrize("name", list(EXTERNAL_DATASETS))
def test_without_a_data_folder_the_error_names_the_flag_the_variable_and_the_files(
    name, no_environment
):
    with pytest.raises(DatasetError) as caught:
        load_dataset(name)
    message = str(caught.value)
    assert "--data-dir DIR" in message and f"{DATA_DIR_VARIABLE}=DIR" in message
    assert f"DIR/{name}/" in message
    for file_name in EXTERNAL_DATASETS[name].required:
        assert file_name in message
    assert "Source:" in message and EXTERNAL_DATASETS[name].source in message


def test_a_data_folder_that_does_not_exist_is_named_with_its_origin(tmp_path, monkeypatch):
    absent = tmp_path / "nowhere"
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(absent))
    with pytest.raises(DatasetError) as caught:
        load_dataset("wn18rr")
    message = str(caught.value)
    assert f"'{absent}' (named by {DATA_DIR_VARIABLE}) does not exist" in message
    assert f"{absent}/wn18rr/" in message and "WN18RR.tar.gz" in message


def test_a_missing_data_set_folder_says_what_to_put_there(tmp_path, no_environment):
    with pytest.raises(DatasetError) as caught:
        load_dataset("ml-100k", data_dir=tmp_path)
    message = str(caught.value)
    assert f"'{tmp_path}' has no ml-100k/ folder" in message
    assert f"Put these files in {tmp_path}/ml-100k/" in message
    assert "u.data" in message and "u.item" in message and "ml-100k.zip" in message


@pytest.mark.parametrize("missing", EXTERNAL_DATASETS["fb15k-237"].required)
def test_a_missing_file_is_named(tmp_path, no_environment, missing):
    data_dir = write_fb_style(tmp_path, skip=(missing,))
    with pytest.raises(DatasetError) as caught:
        load_dataset("fb15k-237", data_dir=data_dir)
    message = str(caught.value)
    assert f"'{data_dir / 'fb15k-237'}' lacks {missing}." in message
    assert "KG-BERT" in message


def test_external_names_are_suggested_for_a_near_miss():
    with pytest.raises(UnknownNameError) as caught:
        load_dataset("fb15k")
    assert "fb15k-237" in caught.value.close_matches


def test_a_seed_is_refused_for_a_data_set_that_comes_split(tmp_path):
    with pytest.raises(ConfigError, match="split_seed applies only to MovieLens"):
        load_dataset("fb15k-237", data_dir=write_fb_style(tmp_path), split_seed=1)


# ---- runs reload through the same resolution ---------------------------------------------


def test_a_run_on_an_external_data_set_reloads_through_the_variable(tmp_path, monkeypatch):
    data_dir = write_fb_style(tmp_path / "data")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(data_dir))
    dataset = load_dataset("fb15k-237")
    config = DEFAULT.replace(epochs=1, dim=4)
    path = save_run(tmp_path / "run", dataset, config, train(dataset, config))
    assert json.loads((path / "config.json").read_text())["dataset"]["source"] == "fb15k-237"

    run, again = load_run_with_dataset(path)
    assert again.content_hash == dataset.content_hash
    assert again.entity_labels == dataset.entity_labels
    assert "France" in again.entity_labels

    # Moved elsewhere: the variable follows the data; the old one no longer finds it.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (data_dir / "fb15k-237").rename(moved / "fb15k-237")
    with pytest.raises(RunFormatError, match=f"named by {DATA_DIR_VARIABLE}.*no fb15k-237/"):
        load_run_with_dataset(path)
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(moved))
    assert load_run_with_dataset(path)[1].content_hash == dataset.content_hash

    monkeypatch.delenv(DATA_DIR_VARIABLE)
    with pytest.raises(RunFormatError, match=f"set {DATA_DIR_VARIABLE}=DIR"):
        load_run_with_dataset(path)


def test_a_run_sees_that_the_external_data_changed(tmp_path, monkeypatch):
    data_dir = write_fb_style(tmp_path / "data")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(data_dir))
    dataset = load_dataset("fb15k-237")
    config = DEFAULT.replace(epochs=1, dim=4)
    path = save_run(tmp_path / "run", dataset, config, train(dataset, config))

    names = data_dir / "fb15k-237" / "entity_names.tsv"
    names.write_text(names.read_text().replace("Paris", "Lutetia"))
    with pytest.raises(RunFormatError, match="the files changed"):
        load_run_with_dataset(path)


# ---- the shared copies of the real data sets ---------------------------------------------


def _split_rows(folder: Path, split: str) -> list[list[str]]:
    """Return a split file's rows as lists of fields, read without gr_core."""
    lines = (folder / f"{split}.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line]


def _independent_counts(folder: Path) -> dict:
    """Count what loading should give, by plain Python over the files."""
    rows = {split: _split_rows(folder, split) for split in ("train", "valid", "test")}
    entities = {row[0] for row in rows["train"]} | {row[2] for row in rows["train"]}
    relations = {row[1] for row in rows["train"]}
    kept = {
        split: sum(h in entities and t in entities and r in relations for h, r, t in rows[split])
        for split in ("valid", "test")
    }
    everywhere = {field for split in rows.values() for row in split for field in (row[0], row[2])}
    return {
        "rows": {split: len(found) for split, found in rows.items()},
        "train_entities": len(entities),
        "all_entities": len(everywhere),
        "relations": len(relations),
        "kept": kept,
    }


@pytest.mark.slow
def test_fb15k_237_loads_by_name_with_readable_names():
    data_dir = shared_data_dir("fb15k-237")
    folder = data_dir / "fb15k-237"
    with pytest.warns(DatasetWarning, match="dropped"):
        dataset = load_dataset("fb15k-237", data_dir=data_dir)
    counts = _independent_counts(folder)

    # The README's counts, and the same numbers counted without gr_core.
    assert counts["rows"] == {"train": 272_115, "valid": 17_535, "test": 20_466}
    assert counts["all_entities"] == 14_541 and counts["relations"] == 237
    assert (dataset.name, dataset.source) == ("fb15k-237", "fb15k-237")
    assert len(dataset.train) == 272_115
    assert dataset.num_entities == counts["train_entities"] == 14_505
    assert dataset.num_relations == 237
    assert {"valid": len(dataset.valid), "test": len(dataset.test)} == counts["kept"]
    assert dataset.report.dropped == {"valid": 9, "test": 28}

    # Every MID maps to its name in entity_names.tsv; Schleswig-Holstein as an example.
    names = dict(
        line.split("\t")[:2] for line in (folder / "entity_names.tsv").read_text().splitlines()
    )
    labels = dict(zip(dataset.entities, dataset.entity_labels, strict=True))
    assert labels["/m/06rf7"] == "Schleswig-Holstein"
    assert dataset.entity_id("Schleswig-Holstein") == dataset.entities.index("/m/06rf7")
    assert all(labels[mid] == names.get(mid, mid) for mid in dataset.entities)
    assert sum(mid in names for mid in dataset.entities) > 0.99 * dataset.num_entities
    relation = "/music/artist/origin"
    assert dataset.relation_labels[dataset.relation_id(relation)] == "music artist origin"

    # By name and by path: the same data, so the same hash.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        assert load_dataset(folder).content_hash == dataset.content_hash


def test_wn18rr_loads_by_name_without_its_unseen_entities():
    data_dir = shared_data_dir("wn18rr")
    folder = data_dir / "wn18rr"
    with pytest.warns(DatasetWarning, match="dropped"):
        dataset = load_dataset("wn18rr", data_dir=data_dir)
    counts = _independent_counts(folder)

    assert counts["rows"] == {"train": 86_835, "valid": 3_034, "test": 3_134}
    assert counts["all_entities"] == 40_943 and counts["relations"] == 11
    assert len(dataset.train) == 86_835 and dataset.num_relations == 11
    assert dataset.num_entities == counts["train_entities"] < 40_943
    assert {"valid": len(dataset.valid), "test": len(dataset.test)} == counts["kept"]
    dropped = dataset.report.dropped
    assert len(dataset.valid) + dropped["valid"] == 3_034
    assert len(dataset.test) + dropped["test"] == 3_134
    labels = zip(dataset.entities, dataset.entity_labels, strict=True)
    assert sum(key != label for key, label in labels) > 0.99 * dataset.num_entities

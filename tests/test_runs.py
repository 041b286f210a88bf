"""Run folders: round trip, atomic writes and clear errors on damaged runs."""

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from gr_core import runs
from gr_core.config import DEFAULT
from gr_core.data import builtin_dataset_path, load_dataset
from gr_core.errors import ConfigError, RunFormatError
from gr_core.ledger import Ledger
from gr_core.ledger_file import MappedLedger
from gr_core.runs import RunExistsError, delete_run, load_run, save_run
from gr_core.training import train

CONFIG = DEFAULT.replace(epochs=2, dim=8)


@pytest.fixture(scope="module")
def nations():
    return load_dataset("nations")


@pytest.fixture(scope="module")
def trained(nations):
    return train(nations, CONFIG)


@pytest.fixture
def run_path(tmp_path, nations, trained):
    return save_run(tmp_path / "run", nations, CONFIG, trained)


def test_round_trip_keeps_every_tensor_and_record(run_path, nations, trained):
    run = load_run(run_path, dataset=nations)

    assert torch.equal(run.model.entity, trained.model.entity)
    assert torch.equal(run.model.relation, trained.model.relation)
    for role, table in trained.ledger.tables().items():
        assert torch.equal(run.ledger.to_memory().tables()[role], table)
    assert run.metrics == trained.metrics
    assert run.history == trained.history
    assert run.entities == list(nations.entities)
    assert run.relations == list(nations.relations)
    assert run.train_config == CONFIG
    assert run.dataset_hash == nations.content_hash


def test_files_follow_the_documented_format(run_path, nations):
    model = load_file(run_path / "model.safetensors")
    ledger = load_file(run_path / "ledger.safetensors")
    assert set(model) == {"entity", "relation"}
    assert model["entity"].shape == (nations.num_entities, 8)
    assert model["relation"].shape == (nations.num_relations, 8)
    assert set(ledger) == {"head", "relation", "tail"}
    assert all(t.shape == (len(nations.train), 8) for t in ledger.values())

    metrics = json.loads((run_path / "metrics.json").read_text())
    assert set(metrics) == {"valid", "test"}
    assert set(metrics["test"]) == {"mrr", "hits@1", "hits@3", "hits@10"}

    config = json.loads((run_path / "config.json").read_text())
    assert config["format_version"] == runs.FORMAT_VERSION
    assert config["dataset"]["content_hash"] == nations.content_hash

    lines = (run_path / "entities.tsv").read_text().splitlines()
    assert lines[0] == "id\tname\tlabel"
    assert [line.split("\t")[1] for line in lines[1:]] == list(nations.entities)
    history = (run_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in history] == [1, 2]


def test_complex_keeps_real_then_imaginary_halves(tmp_path, nations):
    config = CONFIG.replace(model="complex", epochs=1)
    result = train(nations, config)
    path = save_run(tmp_path / "complex", nations, config, result)
    entity = load_file(path / "model.safetensors")["entity"]
    assert entity.shape == (nations.num_entities, 16)
    # The score from the stored halves equals the complex-number formula.
    relation = load_file(path / "model.safetensors")["relation"]
    head, rel, tail = nations.train[0]
    as_complex = torch.complex(entity[:, :8], entity[:, 8:])
    rel_complex = torch.complex(relation[:, :8], relation[:, 8:])
    expected = (as_complex[head] * rel_complex[rel] * as_complex[tail].conj()).sum().real
    stored = load_run(path).model.score_triples(nations.train[:1])
    assert torch.allclose(stored, expected.reshape(1), atol=1e-6)


def test_ledger_off_writes_no_ledger(tmp_path, nations):
    config = CONFIG.replace(ledger="off", epochs=1)
    path = save_run(tmp_path / "plain", nations, config, train(nations, config))
    assert not (path / "ledger.safetensors").exists()
    assert load_run(path).ledger is None


def test_existing_run_is_kept_unless_overwrite(run_path, nations, trained):
    before = (run_path / "model.safetensors").read_bytes()
    with pytest.raises(RunExistsError, match="already exists"):
        save_run(run_path, nations, CONFIG, trained)
    assert (run_path / "model.safetensors").read_bytes() == before

    other = train(nations, CONFIG.replace(seed=7))
    save_run(run_path, nations, CONFIG.replace(seed=7), other, overwrite=True)
    assert load_run(run_path).train_config.seed == 7
    assert sorted(p.name for p in run_path.parent.iterdir()) == ["run"]


def test_failed_write_leaves_nothing_behind(tmp_path, nations, trained, monkeypatch):
    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_run(tmp_path / "run", nations, CONFIG, trained)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_run(run_path, nations, trained, monkeypatch):
    before = (run_path / "ledger.safetensors").read_bytes()
    monkeypatch.setattr(runs, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        save_run(run_path, nations, CONFIG, trained, overwrite=True)
    assert (run_path / "ledger.safetensors").read_bytes() == before
    assert sorted(p.name for p in run_path.parent.iterdir()) == ["run"]


def test_missing_folder_and_files_are_named(tmp_path, run_path):
    with pytest.raises(RunFormatError, match="does not exist"):
        load_run(tmp_path / "nothing")
    (run_path / "metrics.json").unlink()
    with pytest.raises(RunFormatError, match="missing metrics.json"):
        load_run(run_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ('{"format_version": 99}', "format version 99"),
        ('{"format_version": 1, "dataset": {}}', "incomplete or invalid"),
    ],
)
def test_damaged_config_is_reported(run_path, text, message):
    (run_path / "config.json").write_text(text)
    with pytest.raises(RunFormatError, match=message):
        load_run(run_path)


@pytest.mark.parametrize("text", ['{"valid": {}}', "[]", '{"valid": {"mrr": "x"}, "test": {}}'])
def test_incomplete_metrics_are_reported(run_path, text):
    (run_path / "metrics.json").write_text(text)
    with pytest.raises(RunFormatError, match="metrics.json lacks valid values"):
        load_run(run_path)


def test_wrong_tensor_shape_is_reported(run_path):
    tables = load_file(run_path / "model.safetensors")
    tables["entity"] = tables["entity"][:-1].contiguous()
    save_file(tables, run_path / "model.safetensors")
    with pytest.raises(RunFormatError, match=r"'entity' has shape \(13, 8\), expected \(14, 8\)"):
        load_run(run_path)


@pytest.mark.parametrize("map_ledger", [True, False])
def test_truncated_ledger_is_reported(run_path, map_ledger):
    data = (run_path / "ledger.safetensors").read_bytes()
    (run_path / "ledger.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFormatError, match="ledger.safetensors is not a readable.*truncated"):
        load_run(run_path, map_ledger=map_ledger)
    assert load_run(run_path, load_ledger=False).ledger is None


def test_ledger_is_mapped_unless_asked_into_memory(run_path, trained):
    mapped = load_run(run_path).ledger
    assert isinstance(mapped, MappedLedger)
    in_memory = load_run(run_path, map_ledger=False).ledger
    assert isinstance(in_memory, Ledger)
    assert torch.equal(in_memory.table, trained.ledger.table)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_ledger_dtype_is_recorded_and_checked(tmp_path, nations, trained, dtype):
    path = save_run(tmp_path / dtype, nations, CONFIG, trained, ledger_dtype=dtype)
    record = json.loads((path / "config.json").read_text())["ledger"]
    assert record["dtype"] == dtype and record["max_abs_error"] > 0
    assert load_file(path / "ledger.safetensors")["head"].dtype == getattr(torch, dtype)
    assert load_run(path).ledger.dtype == getattr(torch, dtype)
    assert (path / "ledger.safetensors").stat().st_size < 0.51 * len(nations.train) * 3 * 8 * 4

    config = json.loads((path / "config.json").read_text())
    config["ledger"]["dtype"] = "float32"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunFormatError, match=f"holds {dtype} tables, but config.json records"):
        load_run(path)


def test_unknown_ledger_dtype_is_refused(tmp_path, nations, trained):
    with pytest.raises(ConfigError, match="float32, float16, bfloat16"):
        save_run(tmp_path / "run", nations, CONFIG, trained, ledger_dtype="int8")
    assert not (tmp_path / "run").exists()


def test_runs_written_by_safetensors_itself_still_load(run_path, trained):
    # Runs saved before reduced precision came in: save_file wrote the ledger.
    tables = {k: v.contiguous() for k, v in trained.ledger.tables().items()}
    save_file(tables, run_path / "ledger.safetensors")
    config = json.loads((run_path / "config.json").read_text())
    config["ledger"] = {"mode": "gradient", "dtype": "float32"}
    (run_path / "config.json").write_text(json.dumps(config))
    assert torch.equal(load_run(run_path).ledger.to_memory().table, trained.ledger.table)


class _Exploit:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['GR_PWNED'], 'w').close()",))


def test_a_pickle_in_the_run_is_never_unpickled(run_path, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("GR_PWNED", str(marker))
    (run_path / "model.safetensors").write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(RunFormatError):
        load_run(run_path)
    assert not marker.exists()


def test_data_set_with_other_content_is_rejected(run_path, tmp_path):
    folder = tmp_path / "changed"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        text = (builtin_dataset_path("nations") / f"{split}.txt").read_text()
        extra = "usa\tembassy\tuk\n" if split == "train" else ""
        (folder / f"{split}.txt").write_text(text + extra)
    with pytest.raises(RunFormatError, match="the files changed"):
        load_run(run_path, dataset=load_dataset(folder))


def test_names_table_must_match_the_counts(run_path):
    lines = (run_path / "entities.tsv").read_text().splitlines()
    (run_path / "entities.tsv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(RunFormatError, match="lists 13 names, expected 14"):
        load_run(run_path)


def test_hostile_names_survive_the_round_trip(tmp_path):
    names = ["<img src=x onerror=alert(1)>", 'Zoë "quoted" & co', "a b", "日本"]
    folder = tmp_path / "hostile"
    folder.mkdir()
    relations = ["r", "r<script>"]
    triples = [f"{names[i]}\t{relations[i % 2]}\t{names[(i + 1) % 4]}" for i in range(4)]
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text("\n".join(triples) + "\n", encoding="utf-8")
    dataset = load_dataset(folder)
    config = CONFIG.replace(epochs=1)
    path = save_run(tmp_path / "run", dataset, config, train(dataset, config))

    run = load_run(path, dataset=dataset)
    assert run.entities == sorted(names)
    assert run.relations == ["r", "r<script>"]


def test_delete_run_removes_only_run_folders(run_path, tmp_path):
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(RunFormatError, match="not a run; nothing deleted"):
        delete_run(other)
    assert (other / "keep.txt").exists()
    delete_run(run_path)
    assert not run_path.exists()

"""The command line, run as a user runs it: ``python -m gr_core ...``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gr_core import cli, memory
from gr_core.cli import main
from gr_core.data import load_dataset
from gr_core.training import train

PROJECT = Path(__file__).resolve().parent.parent


def gr_core(*args, cwd):
    """Run the CLI in a fresh interpreter; return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "gr_core", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )


def test_train_on_nations_writes_a_complete_run(tmp_path):
    done = gr_core(
        "train", "--dataset", "nations", "--model", "distmult", "--out", "runs/x",
        "--epochs", "5", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    run = tmp_path / "runs" / "x"
    expected = {
        "config.json", "model.safetensors", "ledger.safetensors", "entities.tsv",
        "relations.tsv", "metrics.json", "history.jsonl",
    }  # fmt: skip
    assert {p.name for p in run.iterdir()} == expected
    assert load_file(run / "ledger.safetensors")["head"].shape == (1592, 100)
    assert len((run / "history.jsonl").read_text().splitlines()) == 5
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"mrr {metrics['test']['mrr']:.3f}" in done.stdout
    assert "epoch 5/5" in done.stderr

    info = gr_core("info", "runs/x", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "nations (14 entities, 55 relations, 1592 train triples)" in info.stdout
    assert load_dataset("nations").content_hash in info.stdout

    as_json = json.loads(gr_core("info", "runs/x", "--json", cwd=tmp_path).stdout)
    assert as_json["metrics"] == metrics
    assert as_json["config"]["training"]["epochs"] == 5


def test_flags_override_the_preset(tmp_path, capsys):
    code = main([
        "train", "--preset", "paper", "--model", "complex", "--epochs", "1", "--dim", "4",
        "--out", str(tmp_path / "p"), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    config = json.loads((tmp_path / "p" / "config.json").read_text())["training"]
    assert config["model"] == "complex"
    assert (config["epochs"], config["dim"]) == (1, 4)
    assert (config["batch_size"], config["learning_rate"], config["loss"]) == (
        1, 0.003, "sampled-softmax",
    )  # fmt: skip


def test_datasets_lists_the_built_ins(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "nations" in out and "1,592" in out
    assert "umls" in out and "5,216" in out
    assert "kinships" in out and "8,544" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--dataset", "nation"], "did you mean 'nations'"),
        (["train", "--dataset", "/no/such/folder"], "does not exist"),
        (["train", "--ledger", "paper"], "set batch_size to 1"),
        (["train", "--learning-rate", "-1"], "learning_rate must be positive"),
        (["info", "/no/such/run"], "does not exist"),
    ],
)
def test_mistakes_give_one_clear_line(args, message, tmp_path, capsys):
    assert main([*args, "--no-progress"] if args[0] == "train" else args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def test_unknown_flag_value_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "transe"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'transe'" in capsys.readouterr().err


def test_ledger_dtype_flag_halves_the_ledger_file(tmp_path, capsys):
    out = tmp_path / "half"
    args = ["train", "--epochs", "1", "--dim", "8", "--no-progress", "--out", str(out)]
    assert main([*args, "--ledger-dtype", "float16"]) == 0
    assert load_file(out / "ledger.safetensors")["head"].dtype == torch.float16
    assert main(["info", str(out)]) == 0
    assert "ledger    gradient, float16, 0.1 MiB" in capsys.readouterr().out


def test_a_ledger_beyond_float16_is_kept_in_float32(tmp_path, capsys, monkeypatch):
    def train_far(*args, **kwargs):
        result = train(*args, **kwargs)
        result.ledger.table[0, 0, 0] = 1e6
        return result

    monkeypatch.setattr(cli, "train", train_far)
    out = tmp_path / "far"
    args = ["train", "--epochs", "1", "--dim", "8", "--no-progress", "--out", str(out)]
    assert main([*args, "--ledger-dtype", "float16"]) == 0
    assert "writing the ledger as float32 instead" in capsys.readouterr().err
    assert float(load_file(out / "ledger.safetensors")["head"][0, 0]) == 1e6


def test_a_run_that_does_not_fit_stops_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device: 10 * 2**20)
    args = ["train", "--dataset", "kinships", "--dim", "4000", "--out", str(tmp_path / "big")]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error: training needs about" in err and "only 10.0 MiB is available" in err
    assert not (tmp_path / "big").exists()


def test_dropped_triples_are_reported_once(tmp_path, capsys):
    folder = tmp_path / "graph"
    folder.mkdir()
    rows = ["a\tknows\tb", "b\tknows\tc", "c\tlikes\ta"]
    (folder / "train.txt").write_text("\n".join(rows) + "\n")
    (folder / "valid.txt").write_text("a\tknows\tc\n")
    (folder / "test.txt").write_text("a\tknows\tstranger\n")
    args = ["train", "--dataset", str(folder), "--epochs", "1", "--dim", "4", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert err.count("does not occur in train") == 1, err


def test_explain_prints_readable_labels(tmp_path, capsys):
    folder = tmp_path / "graph"
    folder.mkdir()
    rows = ["a\tknows\tb", "b\tknows\tc", "c\tknows\ta", "a\tlikes\tc", "b\tlikes\ta"]
    (folder / "train.txt").write_text("\n".join(rows) + "\n")
    (folder / "valid.txt").write_text("c\tlikes\tb\n")
    (folder / "test.txt").write_text("a\tknows\tc\n")
    # Two people called Bob: the printed triples must still tell them apart.
    (folder / "entity_names.tsv").write_text("a\tAlice\nb\tBob\nc\tBob\n")
    run = tmp_path / "run"
    args = ["train", "--dataset", str(folder), "--epochs", "2", "--dim", "4", "--no-progress"]
    assert main([*args, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["explain", "--run", str(run), "--head", "Alice", "--relation", "knows"]) == 0
    text = capsys.readouterr().out
    assert "query       (Alice, knows, ?)" in text
    assert "(Alice, knows, Bob (b))" in text and "(a, " not in text
    assert "Bob (c)" in text

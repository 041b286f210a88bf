"""The ledger file: reduced precision, memory-mapped reading, and damaged files.

Stored values are checked against torch's own dtype conversion and against the
dtype's rounding bound; explanations from a mapped ledger against those from
the in-memory float32 ledger the training produced.
"""

import dataclasses
import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from gr_core import ledger_file
from gr_core.config import DEFAULT
from gr_core.errors import RunFormatError
from gr_core.explain import Explainer
from gr_core.ledger import Ledger
from gr_core.ledger_file import LedgerPrecisionError, open_ledger, write_ledger
from gr_core.runs import load_run, save_run
from gr_core.training import train

NUM_TRIPLES, WIDTH = 50, 6
# Largest rounding error relative to the value: half a unit in the last place.
RELATIVE_ROUNDING = {"float16": 2.0**-11, "bfloat16": 2.0**-8}
SMALLEST_FLOAT16 = 2.0**-24  # its smallest subnormal; half of it is the absolute bound


def spread_ledger(seed: int = 0) -> Ledger:
    """Return a float32 ledger whose magnitudes spread from 1e-6 to 10, signs mixed."""
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randn(NUM_TRIPLES, 3, WIDTH, generator=generator).sign()
    exponents = torch.rand(NUM_TRIPLES, 3, WIDTH, generator=generator) * 7 - 6
    return Ledger(signs * 10.0**exponents)


def everything(ledger) -> torch.Tensor:
    """Return every row of ``ledger`` as float32 (num_triples, 3, width)."""
    return ledger.gather(torch.arange(ledger.num_triples))


def test_float32_file_is_exact_and_read_alike_by_safetensors(tmp_path):
    ledger = spread_ledger()
    losses = write_ledger(tmp_path / "ledger.safetensors", ledger)
    assert losses == {"max_abs_error": 0.0, "flushed_to_zero": 0}

    mapped = open_ledger(tmp_path / "ledger.safetensors", NUM_TRIPLES, WIDTH)
    assert torch.equal(everything(mapped), ledger.table)
    by_safetensors = load_file(tmp_path / "ledger.safetensors")
    for role, table in ledger.tables().items():
        assert torch.equal(by_safetensors[role], table)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_reduced_precision_rounds_within_the_dtype(tmp_path, dtype):
    ledger = spread_ledger()
    losses = write_ledger(tmp_path / "ledger.safetensors", ledger, dtype)
    mapped = open_ledger(tmp_path / "ledger.safetensors", NUM_TRIPLES, WIDTH)
    read = everything(mapped)

    # The same numbers as torch's own conversion, and as safetensors reads them.
    assert mapped.dtype == getattr(torch, dtype)
    assert torch.equal(read, ledger.table.to(mapped.dtype).float())
    by_safetensors = load_file(tmp_path / "ledger.safetensors")
    assert torch.equal(by_safetensors["tail"].float(), read[:, 2])

    # Within half a unit in the last place (float16: or half its smallest subnormal).
    error = (read - ledger.table).abs()
    bound = ledger.table.abs() * RELATIVE_ROUNDING[dtype]
    if dtype == "float16":
        bound = bound.clamp_min(SMALLEST_FLOAT16 / 2)
    assert bool((error <= bound).all())
    assert float(error.max()) > 0.1 * float(bound.max())  # it did round
    assert losses["max_abs_error"] == pytest.approx(float(error.max()), rel=1e-6)


def test_chunked_writing_gives_the_same_file(tmp_path, monkeypatch):
    ledger = spread_ledger()
    write_ledger(tmp_path / "whole.safetensors", ledger, "float16")
    monkeypatch.setattr(ledger_file, "CHUNK_NUMBERS", 7)  # one row of width 6 per chunk
    losses = write_ledger(tmp_path / "rows.safetensors", ledger, "float16")
    whole = (tmp_path / "whole.safetensors").read_bytes()
    assert (tmp_path / "rows.safetensors").read_bytes() == whole
    assert losses["max_abs_error"] > 0


def test_float16_overflow_is_refused_and_leaves_no_file(tmp_path):
    ledger = spread_ledger()
    ledger.table[3, 1, 2] = -70_000.0
    path = tmp_path / "ledger.safetensors"
    with pytest.raises(LedgerPrecisionError, match=r"magnitude 7e\+04, beyond float16.*bfloat16"):
        write_ledger(path, ledger, "float16")
    assert not path.exists()

    # bfloat16 has float32's range: the value survives, rounded.
    write_ledger(path, ledger, "bfloat16")
    stored = everything(open_ledger(path, NUM_TRIPLES, WIDTH))[3, 1, 2]
    assert float(stored) == pytest.approx(-70_000.0, rel=2.0**-8)


def test_float16_underflow_is_counted_and_tiny(tmp_path):
    ledger = spread_ledger()
    ledger.table[0, 0, :4] = torch.tensor([1e-9, -2e-9, 2.5e-8, 0.0])
    losses = write_ledger(tmp_path / "ledger.safetensors", ledger, "float16")
    read = everything(open_ledger(tmp_path / "ledger.safetensors", NUM_TRIPLES, WIDTH))
    assert read[0, 0, :4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert losses["flushed_to_zero"] == 3
    assert float((read - ledger.table)[ledger.table.abs() < 1e-7].abs().max()) <= 2.0**-25


def test_mapped_tables_are_read_only(tmp_path):
    ledger = spread_ledger()
    path = tmp_path / "ledger.safetensors"
    write_ledger(path, ledger, "float16")
    before = path.read_bytes()
    mapped = open_ledger(path, NUM_TRIPLES, WIDTH)

    for array in mapped.arrays.values():
        with pytest.raises(ValueError, match="read-only"):
            array[0, 0] = 1.0
    rows = mapped.gather(torch.tensor([0, 1]))
    rows += 1.0  # a copy: the file and later reads do not change
    assert torch.equal(mapped.gather(torch.tensor([0, 1])), everything(mapped)[:2])
    assert path.read_bytes() == before


def test_gather_refuses_rows_outside_the_ledger(tmp_path):
    write_ledger(tmp_path / "ledger.safetensors", spread_ledger())
    mapped = open_ledger(tmp_path / "ledger.safetensors", NUM_TRIPLES, WIDTH)
    for outside in (NUM_TRIPLES, -1):
        with pytest.raises(IndexError, match=r"\[0, 50\)"):
            mapped.gather(torch.tensor([0, outside]))
    assert mapped.gather(torch.tensor([], dtype=torch.long)).shape == (0, 3, WIDTH)


def test_to_memory_copies_the_mapped_ledger(tmp_path):
    ledger = spread_ledger()
    write_ledger(tmp_path / "ledger.safetensors", ledger, "bfloat16")
    mapped = open_ledger(tmp_path / "ledger.safetensors", NUM_TRIPLES, WIDTH)
    in_memory = mapped.to_memory()
    assert in_memory.dtype == torch.float32
    assert torch.equal(in_memory.table, ledger.table.to(torch.bfloat16).float())


def raw_file(path, header, data: bytes = b"") -> None:
    """Write a safetensors-shaped file with the given header object and data bytes."""
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def entry(dtype="F32", shape=(NUM_TRIPLES, WIDTH), begin=0, size=NUM_TRIPLES * WIDTH * 4):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, begin + size]}


def three_tables(**changes):
    """Return a header for three float32 tables, one of them changed by ``changes``."""
    size = NUM_TRIPLES * WIDTH * 4
    header = {role: entry(begin=i * size) for i, role in enumerate(("head", "relation", "tail"))}
    header["tail"] = {**header["tail"], **changes}
    return header, b"\0" * 3 * size


DAMAGES = {
    "too short": (lambda p: p.write_bytes(b"\x10\0\0"), "only 3 bytes long"),
    "header past the end": (
        lambda p: p.write_bytes(struct.pack("<Q", 10**6) + b"{}"),
        "header claims 1000000 bytes",
    ),
    "header not JSON": (lambda p: p.write_bytes(struct.pack("<Q", 4) + b"{no:"), "not JSON"),
    "header a list": (lambda p: raw_file(p, []), "not a JSON object"),
    "tensor missing": (
        lambda p: raw_file(p, {"head": entry()}, b"\0" * NUM_TRIPLES * WIDTH * 4),
        "no tensor 'relation'",
    ),
    "integer tensor": (
        lambda p: raw_file(p, *three_tables(dtype="I64")),
        "'tail' is I64, not one of float32",
    ),
    "wrong shape": (
        lambda p: raw_file(p, *three_tables(shape=[NUM_TRIPLES, WIDTH + 1])),
        r"'tail' has shape \(50, 7\), expected \(50, 6\)",
    ),
    "offsets too short": (
        lambda p: raw_file(p, *three_tables(data_offsets=[0, 8])),
        "claims bytes 0 to 8",
    ),
    "malformed entry": (lambda p: raw_file(p, *three_tables(shape=None)), "malformed"),
    "mixed dtypes": (
        lambda p: raw_file(p, *three_tables(dtype="F16", data_offsets=[2400, 3000])),
        "different dtypes",
    ),
    "overlapping tables": (
        lambda p: raw_file(p, *three_tables(data_offsets=[1000, 2200])),
        "byte ranges of its tables overlap",
    ),
    "truncated data": (
        lambda p: raw_file(p, three_tables()[0], b"\0" * 1000),
        "truncated",
    ),
    "a pickle": (lambda p: p.write_bytes(pickle.dumps({"head": 1})), "not a readable"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_ledger_files_are_reported(tmp_path, damage):
    write, message = DAMAGES[damage]
    path = tmp_path / "ledger.safetensors"
    write(path)
    with pytest.raises(RunFormatError, match=message):
        open_ledger(path, NUM_TRIPLES, WIDTH)


def test_the_undamaged_hand_written_file_opens(tmp_path):
    # The control for the damages above: the same writer with nothing changed.
    raw_file(tmp_path / "ledger.safetensors", *three_tables())
    mapped = open_ledger(tmp_path / "ledger.safetensors", NUM_TRIPLES, WIDTH)
    assert float(everything(mapped).abs().sum()) == 0.0


def test_safetensors_files_of_other_writers_open(tmp_path):
    ledger = spread_ledger()
    tables = {role: t.to(torch.bfloat16).contiguous() for role, t in ledger.tables().items()}
    save_file(tables, tmp_path / "ledger.safetensors", metadata={"note": "another writer"})
    read = everything(open_ledger(tmp_path / "ledger.safetensors", NUM_TRIPLES, WIDTH))
    assert torch.equal(read, ledger.table.to(torch.bfloat16).float())


# Explanations on Nations: the default preset, every test query, every neighbour.


@pytest.fixture(scope="module")
def nations_runs(nations, tmp_path_factory):
    """Train the default preset once; return the result and its run in each dtype."""
    result = train(nations, DEFAULT)
    folder = tmp_path_factory.mktemp("ledger-dtypes")
    runs = {
        dtype: load_run(save_run(folder / dtype, nations, DEFAULT, result, ledger_dtype=dtype))
        for dtype in ("float32", "float16", "bfloat16")
    }
    return result, runs


def all_influences(explainer, head, relation, tail=None):
    """Return the explanation's tail and {training row: influence} over every neighbour."""
    explanation = explainer.explain(head, relation, tail, k=10**9)
    return explanation.tail, {row.triple_index: row.influence for row in explanation.rows}


def compare_with_training_ledger(nations, nations_runs, dtype):
    """Yield (float32 influences, ``dtype`` influences) per Nations test query."""
    result, runs = nations_runs
    in_memory = Explainer(dataclasses.replace(runs["float32"], ledger=result.ledger), nations)
    mapped = Explainer(runs[dtype], nations)
    for head, relation, _ in nations.test.tolist():
        tail, truth = all_influences(in_memory, head, relation)
        yield truth, all_influences(mapped, head, relation, tail)[1]


def top(influences: dict, k: int = 10) -> set:
    return set(sorted(influences, key=lambda row: (-influences[row], row))[:k])


def test_mapped_float32_explains_exactly_as_the_training_ledger(nations, nations_runs):
    assert isinstance(nations_runs[0].ledger, Ledger)
    for truth, mapped in compare_with_training_ledger(nations, nations_runs, "float32"):
        assert mapped == truth


def test_mapped_first_order_equals_the_training_ledger(nations, nations_runs):
    result, runs = nations_runs
    in_memory = Explainer(dataclasses.replace(runs["float32"], ledger=result.ledger), nations)
    mapped = Explainer(runs["float32"], nations)
    for head, relation, _ in nations.test[:20].tolist():
        truth = in_memory.explain(head, relation, method="first-order", k=10**9)
        found = mapped.explain(head, relation, truth.tail, method="first-order", k=10**9)
        assert [(r.triple_index, r.influence) for r in found.rows] == [
            (r.triple_index, r.influence) for r in truth.rows
        ]


# Measured on the 201 Nations test queries (default preset, 50 epochs): float16
# keeps every top-10 (mean overlap 1.0, largest influence error 3.7e-4 against
# influences up to 0.99); bfloat16 keeps a mean top-10 overlap of 0.998 (lowest
# 0.9, largest error 3.5e-3).
BOUNDS = {"float16": (0.99, 0.9, 2e-3), "bfloat16": (0.95, 0.7, 2e-2)}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_reduced_precision_explanations_stay_close(nations, nations_runs, dtype):
    mean_bound, lowest_bound, error_bound = BOUNDS[dtype]
    overlaps, errors = [], []
    for truth, found in compare_with_training_ledger(nations, nations_runs, dtype):
        assert found.keys() == truth.keys()
        overlaps.append(len(top(found) & top(truth)) / len(top(truth)))
        errors.append(max(abs(found[row] - truth[row]) for row in truth))
    assert sum(overlaps) / len(overlaps) >= mean_bound
    assert min(overlaps) >= lowest_bound
    assert 0 < max(errors) <= error_bound  # not vacuous: the dtype did change something

"""The ledger on disk: a safetensors file in float32, float16 or bfloat16, read memory-mapped.

``write_ledger`` stores the three (num_train_triples, width) tables ``head``,
``relation`` and ``tail`` in the chosen dtype, converting and writing a chunk
of rows at a time, so saving never holds a second copy of the whole ledger.
Training always accumulates in float32; the conversion happens here, once.

``open_ledger`` parses the file's header (8 bytes little-endian length, then
JSON naming each tensor's dtype, shape and byte range) and maps the tables
read-only with ``numpy.memmap``. Explaining then reads only the neighbours'
rows (the kernel may read ahead around them), and processes that open the same
run share the operating system's page cache instead of holding copies. A
rollback gathers the rows it needs and converts them to the model's dtype
(``MappedLedger.gather``).

Mapping is safe because run files are never rewritten in place: a run is
written into a new folder and renamed (``gr_core.runs``), so a mapped file
keeps its bytes even when the run is replaced or deleted.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import torch

from gr_core.errors import ConfigError, GRError, RunFormatError
from gr_core.ledger import ROLES, Ledger

LEDGER_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
# The safetensors names of those dtypes, and the numpy types that map their bytes.
# numpy has no bfloat16: its bits are mapped as int16 and reinterpreted by torch.
SAFETENSORS_NAMES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
NUMPY_TYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "bfloat16": np.dtype("<i2")}
# Numbers converted and written at once; bounds the memory a save needs (64 MiB).
CHUNK_NUMBERS = 1 << 24
# safetensors refuses headers longer than this; so does this reader.
MAX_HEADER_BYTES = 100_000_000


class LedgerPrecisionError(GRError):
    """The ledger holds values that the chosen dtype on disk cannot represent."""


class MappedLedger:
    """A read-only ledger whose tables stay in a memory-mapped file.

    ``arrays`` maps each role to its read-only (num_train_triples, width) numpy
    memmap in the stored dtype (bfloat16 appears as int16 bits); assigning into
    one raises ``ValueError``. Read rows with ``gather``, or copy the whole
    ledger into memory with ``to_memory``.
    """

    def __init__(self, path: Path, arrays: dict[str, np.ndarray], dtype_name: str):
        self.path = path
        self.arrays = arrays
        self.dtype_name = dtype_name

    @property
    def dtype(self) -> torch.dtype:
        return LEDGER_DTYPES[self.dtype_name]

    @property
    def num_triples(self) -> int:
        return self.arrays["head"].shape[0]

    @property
    def width(self) -> int:
        return self.arrays["head"].shape[1]

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays.values())

    def gather(self, ids: torch.Tensor, device=None, dtype=torch.float32) -> torch.Tensor:
        """Return the rows ``ids`` (n,) as (n, 3, width) on ``device`` in ``dtype``.

        Reads only those rows from the file into a new tensor, role by role: the
        result is a (n, 3, width) view of a (3, n, width) tensor.
        """
        rows = ids.cpu().numpy()
        if len(rows) and (rows.min() < 0 or rows.max() >= self.num_triples):
            raise IndexError(f"ledger rows must lie in [0, {self.num_triples})")
        stored = torch.empty(len(ROLES), len(rows), self.width, dtype=self.dtype)
        bits = stored.view(torch.int16) if self.dtype == torch.bfloat16 else stored
        for position, role in enumerate(ROLES):
            # Checked above, so "wrap" wraps nothing; it spares numpy a buffered copy.
            np.take(self.arrays[role], rows, axis=0, out=bits.numpy()[position], mode="wrap")
        return stored.permute(1, 0, 2).to(device=device, dtype=dtype)

    def to_memory(self, dtype=torch.float32) -> Ledger:
        """Copy the whole ledger into an in-memory ``Ledger`` in ``dtype``."""
        ledger = Ledger.zeros(self.num_triples, self.width, dtype=dtype)
        step = _chunk_rows(self.width)
        for position, role in enumerate(ROLES):
            for start in range(0, self.num_triples, step):
                part = self.arrays[role][start : start + step]
                ledger.table[start : start + step, position] = _as_tensor(part, self.dtype_name)
        return ledger


def _as_tensor(array: np.ndarray, dtype_name: str) -> torch.Tensor:
    """Return a torch copy of mapped ``array`` in its stored dtype."""
    native = np.asarray(array, dtype=array.dtype.newbyteorder("="))
    if not native.flags.writeable:  # still the mapped bytes: copy them
        native = native.copy()
    tensor = torch.from_numpy(native)
    return tensor.view(torch.bfloat16) if dtype_name == "bfloat16" else tensor


def _chunk_rows(width: int) -> int:
    return max(1, CHUNK_NUMBERS // max(1, width))


def write_ledger(path, ledger: Ledger, dtype_name: str = "float32") -> dict:
    """Write ``ledger`` to ``path`` as a safetensors file in ``dtype_name``.

    Returns what the conversion lost: ``max_abs_error`` (the largest
    ``|stored - float32 value|``) and ``flushed_to_zero`` (non-zero values stored
    as zero: float16's underflow below about 3e-8, an absolute error of at most
    that). Raises ``LedgerPrecisionError`` when a value is beyond the dtype's
    range (float16: 65504); no file is left behind then.
    """
    if dtype_name not in LEDGER_DTYPES:
        raise ConfigError(
            f"ledger dtype must be one of {', '.join(LEDGER_DTYPES)}; got {dtype_name!r}"
        )
    path = Path(path)
    shape = [ledger.num_triples, ledger.width]
    table_bytes = math.prod(shape) * NUMPY_TYPES[dtype_name].itemsize
    header = {
        role: {
            "dtype": SAFETENSORS_NAMES[dtype_name],
            "shape": shape,
            "data_offsets": [index * table_bytes, (index + 1) * table_bytes],
        }
        for index, role in enumerate(ROLES)
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # safetensors pads its header to 8 bytes

    losses = {"max_abs_error": 0.0, "flushed_to_zero": 0}
    try:
        with open(path, "wb") as stream:
            stream.write(struct.pack("<Q", len(encoded)) + encoded)
            for role in ROLES:
                _write_table(stream, ledger.tables()[role], dtype_name, losses)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return losses


def _write_table(stream, table: torch.Tensor, dtype_name: str, losses: dict) -> None:
    """Convert and append one (num_train_triples, width) table, a chunk of rows at a time."""
    dtype = LEDGER_DTYPES[dtype_name]
    for part in table.split(_chunk_rows(table.shape[1])):
        if part.numel() == 0:
            continue
        source = part.detach().to("cpu", torch.float32)
        stored = source.to(dtype)
        if dtype != torch.float32:
            _check_range(source, stored, dtype_name)
            error = float((stored.float() - source).abs().max())
            losses["max_abs_error"] = max(losses["max_abs_error"], error)
            losses["flushed_to_zero"] += int(((stored == 0) & (source != 0)).sum())
        bits = stored.view(torch.int16) if dtype == torch.bfloat16 else stored
        array = bits.contiguous().numpy().astype(NUMPY_TYPES[dtype_name], copy=False)
        stream.write(array.data)


def _check_range(source: torch.Tensor, stored: torch.Tensor, dtype_name: str) -> None:
    overflow = torch.isinf(stored) & torch.isfinite(source)
    if overflow.any():
        largest = float(source[overflow].abs().max())
        limit = torch.finfo(LEDGER_DTYPES[dtype_name]).max
        wider = "bfloat16 (float32's range) or float32" if dtype_name == "float16" else "float32"
        raise LedgerPrecisionError(
            f"the ledger holds a value of magnitude {largest:.4g}, beyond {dtype_name}'s "
            f"largest {limit:.4g}; store it as {wider}"
        )


def open_ledger(path, num_triples: int, width: int) -> MappedLedger:
    """Map the ledger file at ``path`` read-only and check its tables.

    Each of ``head``, ``relation`` and ``tail`` must be (num_triples, width) in
    float32, float16 or bfloat16, all in one dtype, and lie inside the file
    without overlapping.
    Raises ``RunFormatError`` naming the file and the problem.
    """
    path = Path(path)
    header, data_start, size = _read_header(path)
    shape = (num_triples, width)
    dtype_names = {_check_entry(path, header, role, shape, data_start, size) for role in ROLES}
    if len(dtype_names) != 1:
        raise RunFormatError(f"{path}: the tables have different dtypes {sorted(dtype_names)}")
    (dtype_name,) = dtype_names
    ranges = sorted(tuple(header[role]["data_offsets"]) for role in ROLES)
    if any(begin < end for (_, end), (begin, _) in zip(ranges, ranges[1:], strict=False)):
        raise RunFormatError(f"{path}: the byte ranges of its tables overlap")

    arrays = {}
    for role in ROLES:
        begin = header[role]["data_offsets"][0]
        arrays[role] = _map(path, NUMPY_TYPES[dtype_name], data_start + begin, shape)
    return MappedLedger(path, arrays, dtype_name)


def _map(path: Path, numpy_type: np.dtype, offset: int, shape: tuple[int, int]) -> np.ndarray:
    if math.prod(shape) == 0:  # mmap cannot map zero bytes
        empty = np.zeros(shape, dtype=numpy_type)
        empty.flags.writeable = False
        return empty
    return np.memmap(path, dtype=numpy_type, mode="r", offset=offset, shape=shape)


def _read_header(path: Path) -> tuple[dict, int, int]:
    """Return the parsed header, where the data region starts, and the file size."""
    unreadable = f"{path} is not a readable safetensors file"
    try:
        with open(path, "rb") as stream:
            size = stream.seek(0, 2)
            stream.seek(0)
            prefix = stream.read(8)
            if len(prefix) < 8:
                raise RunFormatError(f"{unreadable}: only {size} bytes long")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise RunFormatError(
                    f"{unreadable}: its header claims {length} bytes, the file has {size}"
                )
            text = stream.read(length)
    except OSError as error:
        raise RunFormatError(f"{unreadable}: {error}") from None
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFormatError(f"{unreadable}: its header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise RunFormatError(f"{unreadable}: its header is not a JSON object")
    return header, 8 + length, size


def _check_entry(path: Path, header: dict, role: str, shape, data_start: int, size: int) -> str:
    """Check one tensor's header entry; return its dtype name."""
    entry = header.get(role)
    if entry is None:
        raise RunFormatError(f"{path} has no tensor {role!r}")
    try:
        kind, found, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise RunFormatError(f"{path}: the header entry of {role!r} is malformed") from None
    if found != tuple(shape):
        raise RunFormatError(f"{path}: tensor {role!r} has shape {found}, expected {tuple(shape)}")
    names = {stored: name for name, stored in SAFETENSORS_NAMES.items()}
    if not isinstance(kind, str) or kind not in names:
        raise RunFormatError(
            f"{path}: tensor {role!r} is {kind}, not one of {', '.join(SAFETENSORS_NAMES)}"
        )
    expected = math.prod(shape) * NUMPY_TYPES[names[kind]].itemsize
    offsets_fit = isinstance(begin, int) and isinstance(end, int) and begin >= 0
    if not offsets_fit or end - begin != expected:
        raise RunFormatError(
            f"{path}: tensor {role!r} claims bytes {begin} to {end}, but {kind} {found} "
            f"takes {expected} bytes"
        )
    if data_start + end > size:
        raise RunFormatError(
            f"{path} is not a readable safetensors file: it is truncated ({size} bytes, "
            f"tensor {role!r} needs {data_start + end})"
        )
    return names[kind]

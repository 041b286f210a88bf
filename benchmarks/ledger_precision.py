"""Explanations from float16 and bfloat16 ledgers against float32, mapped and in memory.

For each data set a run is trained once and saved three times, with a float32,
a float16 and a bfloat16 ledger. UMLS and Kinships train the default preset;
FB15k-237 (read from ``--fb15k`` when that folder exists) takes
``--fb15k-steps`` steps of the default preset at width 200 from its usual
random start, which is enough to give the ledger realistic magnitudes.

For the first ``--queries`` test queries ``(head, relation, filtered top-1 tail)``
every neighbour's influence from each mapped ledger is compared with the
in-memory float32 ledger the training produced: top-10 overlap, Spearman's rho
over all neighbours, largest and mean absolute influence error, the ledger
file's size against float32's, and the time of ``Explainer.explain`` against
the in-memory float32 ledger (median of ``--repeats`` calls, taken in turns;
the files were just written, so the page cache is warm).

The last part opens the FB15k-237 run in a fresh interpreter, mapped and
loaded into memory, and prints how its resident memory (``/proc/self/statm``,
private and file-backed apart) grows when the run is loaded and when queries
are explained, with the ledger file in the page cache and evicted from it.

    python -m benchmarks.ledger_precision [--queries 20] [--repeats 5] [--fb15k FOLDER]
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from benchmarks.ledger_overhead import SHARED_FB15K
from gr_core.config import DEFAULT
from gr_core.data import DatasetWarning, load_dataset
from gr_core.explain import Explainer
from gr_core.loo import spearman
from gr_core.metrics import TailFilter, evaluate
from gr_core.runs import load_run, save_run
from gr_core.training import Trainer, TrainResult, train

DTYPES = ("float32", "float16", "bfloat16")
FB15K_WIDTH, FB15K_EVALUATED = 200, 1_000
PAGE = 4096


def train_fb15k(dataset, steps: int) -> tuple:
    """Take ``steps`` steps of the default preset at width 200; return (config, result)."""
    config = DEFAULT.replace(dim=FB15K_WIDTH, epochs=1)
    trainer = Trainer(dataset.train, dataset.num_entities, dataset.num_relations, config)
    for rows in trainer.epoch_batches()[:steps]:
        trainer.step(rows)
    # Metrics on the first triples of each split only: the run needs some, the
    # comparison does not.
    known = torch.cat((dataset.train, dataset.valid, dataset.test))
    tail_filter = TailFilter(known, dataset.num_relations)
    metrics = {
        split: evaluate(trainer.model, getattr(dataset, split)[:FB15K_EVALUATED], tail_filter)
        for split in ("valid", "test")
    }
    return config, TrainResult(trainer.model, trainer.ledger, [], metrics, 1, 1, 0.0)


def explanation_seconds(explainers: dict, queries: list, repeats: int) -> dict:
    """Return per explainer the summed median time of ``explain(query, k=10)`` over queries.

    The explainers take turns within every repeat, so a change in the machine's
    load hits them all alike.
    """
    totals = dict.fromkeys(explainers, 0.0)
    for query in queries:
        samples = {name: [] for name in explainers}
        for _ in range(repeats):
            for name, explainer in explainers.items():
                started = time.perf_counter()
                explainer.explain(*query, k=10)
                samples[name].append(time.perf_counter() - started)
        for name, timings in samples.items():
            totals[name] += statistics.median(timings)
    return totals


def influences(explainer: Explainer, head: int, relation: int, tail: int | None):
    """Return the explained tail and every neighbour's influence, in training-row order."""
    explanation = explainer.explain(head, relation, tail, k=10**9)
    rows = sorted((row.triple_index, row.influence) for row in explanation.rows)
    return explanation.tail, torch.tensor([influence for _, influence in rows], dtype=torch.float64)


def top_overlap(found: torch.Tensor, truth: torch.Tensor, k: int = 10) -> float:
    """Return the share of truth's top k that ``found`` also ranks in its top k."""
    k = min(k, len(truth))
    return len(set(found.topk(k).indices.tolist()) & set(truth.topk(k).indices.tolist())) / k


def compare(name: str, dataset, config, result, args, folder: Path) -> dict[str, Path]:
    """Print one data set's rows of the table; return its run folders by ledger dtype."""
    paths = {
        dtype: save_run(folder / f"{name}-{dtype}", dataset, config, result, ledger_dtype=dtype)
        for dtype in DTYPES
    }
    runs = {dtype: load_run(path) for dtype, path in paths.items()}
    reference = Explainer(dataclasses.replace(runs["float32"], ledger=result.ledger), dataset)
    explainers = {dtype: Explainer(run, dataset) for dtype, run in runs.items()}

    queries, truths = [], []
    for head, relation, _ in dataset.test[: args.queries].tolist():
        tail, truth = influences(reference, head, relation, None)
        queries.append((head, relation, tail))
        truths.append(truth)
    seconds = explanation_seconds({"in memory": reference, **explainers}, queries, args.repeats)

    size32 = (paths["float32"] / "ledger.safetensors").stat().st_size
    neighbours = statistics.mean(len(truth) for truth in truths)
    for dtype, explainer in explainers.items():
        overlaps, rhos, largest, mean_errors = [], [], [], []
        for query, truth in zip(queries, truths, strict=True):
            found = influences(explainer, *query)[1]
            errors = (found - truth).abs()
            overlaps.append(top_overlap(found, truth))
            rhos.append(spearman(found, truth))
            largest.append(float(errors.max()))
            mean_errors.append(float(errors.mean()))
        size = (paths[dtype] / "ledger.safetensors").stat().st_size
        overlap, rho, mean_error = map(statistics.mean, (overlaps, rhos, mean_errors))
        print(
            f"{name:<10} {dtype:<9} {len(queries):>7} {neighbours:>10,.0f} {overlap:>7.3f} "
            f"{min(overlaps):>7.2f} {rho:>8.5f} {max(largest):>10.2e} {mean_error:>10.2e} "
            f"{size / size32:>6.3f} {seconds[dtype] / seconds['in memory']:>7.2f}"
        )
    return paths


def precision_table(args, folder: Path) -> dict | None:
    """Print the comparison for every data set; return FB15k-237's run folders, if any."""
    print(
        f"{'data set':<10} {'ledger':<9} {'queries':>7} {'neighbours':>10} {'top-10':>7} "
        f"{'lowest':>7} {'spearman':>8} {'max |err|':>10} {'mean |err|':>10} {'size':>6} "
        f"{'time':>7}"
    )
    for name in ("umls", "kinships"):
        dataset = load_dataset(name)
        compare(name, dataset, DEFAULT, train(dataset, DEFAULT), args, folder)
    if not (args.fb15k / "train.txt").is_file():
        print(f"(no FB15k-237 rows: {args.fb15k} not found)")
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # unseen valid/test triples
        dataset = load_dataset(args.fb15k)
    started = time.perf_counter()
    config, result = train_fb15k(dataset, args.fb15k_steps)
    trained = time.perf_counter() - started
    paths = compare("fb15k-237", dataset, config, result, args, folder)
    print(f"(fb15k-237: {args.fb15k_steps} steps at width {FB15K_WIDTH} in {trained:.0f} s)")
    return paths


def resident_pages() -> tuple[int, int]:
    """Return this process's private and file-backed resident pages."""
    fields = Path("/proc/self/statm").read_text().split()
    resident, file_backed = int(fields[1]), int(fields[2])
    return resident - file_backed, file_backed


def evict_from_page_cache(path: Path) -> None:
    """Ask the kernel to drop this one file's cached pages (it is clean: nothing is lost)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def probe(path: Path, mapped: bool, queries: int, cold: bool) -> None:
    """Print, as JSON, how loading ``path`` and explaining grew resident memory (MiB)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        dataset = load_dataset(json.loads((path / "config.json").read_text())["dataset"]["source"])
    if cold:
        evict_from_page_cache(path / "ledger.safetensors")
    before = resident_pages()
    run = load_run(path, map_ledger=mapped)
    loaded = resident_pages()
    explainer = Explainer(run, dataset)
    built = resident_pages()
    seconds = []
    for head, relation, _ in dataset.test[:queries].tolist():
        started = time.perf_counter()
        explainer.explain(head, relation, k=10)
        seconds.append(time.perf_counter() - started)
    explained = resident_pages()

    def grown(after, start):
        return [round((a - b) * PAGE / 2**20, 1) for a, b in zip(after, start, strict=True)]

    print(json.dumps({
        "load": grown(loaded, before),
        "explain": grown(explained, built),
        "first": seconds[0],
        "later": statistics.median(seconds[1:] or seconds),
    }))  # fmt: skip


MEMORY_CASES = (  # (ledger dtype, mapped, page cache emptied first)
    ("float32", True, False),
    ("float32", True, True),
    ("float32", False, False),
    ("float16", True, False),
    ("float16", True, True),
    ("float16", False, False),
)


def memory_table(paths: dict, queries: int) -> None:
    """Print the resident-memory growth of the FB15k-237 run, mapped and in memory."""
    print("\nresident memory of the FB15k-237 run, a fresh interpreter per row (MiB)")
    print(
        f"{'ledger file':<12} {'loading':<16} {'load private':>12} {'file':>6} "
        f"{'explain private':>15} {'file':>6} {'first s':>7} {'later s':>7}"
    )
    for dtype, mapped, cold in MEMORY_CASES:
        command = [
            sys.executable, "-m", "benchmarks.ledger_precision", "--probe", str(paths[dtype]),
            "--queries", str(queries), *(() if mapped else ("--in-memory",)),
            *(("--cold",) if cold else ()),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        numbers = json.loads(done.stdout.strip().splitlines()[-1])
        (load, load_file), (explain, explain_file) = numbers["load"], numbers["explain"]
        loading = ("mapped" if mapped else "in memory") + (", cold" if cold else "")
        print(
            f"{dtype:<12} {loading:<16} {load:>12.1f} {load_file:>6.1f} {explain:>15.1f} "
            f"{explain_file:>6.1f} {numbers['first']:>7.3f} {numbers['later']:>7.3f}"
        )
    print(
        f"load: load_run; explain: {queries} explanations after building the Explainer; "
        "file: page-cache pages mapped into the process (shared with every process that "
        "maps the file, dropped by the kernel under pressure); cold: the ledger file's "
        "pages were evicted from the page cache first; first / later s: the first "
        "explanation's time and the median of the others"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20, help="test queries per data set")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per query")
    parser.add_argument("--fb15k", type=Path, default=SHARED_FB15K)
    parser.add_argument("--fb15k-steps", type=int, default=300)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe, not args.in_memory, args.queries, args.cold)
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("against the in-memory float32 ledger; size and time are ratios to it\n")
    with tempfile.TemporaryDirectory() as folder:
        paths = precision_table(args, Path(folder))
        if paths is not None:
            memory_table(paths, min(args.queries, 5))


if __name__ == "__main__":
    main()

"""An evaluation folder: a resumable ROAR evaluation of one run, with its tables.

Layout of ``--out DIR``::

    evaluation.json  what is evaluated: run, data hash, methods, seed, queries
    rows.csv         one row per (query, method), appended as batches finish
    summary.json     {method: {"pd": %, "tc": %, "n": queries, "removed": mean}}
    table.md         Table 1 of the paper (PD / TC per method), Table 2 (by k) when
                     a method family is run at several k, and significance tests
    scatter.csv      GR-1: GR's predicted probability after removal against the retrained one
    approximation.json  GR-1: Pearson r, mean absolute error, empirical Lipschitz constant

Queries are processed in batches; after each batch its rows are appended and
flushed, so an interrupted evaluation resumes where it stopped and finished
queries are not retrained.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch

from gr_core.errors import ConfigError, GRError
from gr_core.explain import Explainer
from gr_core.roar import (
    DEFAULT_METHODS,
    Outcome,
    approximation,
    check_methods,
    evaluate,
    randomization_test,
)
from gr_core.roar import summarise as summarise_outcomes
from gr_core.runs import load_run_with_dataset
from gr_core.stack import DEFAULT_MEMORY_BUDGET, stack_steps

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
FIELDS = (
    "query", "head", "relation", "tail", "method", "removed", "probability_before",
    "probability_after", "predicted_after", "top1_after", "weight_shift", "pd", "tc",
)  # fmt: skip


class EvaluationMismatchError(GRError):
    """The output folder holds an evaluation with other settings."""


def choose_queries(dataset, count: int | None, seed: int) -> torch.Tensor:
    """Return ``(head, relation)`` ids (n, 2) of the evaluated test triples.

    ``None`` or a count of at least the test set takes every test triple in file
    order; a smaller count draws that many test triples at random (seeded).
    """
    if count is None or count >= len(dataset.test):
        return dataset.test[:, :2].clone()
    if count < 1:
        raise ConfigError(f"the number of queries must be at least 1, got {count}")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(dataset.test), generator=generator)[:count]
    return dataset.test[chosen.sort().values, :2].clone()


def run_evaluation(
    run_path,
    out,
    *,
    queries: int | None = None,
    methods=DEFAULT_METHODS,
    seed: int = 0,
    batch_queries: int = 200,
    on_step: Callable[[int, int], None] | None = None,
) -> dict:
    """Evaluate the run at ``run_path`` into folder ``out``; return the summary.

    Resumes a previous evaluation with the same settings in ``out``.
    """
    run, dataset = load_run_with_dataset(run_path)
    methods = check_methods(methods, run.train_config.loss)
    explainer = Explainer(run, dataset)
    chosen = choose_queries(dataset, queries, seed)
    out = Path(out)
    settings = {
        "format_version": FORMAT_VERSION,
        "run": str(Path(run_path).resolve()),
        "data_hash": run.dataset_hash,
        "training": run.config["training"],
        "methods": list(methods),
        "seed": seed,
        "queries": [[explainer.entities[h], explainer.relations[r]] for h, r in chosen.tolist()],
    }
    done = _prepare(out, settings, len(methods))

    todo = [position for position in range(len(chosen)) if position not in done]
    batches = [todo[i : i + batch_queries] for i in range(0, len(todo), batch_queries)]
    if todo:
        logger.info("%d of %d queries to evaluate", len(todo), len(chosen))
    progress = _batch_progress(run, dataset, [len(b) * len(methods) for b in batches], on_step)
    for batch, batch_step in zip(batches, progress, strict=True):
        outcomes = evaluate(run, dataset, explainer, chosen[batch], methods, seed, batch_step,
                            batch)  # fmt: skip
        _append_rows(out / "rows.csv", outcomes)
    return write_tables(out)


def _batch_progress(run, dataset, removals: list[int], on_step) -> list:
    """Return one ``on_step`` per batch that reports progress over all batches.

    ``removals`` holds each batch's number of retrainings; each batch's stack
    also trains one model with nothing removed.
    """
    if on_step is None:
        return [None] * len(removals)
    config = run.train_config.replace(ledger="off")
    epochs = run.config["result"]["kept_epoch"]
    steps = [stack_steps(dataset, config, 1 + n, epochs, DEFAULT_MEMORY_BUDGET) for n in removals]
    total, offsets = sum(steps), [sum(steps[:i]) for i in range(len(steps))]

    def reporter(offset: int):
        return lambda done, _: on_step(offset + done, total)

    return [reporter(offset) for offset in offsets]


def _prepare(out: Path, settings: dict, num_methods: int) -> set[int]:
    """Create ``out`` or check it holds the same evaluation; return the finished queries."""
    recorded = out / "evaluation.json"
    if recorded.exists():
        previous = json.loads(recorded.read_text(encoding="utf-8"))
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings[k])
            raise EvaluationMismatchError(
                f"{out} holds an evaluation with other {', '.join(changed)}; "
                "choose another --out or delete it"
            )
        rows = read_rows(out / "rows.csv")
        counts: dict[int, int] = {}
        for row in rows:
            counts[row["query"]] = counts.get(row["query"], 0) + 1
        finished = {query for query, count in counts.items() if count == num_methods}

        # Drop the rows of queries an interruption cut short: they are redone.
        staging = out / "rows.csv.tmp"
        with open(staging, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, FIELDS)
            writer.writeheader()
            writer.writerows(row for row in rows if row["query"] in finished)
        staging.replace(out / "rows.csv")
        return finished

    out.mkdir(parents=True, exist_ok=True)
    recorded.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    with open(out / "rows.csv", "w", newline="", encoding="utf-8") as stream:
        csv.writer(stream).writerow(FIELDS)
    return set()


def _append_rows(path: Path, outcomes: list[Outcome]) -> None:
    """Append one batch's rows and push them to the disk."""
    with open(path, "a", newline="", encoding="utf-8") as stream:
        csv.DictWriter(stream, FIELDS).writerows(outcome.to_row() for outcome in outcomes)
        stream.flush()
        os.fsync(stream.fileno())


def read_rows(path: Path) -> list[dict]:
    """Read rows.csv, keeping complete rows only (a crash may cut the last line)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as stream:
        for raw in csv.DictReader(stream):
            if None in raw.values() or None in raw:
                continue
            try:
                rows.append(_typed(raw))
            except ValueError:
                continue
    return rows


def _typed(raw: dict) -> dict:
    row = dict(raw)
    row["query"], row["removed"] = int(raw["query"]), int(raw["removed"])
    for key in ("probability_before", "probability_after", "predicted_after", "weight_shift"):
        row[key] = float(raw[key])
    row["pd"], row["tc"] = raw["pd"] == "True", raw["tc"] == "True"
    return row


def _outcomes(rows: list[dict]) -> list[Outcome]:
    fields = [f for f in FIELDS if f not in ("pd", "tc")]
    return [Outcome(**{f: row[f] for f in fields}) for row in rows]


def write_tables(out: Path) -> dict:
    """Write summary.json, table.md and scatter.csv from rows.csv; return the summary."""
    settings = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    rows = sorted(read_rows(out / "rows.csv"), key=lambda r: r["query"])
    outcomes = _outcomes(rows)
    summary = {m: summarise_outcomes(outcomes).get(m) for m in settings["methods"]}
    summary = {m: s for m, s in summary.items() if s is not None}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    fit = approximation(outcomes)
    (out / "approximation.json").write_text(json.dumps(fit, indent=2) + "\n", encoding="utf-8")
    (out / "table.md").write_text(_table(summary, outcomes, settings, fit), encoding="utf-8")
    with open(out / "scatter.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(("query", "predicted_after", "retrained_after", "before"))
        for o in outcomes:
            if o.method == "GR-1":
                writer.writerow((o.query, o.predicted_after, o.probability_after,
                                 o.probability_before))  # fmt: skip
    return summary


def _table(summary: dict, outcomes: list[Outcome], settings: dict, fit: dict) -> str:
    """Return Table 1 (PD / TC per method) and GR-vs-NH significance, as markdown."""
    methods = list(summary)
    lines = [
        f"Run `{settings['run']}`, {len(settings['queries'])} queries, seed {settings['seed']}.",
        "",
        "| | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
        "| PD % | " + " | ".join(f"{summary[m]['pd']:.1f}" for m in methods) + " |",
        "| TC % | " + " | ".join(f"{summary[m]['tc']:.1f}" for m in methods) + " |",
        "| n | " + " | ".join(str(summary[m]["n"]) for m in methods) + " |",
        "| removed (mean) | " + " | ".join(f"{summary[m]['removed']:.1f}" for m in methods) + " |",
    ]
    lines += _table_by_k(summary)
    pairs = [
        (method, f"{baseline}-{method[3:]}")
        for method in methods
        if method.startswith("GR-") and method.count("-") == 1
        for baseline in ("NH", "CRIAGE", "GR-O")
        if f"{baseline}-{method[3:]}" in summary
    ]
    if pairs:
        lines += ["", "Approximate randomization test, GR against the baselines "
                  "(p-values, 10,000 trials):", "", "| pair | PD p | TC p |",
                  "|---|---|---|"]  # fmt: skip
        for a, b in pairs:
            first = _paired(outcomes, a, b)
            p_pd = randomization_test(*(list(x) for x in zip(*first[0], strict=True)))
            p_tc = randomization_test(*(list(x) for x in zip(*first[1], strict=True)))
            lines.append(f"| {a} vs {b} | {_p(p_pd)} | {_p(p_tc)} |")
    if fit["n"] >= 2:
        lines += [
            "",
            f"GR-1 approximation over {fit['n']} queries: Pearson r {fit['pearson']:.3f} between "
            "GR's predicted and the retrained probability, mean absolute error "
            f"{fit['mean_abs_error']:.4f}, empirical Lipschitz constant {fit['lipschitz']:.4f}.",
        ]
    return "\n".join(lines) + "\n"


def _table_by_k(summary: dict) -> list[str]:
    """Return the paper's Table 2 layout (PD / TC per family and k) when two k's are there."""
    by_family: dict[str, dict[int, dict]] = {}
    for method, values in summary.items():
        family, size = method.rsplit("-", 1)
        if size.isdigit():
            by_family.setdefault(family, {})[int(size)] = values
    sizes = sorted({k for ks in by_family.values() for k in ks})
    if len(sizes) < 2:
        return []
    lines = ["", "PD % / TC % by the number k of removed triples:", "",
             "| method | " + " | ".join(f"k = {k}" for k in sizes) + " |",
             "|---|" + "---|" * len(sizes)]  # fmt: skip
    for family, values in by_family.items():
        cells = [f"{values[k]['pd']:.1f} / {values[k]['tc']:.1f}" if k in values else "-"
                 for k in sizes]  # fmt: skip
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return lines


def _paired(outcomes, first: str, second: str):
    by_query = {}
    for o in outcomes:
        by_query.setdefault(o.query, {})[o.method] = o
    pairs = [q for q in by_query.values() if first in q and second in q]
    pd = [(q[first].probability_dropped, q[second].probability_dropped) for q in pairs]
    tc = [(q[first].top1_changed, q[second].top1_changed) for q in pairs]
    return pd, tc


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}" if not math.isnan(value) else "-"

"""Saved evaluations of a run: where they live, how they are named, and reading them back.

An evaluation of the run in ``RUN/`` is kept in ``RUN/evaluations/NAME/``, in
the folder layout that ``gr_core.evaluation.run_evaluation`` writes. This
module finds those folders, checks a new name, reads one folder back (settings,
per-query rows, the summary per method and the GR-1 approximation) and
recomputes the significance tests from the rows; it retrains nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from gr_core.config import CONSTRAINTS
from gr_core.errors import ConfigError, GRError
from gr_core.evaluation import read_rows
from gr_core.roar import Outcome, randomization_test, summarise

EVALUATIONS_FOLDER = "evaluations"
MAX_NAME = 100
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
TABLE_1_METHODS = ("GR-1", "GR-10", "GR-ALL", "NH-1", "NH-10", "NH-ALL")
TABLE_2_SIZES = (1, 3, 5, 10)
BASELINE_FAMILIES = ("NH", "CRIAGE")  # what the other methods are tested against
CONSTRAINT_SETTINGS = ("constraint", "max_norm")


class EvaluationReadError(GRError):
    """An evaluation folder lacks a file or holds one that cannot be read."""


@dataclass(frozen=True)
class SavedEvaluation:
    """One evaluation folder read back from disk."""

    path: Path
    settings: dict  # evaluation.json
    rows: list[dict]  # rows.csv: the rows of finished queries only
    summary: dict  # {method: {"pd": %, "tc": %, "n": queries, "removed": mean}}
    approximation: dict | None  # approximation.json; None until the evaluation finished
    finished: int  # queries with a row for every method

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def methods(self) -> list[str]:
        return list(self.settings["methods"])

    @property
    def total(self) -> int:
        """Return how many queries the evaluation covers once finished."""
        return len(self.settings["queries"])

    @property
    def complete(self) -> bool:
        return self.finished == self.total and self.approximation is not None


# ---- names and method sets ------------------------------------------------------------


def evaluations_folder(run_path) -> Path:
    """Return the folder that holds the saved evaluations of the run at ``run_path``."""
    return Path(run_path) / EVALUATIONS_FOLDER


def check_name(name: str) -> str:
    """Return ``name`` when it can name an evaluation folder; raise ConfigError when not."""
    if not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME:
        raise ConfigError(
            f"an evaluation name needs 1 to {MAX_NAME} characters, each a letter, a digit, "
            f"'-', '_' or '.'; got {name!r}"
        )
    if name.startswith("."):
        raise ConfigError(f"an evaluation name must not start with '.'; got {name!r}")
    return name


def default_name(queries: int | None, seed: int) -> str:
    """Return the default evaluation name: ``n20-seed0``, or ``all-seed0`` for every query."""
    return f"{'all' if queries is None else f'n{queries}'}-seed{seed}"


def table_2_methods(loss: str) -> tuple[str, ...]:
    """Return the paper's Table 2 methods; CRIAGE only for runs trained with the ``bce`` loss."""
    families = ("NH", "CRIAGE", "GR-O", "GR") if loss == "bce" else ("NH", "GR-O", "GR")
    return tuple(f"{family}-{size}" for family in families for size in TABLE_2_SIZES)


def split_method(method: str) -> tuple[str, str]:
    """Return a method's family and size: ``GR-O-3`` -> ``("GR-O", "3")``."""
    family, _, size = method.rpartition("-")
    return family, size


# ---- finding and reading folders ------------------------------------------------------


def list_evaluations(run_path) -> list[Path]:
    """Return the run's evaluation folders (those with an evaluation.json), sorted by name."""
    folder = evaluations_folder(run_path)
    if not folder.is_dir():
        return []
    found = [
        path
        for path in folder.iterdir()
        if path.is_dir() and not path.name.startswith(".") and (path / "evaluation.json").is_file()
    ]
    return sorted(found, key=lambda path: path.name)


def read_json(path: Path):
    """Read one JSON file of an evaluation folder, or raise EvaluationReadError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EvaluationReadError(f"cannot read {path}: {error}") from None


def read_settings(folder) -> dict:
    """Return an evaluation's evaluation.json, checked for the keys this module reads."""
    path = Path(folder) / "evaluation.json"
    settings = read_json(path)
    if not isinstance(settings, dict):
        raise EvaluationReadError(f"{path} holds no settings object")
    missing = [key for key in ("run", "methods", "seed", "queries") if key not in settings]
    if missing:
        raise EvaluationReadError(f"{path} lacks {', '.join(missing)}")
    return settings


def read_approximation(folder) -> dict | None:
    """Return approximation.json (GR-1's fit), or None when the evaluation has not finished."""
    path = Path(folder) / "approximation.json"
    return read_json(path) if path.is_file() else None


def to_outcomes(rows: list[dict]) -> list[Outcome]:
    """Turn rows of rows.csv (as ``read_rows`` gives them) back into outcomes."""
    names = [field.name for field in dataclasses.fields(Outcome)]
    return [Outcome(**{name: row[name] for name in names}) for row in rows]


def finished_rows(rows: list[dict], methods: list[str]) -> list[dict]:
    """Keep the rows of queries that have a row for every method."""
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["query"]] = counts.get(row["query"], 0) + 1
    return [row for row in rows if counts[row["query"]] == len(methods)]


def read_evaluation(folder) -> SavedEvaluation:
    """Read an evaluation folder: settings, finished rows, summary and approximation.

    A finished evaluation's summary is its summary.json; one that stopped early
    is summarised here from the queries it finished.
    """
    folder = Path(folder)
    settings = read_settings(folder)
    try:
        rows = finished_rows(read_rows(folder / "rows.csv"), settings["methods"])
    except (OSError, KeyError, TypeError) as error:
        raise EvaluationReadError(f"cannot read {folder / 'rows.csv'}: {error!r}") from None
    finished = len({row["query"] for row in rows})

    approximation = read_approximation(folder)
    if finished == len(settings["queries"]) and approximation is not None:
        summary = read_json(folder / "summary.json")
    else:
        approximation = None
        computed = summarise(to_outcomes(rows))
        summary = {method: computed[method] for method in settings["methods"] if method in computed}
    return SavedEvaluation(folder, settings, rows, summary, approximation, finished)


# ---- significance ---------------------------------------------------------------------


def comparisons(methods) -> list[tuple[str, str]]:
    """Return ``(method, baseline)`` pairs: each method against NH and CRIAGE of its size."""
    present = set(methods)
    pairs = []
    for method in methods:
        family, size = split_method(method)
        if family == "NH":
            continue
        for baseline_family in BASELINE_FAMILIES:
            baseline = f"{baseline_family}-{size}"
            if baseline_family != family and baseline in present:
                pairs.append((method, baseline))
    return pairs


def significance(outcomes: list[Outcome], trials: int = 10_000) -> list[dict]:
    """Return an approximate randomization test per ``comparisons`` pair, on paired queries.

    Each entry: ``method``, ``baseline``, ``n`` (queries with both), ``pd_p`` and
    ``tc_p`` (p-values of the PD and TC differences).
    """
    by_query: dict[int, dict[str, Outcome]] = {}
    for outcome in outcomes:
        by_query.setdefault(outcome.query, {})[outcome.method] = outcome
    methods = list(dict.fromkeys(outcome.method for outcome in outcomes))

    tests = []
    for method, baseline in comparisons(methods):
        paired = [q for q in by_query.values() if method in q and baseline in q]
        if not paired:
            continue
        dropped = [[q[m].probability_dropped for q in paired] for m in (method, baseline)]
        changed = [[q[m].top1_changed for q in paired] for m in (method, baseline)]
        tests.append(
            {
                "method": method,
                "baseline": baseline,
                "n": len(paired),
                "pd_p": randomization_test(*dropped, trials=trials),
                "tc_p": randomization_test(*changed, trials=trials),
            }
        )
    return tests


# ---- weight constraints ---------------------------------------------------------------


def constraint_label(training: dict) -> str:
    """Return a run's weight constraint in words: ``none``, ``unit norm``, ``max norm 2``."""
    constraint = training.get("constraint", "none")
    if constraint == "max-norm":
        return f"max norm {float(training.get('max_norm', 1.0)):g}"
    return constraint.replace("-", " ")


def constraint_order(training: dict) -> tuple[int, float]:
    """Return a sort key: no constraint, unit norm, then max norms from small to large."""
    constraint = training.get("constraint", "none")
    rank = CONSTRAINTS.index(constraint) if constraint in CONSTRAINTS else len(CONSTRAINTS)
    bound = float(training.get("max_norm", 1.0)) if constraint == "max-norm" else 0.0
    return rank, bound


def settings_distance(training: dict, reference: dict) -> int:
    """Count the training settings, other than the weight constraint, that differ."""
    keys = (set(training) | set(reference)) - set(CONSTRAINT_SETTINGS)
    return sum(training.get(key) != reference.get(key) for key in keys)

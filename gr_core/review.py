"""Qualitative review of a run's explanations: the predictions to step through and the verdicts.

A reviewer steps through the test triples of a run, reads the model's filtered
top-1 prediction with its GR explanation, and judges the explanation
``plausible``, ``implausible`` or ``unsure``, with a free-text note.

The verdicts live in ``reviews.jsonl`` in the run folder: one JSON object per
verdict given, appended, and the last line for a test triple wins. Why lines
appended rather than one JSON document rewritten through a temporary file:

* saving a verdict is one small append, flushed and fsynced; earlier lines are
  never rewritten, so a crash can tear at most the line being written;
* two browser tabs saving at once each append a whole line, where a rewrite of
  the whole document would let the later writer drop the other's verdict;
* the history of changed verdicts is kept at no cost.

Reading skips a line that does not parse (a torn write) and counts it; an
append first ends a torn last line, so the new record starts on a line of its
own. Lines are written as ASCII JSON: quotes, backslashes and control characters
are escaped by JSON itself, and every non-ASCII character (Unicode line
separators and lone surrogates included) becomes a ``\\u`` escape, so notes and
names, HTML and all, read back exactly and no string can split a record.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import pandas as pd
import torch

from gr_core.errors import ConfigError

REVIEWS_FILE = "reviews.jsonl"
VERDICTS = ("plausible", "implausible", "unsure")
SHOWN = ("all", "correct", "wrong")  # which predictions to step through
NO_CATEGORY = "(no triple)"  # the summary's group for explanations without triples

Triple = tuple[str, str, str]


@dataclass(frozen=True)
class Review:
    """One verdict on the explanation of a test triple's prediction.

    Names are as in the data files. ``prediction`` is the filtered top-1 tail the
    explanation explained, ``top_category`` the category of its most influential
    triple ("" when it had none), ``time`` when the verdict was recorded (UTC).
    """

    head: str
    relation: str
    tail: str
    prediction: str
    verdict: str
    note: str = ""
    top_category: str = ""
    time: str = ""

    def __post_init__(self):
        for field in fields(self):
            if not isinstance(getattr(self, field.name), str):
                raise ConfigError(f"review field {field.name!r} must be text")
        if self.verdict not in VERDICTS:
            raise ConfigError(f"verdict must be one of {', '.join(VERDICTS)}; got {self.verdict!r}")

    @property
    def triple(self) -> Triple:
        """Return the test triple ``(head, relation, tail)`` the verdict belongs to."""
        return self.head, self.relation, self.tail

    @property
    def correct(self) -> bool:
        """Return whether the reviewed prediction is the test triple's tail."""
        return self.prediction == self.tail


@dataclass(frozen=True)
class ReviewLog:
    """The verdicts read from a run folder: the last one per test triple."""

    reviews: dict[Triple, Review]  # in the order each triple was first reviewed
    skipped: int = 0  # lines that could not be read, such as a torn last write


# ---- storage ----------------------------------------------------------------------------


def reviews_path(run_path) -> Path:
    """Return the path of the reviews file of a run folder."""
    return Path(run_path) / REVIEWS_FILE


def record_review(run_path, review: Review) -> Review:
    """Append a verdict to the run's reviews file, durably; return it with its time."""
    stamped = replace(review, time=datetime.datetime.now(datetime.UTC).isoformat())
    line = json.dumps(asdict(stamped), ensure_ascii=True) + "\n"
    path = reviews_path(run_path)
    created = not path.exists()

    with open(path, "a+b") as stream:
        # A torn last line gets its line end, so that this record stays readable.
        stream.seek(0, os.SEEK_END)
        if stream.tell() > 0:
            stream.seek(-1, os.SEEK_END)
            if stream.read(1) != b"\n":
                line = "\n" + line
        stream.write(line.encode("ascii"))  # one write: appends do not interleave
        stream.flush()
        os.fsync(stream.fileno())
    if created:
        _sync_folder(path.parent)
    return stamped


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk, so that a new file survives a crash."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_reviews(run_path) -> ReviewLog:
    """Read the run's verdicts (none when it has no reviews file); the last per triple wins."""
    path = reviews_path(run_path)
    if not path.is_file():
        return ReviewLog({})
    reviews: dict[Triple, Review] = {}
    skipped = 0
    for raw_line in path.read_bytes().split(b"\n"):
        if not raw_line.strip():
            continue
        review = _parse_line(raw_line)
        if review is None:
            skipped += 1
        else:
            reviews[review.triple] = review
    return ReviewLog(reviews, skipped)


def _parse_line(raw_line: bytes) -> Review | None:
    """Return the review on one line, or None when the line is not a whole review."""
    try:
        record = json.loads(raw_line.decode("utf-8"))
        return Review(**record)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ConfigError):
        return None


# ---- summaries and export ---------------------------------------------------------------


def reviews_table(reviews: Iterable[Review]) -> pd.DataFrame:
    """Return one row per verdict: the test triple, prediction, verdict, note and category."""
    columns = [field.name for field in fields(Review)]
    table = pd.DataFrame([asdict(review) for review in reviews], columns=columns)
    table.insert(4, "correct", table["prediction"] == table["tail"])
    return table.rename(columns={"top_category": "top category"})


# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def reviews_csv(reviews: Iterable[Review]) -> str:
    """Return the verdicts as CSV text, one row per test triple (``reviews_table``).

    A text cell that a spreadsheet would run as a formula (a note such as
    ``=HYPERLINK(...)``) gets a leading apostrophe, which spreadsheets show as
    text; ``reviews.jsonl`` keeps the text exactly as it was given.
    """
    return reviews_table(reviews).map(_as_text_cell).to_csv(index=False)


def _as_text_cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def verdict_counts(reviews: Iterable[Review], group: Callable[[Review], str]) -> pd.DataFrame:
    """Count the verdicts per group; add the number reviewed and the share plausible.

    The share plausible is plausible verdicts over all verdicts, unsure included.
    The table is indexed by group, in order of first appearance.
    """
    counts: dict[str, dict[str, int]] = {}
    for review in reviews:
        row = counts.setdefault(group(review), dict.fromkeys(VERDICTS, 0))
        row[review.verdict] += 1
    table = pd.DataFrame.from_dict(counts, orient="index", columns=list(VERDICTS))
    table = table.astype("int64")
    table["reviewed"] = table[list(VERDICTS)].sum(axis=1)
    table["share plausible"] = table["plausible"] / table["reviewed"]
    return table


def review_summary(reviews: Iterable[Review]) -> dict[str, pd.DataFrame]:
    """Return the verdict counts overall, by relation and by the top triple's category."""
    reviews = list(reviews)
    return {
        "overall": verdict_counts(reviews, lambda review: "all"),
        "relation": verdict_counts(reviews, lambda review: review.relation),
        "category": verdict_counts(reviews, lambda review: review.top_category or NO_CATEGORY),
    }


# ---- the predictions to review ----------------------------------------------------------


def top1_predictions(explainer, triples: torch.Tensor, batch_size: int = 1024) -> pd.DataFrame:
    """Return the filtered top-1 prediction of each test triple (n, 3), in one batched pass.

    Filtered as ``Explainer.best_unknown_tail``: tails that train or valid give
    the query are skipped, equal probabilities go to the lowest id. Columns:
    ``row`` (position in ``triples``), names of ``head``, ``relation``, ``tail``
    and ``prediction`` (None when every entity is a known tail), ``probability``
    of the prediction and ``correct`` (the prediction is the tail).
    """
    model, entities = explainer.model, explainer.entities
    best, best_probability = [], []
    for start in range(0, len(triples), batch_size):
        head, relation, _ = triples[start : start + batch_size].unbind(1)
        device = model.entity.device
        scores = model.score_all_tails(head.to(device), relation.to(device)).cpu()
        probabilities = torch.softmax(scores, dim=1)  # (batch, num_entities)
        known = explainer.known_tails.mask(head, relation, len(entities))
        top = probabilities.masked_fill(known, -1.0).max(dim=1)
        best += [None if value < 0 else int(index) for value, index in zip(*top, strict=True)]
        best_probability += top.values.clamp(min=0.0).tolist()

    table = pd.DataFrame(
        {
            "row": range(len(triples)),
            "head": [entities[h] for h in triples[:, 0].tolist()],
            "relation": [explainer.relations[r] for r in triples[:, 1].tolist()],
            "tail": [entities[t] for t in triples[:, 2].tolist()],
            "prediction": pd.Series(  # object dtype: None stays None, not NaN
                [None if index is None else entities[index] for index in best], dtype=object
            ),
            "probability": best_probability,
        }
    )
    table["correct"] = table["prediction"] == table["tail"]
    return table


def select_predictions(
    predictions: pd.DataFrame, shown: str = "all", relation: str | None = None
) -> pd.DataFrame:
    """Return the predictions to step through: all, correct or wrong ones, of one relation."""
    if shown not in SHOWN:
        raise ConfigError(f"shown must be one of {', '.join(SHOWN)}; got {shown!r}")
    keep = pd.Series(True, index=predictions.index)
    if shown != "all":
        keep &= predictions["correct"] == (shown == "correct")
    if relation is not None:
        keep &= predictions["relation"] == relation
    return predictions[keep].reset_index(drop=True)

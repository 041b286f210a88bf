"""MovieLens-100k as a knowledge graph: ``(user, rated-k, movie)`` triples, split by a seed.

As in the gradient-rollback paper, entities are the users and the movies, the
relations are the five ratings and every rating in ``u.data`` becomes one
triple ``(user:U, rated-R, movie:M)``. Movie labels are the titles in
``u.item`` (Latin-1); a title shared by several movies gets the movie id
appended. MovieLens has no link-prediction split, so the ratings are split
80/10/10 by a seed: ordered by ``sha256("<seed>:<user>:<movie>")`` (the same
on every machine and library version), the first 80% train, the next 10%
valid, the rest test; each split keeps the order of ``u.data``.

This module only reads and splits; ``gr_core.data`` turns the result into a
``Dataset`` (dropping valid/test triples unseen in train, as for any folder).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from gr_core.errors import DatasetError

RATINGS_FILE = "u.data"
MOVIES_FILE = "u.item"
DEFAULT_SPLIT_SEED = 0
RATINGS = (1, 2, 3, 4, 5)
SPLIT_SHARES = (0.8, 0.1)  # train, valid; test takes the rest
# Part of the content hash: a change to how ratings are split or named must
# not let an old run load against differently split data.
_SCHEME = b"movielens-100k/v1: sha256(seed:user:movie) order, 80/10/10, rated-R"

Triple = tuple[str, str, str]
Rating = tuple[int, int, int]  # user, movie, stars


@dataclass(frozen=True)
class MovieLensGraph:
    """The split triples of MovieLens-100k as keys, with labels and the content hash."""

    splits: dict[str, list[Triple]]  # train, valid, test
    entities: tuple[str, ...]  # users by number, then movies by number
    relations: tuple[str, ...]  # rated-1 .. rated-5
    labels: dict[str, str]  # entity or relation key -> readable label
    tail_candidates: frozenset[str]  # the movie keys
    content_hash: str


def user_key(user: int) -> str:
    """Return the entity key of a user id."""
    return f"user:{user}"


def movie_key(movie: int) -> str:
    """Return the entity key of a movie id."""
    return f"movie:{movie}"


def rating_key(stars: int) -> str:
    """Return the relation key of a rating."""
    return f"rated-{stars}"


def read_movielens(folder: Path, split_seed: int = DEFAULT_SPLIT_SEED) -> MovieLensGraph:
    """Read ``u.data`` and ``u.item`` from ``folder`` and split the ratings with ``split_seed``."""
    raw = {name: _read(folder / name) for name in (RATINGS_FILE, MOVIES_FILE)}
    ratings = _parse_ratings(folder / RATINGS_FILE, raw[RATINGS_FILE])
    titles = _parse_titles(folder / MOVIES_FILE, raw[MOVIES_FILE])
    unknown = sorted({movie for _, movie, _ in ratings} - set(titles))
    if unknown:
        raise DatasetError(
            f"{folder / RATINGS_FILE} rates movie(s) {unknown[:5]} that "
            f"{folder / MOVIES_FILE} does not list"
        )

    users = sorted({user for user, _, _ in ratings})
    movies = sorted({movie for _, movie, _ in ratings})
    labels = {user_key(user): f"user {user}" for user in users}
    labels |= {movie_key(movie): title for movie, title in _unique_titles(titles).items()}
    labels |= {rating_key(stars): _rating_label(stars) for stars in RATINGS}
    triples = [(user_key(u), rating_key(stars), movie_key(m)) for u, m, stars in ratings]
    return MovieLensGraph(
        splits=_split(ratings, triples, split_seed),
        entities=tuple(map(user_key, users)) + tuple(map(movie_key, movies)),
        relations=tuple(map(rating_key, RATINGS)),
        labels=labels,
        tail_candidates=frozenset(map(movie_key, movies)),
        content_hash=_content_hash(raw, split_seed),
    )


def _read(path: Path) -> bytes:
    """Return a file's bytes, or raise DatasetError naming it."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise DatasetError(f"cannot read {str(path)!r}: {error}") from error


def _parse_ratings(path: Path, data: bytes) -> list[Rating]:
    """Return (user, movie, stars) per line of ``u.data``, in file order."""
    ratings = []
    for number, line in enumerate(data.decode("latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise DatasetError(
                f"{path}, line {number}: found {len(fields)} tab-separated field(s), expected 4 "
                f"(user, movie, rating, timestamp): {line[:80]!r}"
            )
        user, movie, stars = (_integer(path, number, field) for field in fields[:3])
        if stars not in RATINGS:
            raise DatasetError(f"{path}, line {number}: rating {stars} is not 1 to 5")
        ratings.append((user, movie, stars))
    if not ratings:
        raise DatasetError(f"{path}: file is empty (no ratings)")
    return ratings


def _parse_titles(path: Path, data: bytes) -> dict[int, str]:
    """Return movie id -> title from ``u.item`` (``|``-separated, title in column 2)."""
    titles = {}
    for number, line in enumerate(data.decode("latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2 or not fields[1].strip():
            raise DatasetError(
                f"{path}, line {number}: expected movie id|title|..., got {line[:80]!r}"
            )
        titles[_integer(path, number, fields[0])] = fields[1].strip()
    return titles


def _integer(path: Path, number: int, field: str) -> int:
    """Return a field as an int, or raise DatasetError naming the line."""
    try:
        return int(field)
    except ValueError:
        raise DatasetError(f"{path}, line {number}: {field!r} is not a whole number") from None


def _unique_titles(titles: dict[int, str]) -> dict[int, str]:
    """Return the titles, with ``[movie N]`` appended to every title that several movies share."""
    counts: dict[str, int] = {}
    for title in titles.values():
        counts[title] = counts.get(title, 0) + 1
    return {
        movie: title if counts[title] == 1 else f"{title} [movie {movie}]"
        for movie, title in titles.items()
    }


def _rating_label(stars: int) -> str:
    """Return the readable label of a rating, e.g. 'rated 4 stars'."""
    return f"rated {stars} star{'' if stars == 1 else 's'}"


def _split(ratings: list[Rating], triples: list[Triple], seed: int) -> dict[str, list[Triple]]:
    """Return train/valid/test triples: 80/10/10 by each rating's seeded hash."""

    def order_key(index: int) -> bytes:
        user, movie, _ = ratings[index]
        return hashlib.sha256(f"{seed}:{user}:{movie}".encode()).digest()

    order = sorted(range(len(ratings)), key=order_key)
    train_end = round(SPLIT_SHARES[0] * len(order))
    valid_end = train_end + round(SPLIT_SHARES[1] * len(order))
    parts = {"train": order[:train_end], "valid": order[train_end:valid_end]}
    parts["test"] = order[valid_end:]
    return {split: [triples[i] for i in sorted(indices)] for split, indices in parts.items()}


def _content_hash(raw: dict[str, bytes], seed: int) -> str:
    """Return a sha256 over the scheme, the split seed and each file's name, length and bytes."""
    digest = hashlib.sha256(_SCHEME + b"\0" + f"split_seed={seed}".encode() + b"\0")
    for file_name in (RATINGS_FILE, MOVIES_FILE):
        data = raw[file_name]
        digest.update(file_name.encode("utf-8") + b"\0")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return f"sha256:{digest.hexdigest()}"

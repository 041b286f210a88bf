"""What an explanation is: the explained triple and its ranked training triples."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Path:
    """Two-hop paths ``head - via - tail`` formed by explanation triples.

    ``head_side`` and ``tail_side`` hold ranks (1-based, as in ``ExplanationRow.rank``)
    of the explanation triples that link the query's head with ``via`` and ``via``
    with the predicted tail (either direction).
    """

    via: int
    via_name: str
    head_side: tuple[int, ...]
    tail_side: tuple[int, ...]


@dataclass(frozen=True)
class ExplanationRow:
    """One training triple of an explanation."""

    rank: int  # 1 = most influential
    triple_index: int  # row in the training file and in the ledger
    head: int
    relation: int
    tail: int
    head_name: str
    relation_name: str
    tail_name: str
    influence: float  # drop of Pr(tail | head, relation) when this triple is rolled back
    probability_after: float  # the probability GR predicts after removal
    category: str
    via: int | None = None  # the middle entity, for two-hop path rows


@dataclass(frozen=True)
class Explanation:
    """Why the model predicts ``tail`` for ``(head, relation, ?)``.

    ``probability`` is ``Pr(tail | head, relation)`` of the trained model;
    ``rows`` are ordered by rank; ``num_neighbours`` counts the candidates the
    method chose from.
    """

    method: str
    head: int
    relation: int
    tail: int
    head_name: str
    relation_name: str
    tail_name: str
    probability: float
    num_neighbours: int
    rows: list[ExplanationRow] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    def only(self, categories) -> Explanation:
        """Return the explanation restricted to rows of ``categories``, ranks unchanged.

        A two-hop path is kept only while triples on both of its sides are.
        """
        rows = [row for row in self.rows if row.category in categories]
        ranks = {row.rank for row in rows}
        paths = [
            path
            for path in self.paths
            if ranks.intersection(path.head_side) and ranks.intersection(path.tail_side)
        ]
        return replace(self, rows=rows, paths=paths)

    def to_dict(self) -> dict:
        """Return the documented JSON form (names as in the data set)."""
        return {
            "method": self.method,
            "query": {"head": self.head_name, "relation": self.relation_name},
            "prediction": {"tail": self.tail_name, "probability": self.probability},
            "num_neighbours": self.num_neighbours,
            "explanations": [
                {
                    "rank": row.rank,
                    "head": row.head_name,
                    "relation": row.relation_name,
                    "tail": row.tail_name,
                    "influence": row.influence,
                    "probability_after": row.probability_after,
                    "category": row.category,
                    "triple_index": row.triple_index,
                }
                for row in self.rows
            ],
            "paths": [asdict(path) for path in self.paths],
        }

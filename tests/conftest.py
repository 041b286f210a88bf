"""Shared pytest settings and fixtures: a tiny named graph, Nations, seeded models."""

from types import SimpleNamespace

import pytest
import torch

from gr_core.data import load_dataset
from gr_core.models import build_model, model_width

PEOPLE = ("alice", "bob", "carol", "dave", "erin")
RELATIONS = ("knows", "likes", "mentors")
TINY_TRIPLES = (
    ("alice", "knows", "bob"),
    ("bob", "knows", "carol"),  # its head is the tail of the triple above
    ("carol", "knows", "dave"),
    ("dave", "knows", "erin"),
    ("alice", "likes", "alice"),  # a self-loop
    ("alice", "likes", "carol"),
    ("bob", "likes", "erin"),
    ("erin", "likes", "dave"),
    ("alice", "mentors", "dave"),
    ("carol", "mentors", "bob"),
    ("dave", "mentors", "alice"),
    ("erin", "mentors", "carol"),
)


def pytest_configure(config):
    """Register the custom markers."""
    config.addinivalue_line("markers", "slow: retraining-heavy or large-data tests")


@pytest.fixture
def tiny_graph():
    """Five people, three relations, a dozen triples (n, 3) with a self-loop at row 4."""
    ids = [
        (PEOPLE.index(head), RELATIONS.index(relation), PEOPLE.index(tail))
        for head, relation, tail in TINY_TRIPLES
    ]
    return SimpleNamespace(
        entities=PEOPLE,
        relations=RELATIONS,
        triples=torch.tensor(ids, dtype=torch.long),
        num_entities=len(PEOPLE),
        num_relations=len(RELATIONS),
        self_loop_row=4,
    )


@pytest.fixture(scope="session")
def nations():
    """The built-in Nations data set (14 entities, 55 relations)."""
    return load_dataset("nations")


@pytest.fixture
def make_model():
    """Return a factory of float64 models with seeded normal tables for a graph."""

    def factory(name, graph, dim=3, seed=0):
        generator = torch.Generator().manual_seed(seed)
        width = model_width(name, dim)
        entity = torch.randn(graph.num_entities, width, generator=generator, dtype=torch.float64)
        relation = torch.randn(graph.num_relations, width, generator=generator, dtype=torch.float64)
        return build_model(name, entity, relation)

    return factory

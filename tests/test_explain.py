"""Predictions and explanations of a trained Nations run, through the library and the CLI."""

import json

import pytest
import torch

from gr_core.categories import CATEGORIES, categorise
from gr_core.cli import main
from gr_core.config import DEFAULT
from gr_core.errors import ConfigError, RunFormatError, UnknownNameError
from gr_core.explain import Explainer, NoLedgerError
from gr_core.runs import load_run, load_run_with_dataset, save_run
from gr_core.training import train
from tests.test_influence import reference_rollback

CONFIG = DEFAULT.replace(epochs=20)


@pytest.fixture(scope="module")
def run_path(tmp_path_factory, nations):
    path = tmp_path_factory.mktemp("runs") / "nations"
    return save_run(path, nations, CONFIG, train(nations, CONFIG))


@pytest.fixture(scope="module")
def explainer(run_path):
    return Explainer(*load_run_with_dataset(run_path))


def known_tails(dataset, head, relation):
    known = torch.cat((dataset.train, dataset.valid))
    match = (known[:, 0] == head) & (known[:, 1] == relation)
    return set(known[match, 2].tolist())


def test_predictions_are_filtered_sorted_and_marked(explainer, nations):
    head, relation = nations.entity_id("usa"), nations.relation_id("embassy")
    known = known_tails(nations, head, relation)
    scores = explainer.model.score_all_tails(torch.tensor([head]), torch.tensor([relation]))[0]
    probabilities = torch.softmax(scores, 0)

    filtered = explainer.predict("usa", "embassy", k=20)
    assert [p.tail for p in filtered] == sorted(
        set(range(nations.num_entities)) - known, key=lambda e: -probabilities[e]
    )
    assert not any(p.known for p in filtered)
    assert all(abs(p.probability - float(probabilities[p.tail])) < 1e-6 for p in filtered)
    assert [p.rank for p in filtered] == list(range(1, len(filtered) + 1))

    everything = explainer.predict("usa", "embassy", k=3, filtered=False)
    assert len(everything) == 3
    assert [p.known for p in everything] == [p.tail in known for p in everything]
    assert everything[0].tail == int(probabilities.argmax())


def test_tied_predictions_share_a_rank(run_path, nations):
    run, dataset = load_run_with_dataset(run_path)
    run.model.entity[:] = 0.0  # every tail scores 0: one big tie
    predictions = Explainer(run, dataset).predict("usa", "embassy", k=5)
    assert {p.rank for p in predictions} == {1}
    assert [p.tail for p in predictions] == sorted(p.tail for p in predictions)


def test_explains_the_filtered_top_prediction_by_default(explainer):
    top = explainer.predict("brazil", "treaties", k=1)[0]
    explanation = explainer.explain("brazil", "treaties")
    assert explanation.tail == top.tail
    assert explanation.probability == pytest.approx(top.probability)


def test_gr_rows_are_the_most_influential_neighbours(explainer, nations):
    explanation = explainer.explain("usa", "embassy", k=10)
    query = (explanation.head, explanation.relation, explanation.tail)
    neighbours = explainer.index.neighbours(*query)
    after = reference_rollback(explainer.model, explainer.ledger, nations.train, neighbours, query)
    influence = explanation.probability - after

    best = torch.sort(influence, descending=True, stable=True).indices[:10]
    assert [row.triple_index for row in explanation.rows] == neighbours[best].tolist()
    for row in explanation.rows:
        position = neighbours.tolist().index(row.triple_index)
        assert row.influence == pytest.approx(float(influence[position]), abs=1e-6)
        assert row.probability_after == pytest.approx(float(after[position]), abs=1e-6)
        assert (row.head, row.relation, row.tail) == tuple(nations.train[row.triple_index].tolist())
    assert explanation.num_neighbours == len(neighbours)


def test_all_positive_keeps_exactly_the_positive_influences(explainer):
    explanation = explainer.explain("usa", "embassy", method="all-positive")
    influences = [row.influence for row in explanation.rows]
    assert all(value > 0 for value in influences)
    assert influences == sorted(influences, reverse=True)

    everything = explainer.explain("usa", "embassy", k=10**6)
    assert len(everything.rows) == everything.num_neighbours
    assert len(explanation.rows) == sum(row.influence > 0 for row in everything.rows)


def test_gr_o_uses_only_neighbours_that_end_in_the_prediction(explainer, nations):
    explanation = explainer.explain("usa", "embassy", method="gr-o", k=5)
    assert explanation.rows
    assert all(row.tail == explanation.tail for row in explanation.rows)
    candidates = nations.train[explainer.index.neighbours(
        explanation.head, explanation.relation, explanation.tail
    )]  # fmt: skip
    assert explanation.num_neighbours == int((candidates[:, 2] == explanation.tail).sum())


def test_first_order_ranks_by_the_linear_estimate(explainer):
    exact = explainer.explain("uk", "intergovorgs", k=5)
    linear = explainer.explain("uk", "intergovorgs", k=5, method="first-order")
    assert linear.tail == exact.tail
    for row in linear.rows:
        assert row.probability_after == pytest.approx(linear.probability - row.influence)
    assert [r.influence for r in linear.rows] == sorted((r.influence for r in linear.rows),
                                                        reverse=True)  # fmt: skip


def test_rows_carry_categories_and_paths(explainer, nations):
    explanation = explainer.explain("usa", "embassy", k=30)
    triples = torch.tensor([[r.head, r.relation, r.tail] for r in explanation.rows])
    categories, paths = categorise(
        explanation.head, explanation.relation, explanation.tail, triples
    )
    assert [row.category for row in explanation.rows] == categories
    assert set(categories) <= set(CATEGORIES)
    for path in explanation.paths:
        for rank in (*path.head_side, *path.tail_side):
            assert explanation.rows[rank - 1].via == path.via
            assert explanation.rows[rank - 1].category == "two-hop path"
    assert len(explanation.paths) == len(paths)


def test_chunk_size_does_not_change_the_explanation(explainer):
    whole = explainer.explain("china", "economicaid", k=8)
    chunked = explainer.explain("china", "economicaid", k=8, chunk_size=7)
    assert [r.triple_index for r in chunked.rows] == [r.triple_index for r in whole.rows]
    # Influences are differences of float32 probabilities; chunks of another shape
    # round the matrix products differently, by about one unit in the last place.
    assert [r.influence for r in chunked.rows] == pytest.approx(
        [r.influence for r in whole.rows], rel=1e-5, abs=1e-7
    )


def test_bad_names_and_settings_are_reported(explainer, run_path, nations):
    with pytest.raises(UnknownNameError, match="did you mean 'usa'"):
        explainer.explain("usaa", "embassy")
    with pytest.raises(UnknownNameError, match="embassy"):
        explainer.explain("usa", "embasy")
    with pytest.raises(ConfigError, match="method must be one of"):
        explainer.explain("usa", "embassy", method="magic")
    with pytest.raises(ConfigError, match="k must be at least 1"):
        explainer.explain("usa", "embassy", k=0)
    with pytest.raises(NoLedgerError, match="has no ledger"):
        Explainer(load_run(run_path, load_ledger=False), nations)


def test_a_run_whose_data_changed_cannot_be_explained(tmp_path, nations):
    folder = tmp_path / "graph"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        lines = [f"{nations.entities[h]}\t{nations.relations[r]}\t{nations.entities[t]}"
                 for h, r, t in getattr(nations, split).tolist()]  # fmt: skip
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    from gr_core.data import load_dataset

    dataset = load_dataset(folder)
    config = CONFIG.replace(epochs=1)
    path = save_run(tmp_path / "run", dataset, config, train(dataset, config))
    assert load_run_with_dataset(path)[1].content_hash == dataset.content_hash

    with open(folder / "train.txt", "a") as stream:
        stream.write("usa\tembassy\tchina\n")
    with pytest.raises(RunFormatError, match="the files changed"):
        load_run_with_dataset(path)


def test_cli_prints_the_documented_json(run_path, capsys):
    code = main(["explain", "--run", str(run_path), "--head", "usa", "--relation", "embassy",
                 "--k", "4", "--json"])  # fmt: skip
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) >= {"query", "prediction", "explanations"}
    assert document["query"] == {"head": "usa", "relation": "embassy"}
    assert set(document["prediction"]) == {"tail", "probability"}
    assert len(document["explanations"]) == 4
    for item in document["explanations"]:
        assert set(item) >= {"head", "relation", "tail", "influence", "probability_after",
                             "category", "rank"}  # fmt: skip
        assert item["probability_after"] == pytest.approx(
            document["prediction"]["probability"] - item["influence"]
        )
    assert [item["rank"] for item in document["explanations"]] == [1, 2, 3, 4]


def test_cli_table_and_errors(run_path, capsys):
    assert main(["explain", "--run", str(run_path), "--head", "usa", "--relation", "embassy",
                 "--tail", "china", "--method", "gr-o", "--k", "3"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "prediction  china" in out
    assert out.count("china)") == 3  # every GR-O triple ends in the explained tail

    assert main(["explain", "--run", str(run_path), "--head", "usaa", "--relation", "embassy"]) == 2
    assert "unknown entity 'usaa'; did you mean 'usa'" in capsys.readouterr().err


def test_only_keeps_chosen_categories_and_whole_paths(explainer):
    explanation = explainer.explain("usa", "embassy", k=30)
    assert explanation.paths, "the query should have two-hop paths"
    kept = explanation.only(["two-hop path"])
    assert kept.rows and all(row.category == "two-hop path" for row in kept.rows)
    assert [row.rank for row in kept.rows] == [
        row.rank for row in explanation.rows if row.category == "two-hop path"
    ]
    assert kept.paths == explanation.paths
    assert explanation.only(["shared relation"]).paths == []

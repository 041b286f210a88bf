"""MovieLens-100k: users and movies as entities, ratings as relations, a seeded split."""

import shutil
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch

from gr_core.cli import main
from gr_core.config import DEFAULT
from gr_core.data import DatasetWarning, load_dataset
from gr_core.errors import DatasetError
from gr_core.explain import Explainer
from gr_core.external import DATA_DIR_VARIABLE
from gr_core.metrics import TailFilter, filtered_ranks
from gr_core.movielens import DEFAULT_SPLIT_SEED
from gr_core.review import top1_predictions
from gr_core.runs import load_run_with_dataset, save_run
from gr_core.training import train
from tests.pages import copy_to_runs_folder, open_page
from tests.test_external import shared_data_dir
from tests.test_metrics import brute_force_ranks, known_tails_by_query

README_RATING_COUNTS = {1: 6_110, 2: 11_370, 3: 27_145, 4: 34_174, 5: 21_201}
TITLES = {
    1: "Toy Story (1995)",
    2: "Café Society (1995)",  # Latin-1 in u.item
    3: "Chasing Amy (1997)",
    4: "Chasing Amy (1997)",  # the same title twice, as in the real file
    5: "Heat (1995)",
    6: "Fargo (1996)",
}
USERS = range(1, 7)


def write_tiny_movielens(folder: Path) -> Path:
    """Write six users who each rate all six movies (stars from a fixed rule); return it."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{user}\t{movie}\t{1 + (user * movie) % 5}\t{880000000 + 10 * user + movie}\n"
        for user in USERS
        for movie in TITLES
    ]
    (folder / "u.data").write_text("".join(lines), encoding="ascii")
    items = "".join(
        f"{movie}|{title}|01-Jan-1995||http://x|0|1\n" for movie, title in TITLES.items()
    )
    (folder / "u.item").write_bytes(items.encode("latin-1"))
    return folder


def load_quietly(*args, **kwargs):
    """Load a data set, ignoring the warning about dropped valid/test triples."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return load_dataset(*args, **kwargs)


def rating_rows(folder: Path) -> list[tuple[int, int, int]]:
    """Return (user, movie, stars) per line of u.data, read without gr_core."""
    lines = (folder / "u.data").read_text(encoding="latin-1").splitlines()
    return [tuple(int(field) for field in line.split("\t")[:3]) for line in lines if line]


def key_triples(dataset, split: str) -> set[tuple[str, str, str]]:
    """Return one split's triples as (head, relation, tail) keys."""
    entities, relations = dataset.entities, dataset.relations
    return {
        (entities[h], relations[r], entities[t]) for h, r, t in getattr(dataset, split).tolist()
    }


# ---- the mapping, on a tiny folder ---------------------------------------------------------


def test_ratings_become_user_rating_movie_triples(tmp_path):
    folder = write_tiny_movielens(tmp_path / "ml")
    dataset = load_quietly(folder)
    expected = {(f"user:{u}", f"rated-{s}", f"movie:{m}") for u, m, s in rating_rows(folder)}
    splits = [key_triples(dataset, split) for split in ("train", "valid", "test")]
    assert set().union(*splits) == expected  # nothing dropped: every user rates every movie
    assert sum(map(len, splits)) == len(expected) == 36  # and no triple in two splits
    assert [len(split) for split in splits] == [29, 4, 3]  # 80% of 36 is 28.8

    assert dataset.entities[:6] == tuple(f"user:{u}" for u in USERS)
    assert dataset.entities[6:] == tuple(f"movie:{m}" for m in TITLES)
    assert dataset.relations == tuple(f"rated-{s}" for s in range(1, 6))
    assert dataset.relation_labels[:2] == ("rated 1 star", "rated 2 stars")
    assert dataset.split_seed == DEFAULT_SPLIT_SEED


def test_labels_are_user_numbers_and_unique_titles(tmp_path):
    dataset = load_quietly(write_tiny_movielens(tmp_path / "ml"))
    labels = dict(zip(dataset.entities, dataset.entity_labels, strict=True))
    assert labels["user:3"] == "user 3"
    assert labels["movie:1"] == "Toy Story (1995)"
    assert labels["movie:2"] == "Café Society (1995)"
    assert labels["movie:3"] == "Chasing Amy (1997) [movie 3]"
    assert labels["movie:4"] == "Chasing Amy (1997) [movie 4]"
    assert len(set(dataset.entity_labels)) == dataset.num_entities
    assert dataset.entity_id("Heat (1995)") == dataset.entities.index("movie:5")


def test_tail_candidates_are_the_movies(tmp_path):
    dataset = load_quietly(write_tiny_movielens(tmp_path / "ml"))
    movies = [key.startswith("movie:") for key in dataset.entities]
    assert dataset.tail_candidates.tolist() == movies
    assert dataset.tail_candidates[dataset.train[:, 2]].all()
    assert not dataset.tail_candidates[dataset.train[:, 0]].any()
    assert load_dataset("nations").tail_candidates is None


def test_queries_start_from_users_only(tmp_path):
    dataset = load_quietly(write_tiny_movielens(tmp_path / "ml"))
    users = [key for key in dataset.entities if key.startswith("user:")]
    assert dataset.query_heads == tuple(users) and len(users) == len(USERS)
    nations = load_dataset("nations")
    assert nations.query_heads == nations.entities


def test_the_hash_covers_both_files_and_the_seed_but_not_the_place(tmp_path):
    folder = write_tiny_movielens(tmp_path / "ml")
    first = load_quietly(folder)
    copy = shutil.copytree(folder, tmp_path / "elsewhere" / "copy")
    assert load_quietly(copy).content_hash == first.content_hash
    assert load_quietly(folder, split_seed=1).content_hash != first.content_hash

    for file_name, old, new in (("u.item", b"Heat", b"Hear"), ("u.data", b"880000", b"880001")):
        changed = shutil.copytree(folder, tmp_path / f"changed-{file_name}")
        path = changed / file_name
        path.write_bytes(path.read_bytes().replace(old, new, 1))
        assert load_quietly(changed).content_hash != first.content_hash


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1\t1\t3\n", r"u\.data, line 37: found 3 tab-separated field\(s\), expected 4"),
        ("1\t1\t6\t0\n", r"u\.data, line 37: rating 6 is not 1 to 5"),
        ("1\tx\t3\t0\n", r"u\.data, line 37: 'x' is not a whole number"),
        ("1\t9\t3\t0\n", r"rates movie\(s\) \[9\] that .*u\.item does not list"),
    ],
)
def test_a_bad_rating_line_is_named(tmp_path, line, message):
    folder = write_tiny_movielens(tmp_path / "ml")
    with open(folder / "u.data", "a", encoding="ascii") as stream:
        stream.write(line)
    with pytest.raises(DatasetError, match=message):
        load_dataset(folder)


# ---- the shared copy of MovieLens-100k -----------------------------------------------------


@pytest.fixture(scope="module")
def movielens():
    data_dir = shared_data_dir("ml-100k")
    return data_dir / "ml-100k", load_quietly("ml-100k", data_dir=data_dir)


def test_movielens_counts_match_the_readme(movielens):
    folder, dataset = movielens
    ratings = rating_rows(folder)
    assert Counter(stars for _, _, stars in ratings) == README_RATING_COUNTS
    assert len({user for user, _, _ in ratings}) == 943
    assert len({movie for _, movie, _ in ratings}) == 1_682

    # Every user is in train; a few rarely rated movies occur only in valid/test and are
    # dropped with their triples, as for any data set.
    users = [key for key in dataset.entities if key.startswith("user:")]
    movies = [key for key in dataset.entities if key.startswith("movie:")]
    assert len(users) == 943 and len(users) + len(movies) == dataset.num_entities
    rare = {f"movie:{movie}" for _, movie, _ in ratings} - set(movies)
    assert 0 < len(rare) < 50
    assert dataset.num_relations == 5

    # Ratings per star over the three splits, counted from the tensors and from u.data.
    per_relation = Counter(
        dataset.relations[r] for split in (dataset.train, dataset.valid, dataset.test)
        for r in split[:, 1].tolist()
    )  # fmt: skip
    kept = [s for u, m, s in ratings if f"movie:{m}" not in rare and f"user:{u}" in users]
    assert per_relation == Counter({f"rated-{s}": n for s, n in Counter(kept).items()})
    dropped = sum(dataset.report.dropped.values())
    assert sum(per_relation.values()) + dropped == 100_000


def test_movielens_split_is_80_10_10_and_seeded(movielens):
    folder, dataset = movielens
    data_dir = folder.parent
    dropped = dataset.report.dropped
    assert len(dataset.train) == 80_000
    assert abs(len(dataset.valid) + dropped["valid"] - 10_000) <= 1
    assert abs(len(dataset.test) + dropped["test"] - 10_000) <= 1

    again = load_quietly("ml-100k", data_dir=data_dir)
    assert torch.equal(again.train, dataset.train) and torch.equal(again.test, dataset.test)
    assert again.content_hash == dataset.content_hash

    other = load_quietly("ml-100k", data_dir=data_dir, split_seed=7)
    assert other.split_seed == 7 and other.content_hash != dataset.content_hash
    shared = key_triples(other, "train") & key_triples(dataset, "train")
    assert abs(len(shared) - 64_000) < 1_000  # independent draws: 0.8 * 0.8 of 100,000


def test_movielens_labels_are_titles(movielens):
    _, dataset = movielens
    labels = dict(zip(dataset.entities, dataset.entity_labels, strict=True))
    assert labels["movie:1"] == "Toy Story (1995)"
    assert labels["user:196"] == "user 196"
    assert labels["movie:246"] == "Chasing Amy (1997) [movie 246]"
    assert labels["movie:268"] == "Chasing Amy (1997) [movie 268]"
    assert len(set(dataset.entity_labels)) == dataset.num_entities


# ---- users are never predicted -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run_path(tmp_path_factory):
    """Train on the tiny MovieLens folder, split with seed 3; return (run path, data folder)."""
    root = tmp_path_factory.mktemp("movielens")
    write_tiny_movielens(root / "data" / "ml-100k")
    dataset = load_quietly("ml-100k", data_dir=root / "data", split_seed=3)
    config = DEFAULT.replace(epochs=20, dim=8)
    return save_run(root / "run", dataset, config, train(dataset, config)), root / "data"


@pytest.fixture
def tiny_run(tiny_run_path, monkeypatch):
    """Load the tiny MovieLens run afresh, its data found through GR_DATA_DIR."""
    path, data_dir = tiny_run_path
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(data_dir))
    return load_run_with_dataset(path)


def test_a_movielens_run_reloads_with_its_split_seed(tiny_run, tiny_run_path):
    run, dataset = tiny_run
    assert run.config["dataset"]["source"] == "ml-100k"
    assert run.config["dataset"]["split_seed"] == dataset.split_seed == 3
    assert dataset.content_hash == run.dataset_hash
    assert dataset.content_hash != load_quietly("ml-100k", data_dir=tiny_run_path[1]).content_hash


def users_score_highest(run, dataset, head: int, relation: int) -> None:
    """Make every other user the model's likeliest tail of ``(head, relation, ?)``."""
    entity, relation_rows = run.model.entity, run.model.relation
    with torch.no_grad():
        direction = entity[head] * relation_rows[relation]  # DistMult: score = <e_h * w_r, e_t>
        users = ~dataset.tail_candidates
        users[head] = False
        entity[users] = 100 * direction / direction.norm()


def test_predictions_never_include_a_user(tiny_run):
    run, dataset = tiny_run
    head, relation = dataset.entity_id("user 2"), dataset.relation_id("rated-4")
    users_score_highest(run, dataset, head, relation)
    explainer = Explainer(run, dataset)
    scores = run.model.score_all_tails(torch.tensor([head]), torch.tensor([relation]))[0]
    assert not dataset.tail_candidates[int(scores.argmax())]  # without candidates: a user

    movies = set(torch.nonzero(dataset.tail_candidates)[:, 0].tolist())
    everything = explainer.predict(head, relation, k=100, filtered=False)
    assert {p.tail for p in everything} == movies
    filtered = explainer.predict(head, relation, k=100)
    assert {p.tail for p in filtered} <= movies and not any(p.known for p in filtered)
    assert explainer.best_unknown_tail(head, relation, torch.softmax(scores, 0)) in movies
    assert explainer.explain(head, relation).tail == filtered[0].tail

    predictions = top1_predictions(explainer, dataset.test)["prediction"]
    assert all(name.startswith("movie:") for name in predictions)


def test_metrics_rank_among_movies_only(tmp_path, make_model):
    dataset = load_quietly(write_tiny_movielens(tmp_path / "ml"))
    model = make_model("distmult", dataset, dim=4)  # random: users often outscore the answer
    known = torch.cat((dataset.train, dataset.valid, dataset.test))
    candidates = TailFilter(known, dataset.num_relations, dataset.tail_candidates)
    ranks = filtered_ranks(model, dataset.test, candidates)

    # Brute force: users are filtered out like known tails.
    users = set(torch.nonzero(~dataset.tail_candidates)[:, 0].tolist())
    left_out = {query: tails | users for query, tails in known_tails_by_query(known).items()}
    expected = brute_force_ranks(model, dataset.test, left_out).to(ranks.dtype)
    torch.testing.assert_close(ranks, expected, rtol=0, atol=0)
    everyone = filtered_ranks(model, dataset.test, TailFilter(known, dataset.num_relations))
    assert (ranks <= everyone).all() and (ranks < everyone).any()


def test_split_seed_flag_of_train(tmp_path, capsys):
    folder = write_tiny_movielens(tmp_path / "ml")
    args = ["train", "--dataset", str(folder), "--epochs", "1", "--dim", "4", "--no-progress"]
    assert main([*args, "--split-seed", "5", "--out", str(tmp_path / "run")]) == 0
    run, dataset = load_run_with_dataset(tmp_path / "run")
    assert run.config["dataset"]["split_seed"] == dataset.split_seed == 5
    assert dataset.content_hash == load_quietly(folder, split_seed=5).content_hash

    # A data set that comes split has no split to seed.
    assert main(["train", "--split-seed", "5", "--out", str(tmp_path / "nations")]) == 2
    assert "split_seed applies only to MovieLens" in capsys.readouterr().err


def test_the_explain_page_asks_about_users_and_answers_with_movies(
    tiny_run_path, tmp_path, monkeypatch
):
    path, data_dir = tiny_run_path
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(data_dir))
    copy_to_runs_folder(path, tmp_path / "runs", monkeypatch)
    app = open_page("explain", run=path.name)

    assert app.selectbox(key="explain_head").options == [f"user {user}" for user in USERS]
    (table,) = [frame.value for frame in app.dataframe if "probability" in frame.value.columns]
    _, dataset = load_run_with_dataset(path)
    pairs = zip(dataset.entities, dataset.entity_labels, strict=True)
    movie_labels = {label for key, label in pairs if key.startswith("movie:")}
    assert len(table) and set(table["tail"]) <= movie_labels

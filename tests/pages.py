"""Helpers of the page tests: open a dashboard page with AppTest, and make the runs it shows.

A page test points ``GR_RUNS_DIR`` at a runs folder of its own, then opens the
page as a link with query parameters would: app.py runs first (the router and
its sidebar), then switches to the page.
"""

import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

from gr_core import PRESETS, load_dataset, save_run, train

APP = Path(__file__).resolve().parents[1] / "app.py"
SHORT = PRESETS["default"].replace(epochs=3, dim=8)  # a short run, quick to train
HOSTILE = "<img src=x onerror=alert(1)>"  # an entity name that is also HTML


def open_page(page: str, timeout: int = 120, **params) -> AppTest:
    """Open ``pages/<page>.py`` through app.py as a link with these query parameters would."""
    app = AppTest.from_file(str(APP), default_timeout=timeout)
    app.query_params.update({key: str(value) for key, value in params.items()})
    app.run()
    app.switch_page(f"pages/{page}.py").run()
    assert not app.exception, app.exception
    return app


def save_trained(folder: Path, dataset, config) -> Path:
    """Train a model on ``dataset`` and save it as the run ``folder``; return the folder."""
    return save_run(folder, dataset, config, train(dataset, config))


def use_runs_folder(root: Path, monkeypatch) -> Path:
    """Point the dashboard at the runs folder ``root`` for this test; return it."""
    monkeypatch.setenv("GR_RUNS_DIR", str(root))
    return root


def copy_to_runs_folder(run: Path, root: Path, monkeypatch) -> Path:
    """Copy a saved run into the runs folder ``root`` and point the dashboard there.

    Return the copy: a test may write into it without reaching other tests.
    """
    shutil.copytree(run, root / run.name)
    use_runs_folder(root, monkeypatch)
    return root / run.name


def write_hostile_graph(folder: Path, entity_names: str = "") -> Path:
    """Write a data set of five people, one named like an HTML tag; return its folder.

    ``entity_names`` is the text of entity_names.tsv; empty: no such file.
    """
    folder.mkdir()
    people = [HOSTILE, "ann", "ben", "cas", "dee"]
    train_lines = [
        f"{people[i]}\t{relation}\t{people[(i + step) % 5]}"
        for i in range(5)
        for step, relation in ((1, "likes"), (2, "knows"), (3, "likes"))
    ]
    (folder / "train.txt").write_text("\n".join(train_lines) + "\n", encoding="utf-8")
    (folder / "valid.txt").write_text(f"ann\tknows\t{HOSTILE}\n", encoding="utf-8")
    (folder / "test.txt").write_text(f"{HOSTILE}\tknows\tben\n", encoding="utf-8")
    if entity_names:
        (folder / "entity_names.tsv").write_text(entity_names, encoding="utf-8")
    return folder


CITIES = 3_000  # more heads than the Explain page's selector lists at once


def city(i: int) -> str:
    """Return the key of city ``i`` of the ring (modulo ``CITIES``)."""
    return f"city-{i % CITIES:04d}"


def write_city_ring(folder: Path) -> Path:
    """Write a ring of ``CITIES`` cities, two labelled "Springfield"; return its folder.

    Each city borders the next and trades with the seventh after it; the test
    triples are city 40 and 41 trading further along the ring.
    """
    folder.mkdir()
    train = [f"{city(i)}\tborders\t{city(i + 1)}" for i in range(CITIES)]
    train += [f"{city(i)}\ttrades with\t{city(i + 7)}" for i in range(CITIES)]
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "valid.txt").write_text(f"{city(5)}\tborders\t{city(6)}\n")
    test = [(40, 14), (41, 14), (40, 21)]
    (folder / "test.txt").write_text(
        "".join(f"{city(i)}\ttrades with\t{city(i + step)}\n" for i, step in test)
    )
    (folder / "entity_names.tsv").write_text("city-0007\tSpringfield\ncity-0008\tSpringfield\n")
    return folder


def save_city_run(tmp_path_factory, name: str = "cities") -> Path:
    """Train a short run on the city ring into a new runs folder; return the folder."""
    folder = write_city_ring(tmp_path_factory.mktemp("cities") / "data")
    root = tmp_path_factory.mktemp("cities-runs")
    save_trained(root / name, load_dataset(folder), PRESETS["default"].replace(epochs=1, dim=8))
    return root

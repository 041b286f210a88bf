"""The Data page driven through app.py with AppTest, checked against the raw data files."""

import base64
import json
from collections import Counter
from functools import partial

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from gr_core.data import DATA_DIR
from tests.pages import SHORT, open_page, save_trained, use_runs_folder

RUN = "nations-short"


def raw_triples(split: str) -> list[list[str]]:
    """Read a Nations split straight from its file."""
    text = (DATA_DIR / "nations" / f"{split}.txt").read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory, nations):
    """A runs folder holding one short Nations run."""
    root = tmp_path_factory.mktemp("data-page") / "runs"
    save_trained(root / RUN, nations, SHORT)
    return root


@pytest.fixture
def runs_root(runs_folder, monkeypatch):
    return use_runs_folder(runs_folder, monkeypatch)


open_data_page = partial(open_page, "data")


def chart_data(app: AppTest, key: str) -> dict:
    """Return the first trace of the plotly chart with ``key``, typed arrays decoded."""
    (chart,) = [chart for chart in app.get("plotly_chart") if chart.proto.id.endswith(key)]
    trace = json.loads(chart.proto.spec)["data"][0]
    for name, value in trace.items():
        if isinstance(value, dict) and "bdata" in value:
            trace[name] = np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"]).tolist()
    return trace


def test_the_page_shows_the_nations_sizes(runs_root):
    app = open_data_page(run=RUN)

    train_triples = raw_triples("train")
    entities = {head for head, _, _ in train_triples} | {tail for _, _, tail in train_triples}
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Entities"] == str(len(entities)) == "14"
    assert metrics["Relations"] == "55"
    for split in ("train", "valid", "test"):
        assert metrics[f"{split.capitalize()} triples"] == f"{len(raw_triples(split)):,}"
    assert not app.error


def test_the_relation_chart_draws_the_counts_of_the_training_file(runs_root):
    app = open_data_page(run=RUN)

    counted = Counter(relation for _, relation, _ in raw_triples("train"))
    bars = chart_data(app, "relations_chart")
    assert bars["type"] == "bar"
    assert dict(zip(bars["x"], bars["y"], strict=True)) == dict(counted)
    assert bars["y"] == sorted(counted.values(), reverse=True)


def test_the_degree_and_neighbourhood_histograms_appear(runs_root):
    app = open_data_page(run=RUN)

    degrees = Counter()
    for head, _, tail in raw_triples("train"):
        degrees.update({head, tail})
    histogram = chart_data(app, "degrees_chart")
    assert histogram["type"] == "histogram"
    assert sorted(histogram["x"]) == sorted(degrees.values())

    neighbourhoods = chart_data(app, "neighbourhoods_chart")
    assert neighbourhoods["type"] == "histogram"
    assert len(neighbourhoods["x"]) == len(raw_triples("test"))
    assert any("proxy" in caption.value for caption in app.caption)


def test_empty_runs_folder_points_to_the_runs_page(tmp_path, monkeypatch):
    use_runs_folder(tmp_path / "runs", monkeypatch)

    app = open_data_page()

    assert not app.error
    assert "No runs yet" in app.info[0].value
    assert not app.get("plotly_chart")

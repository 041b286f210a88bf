"""The Explain page on a data set with more heads than one selector should hold.

A ring of 3,000 cities, two of them sharing the label "Springfield": the head
selector offers a search's matches instead of every name, and what it offers
is compared with the matches counted here without the page's code.
"""

import pytest

from pages.explain_choices import MAX_HEAD_MATCHES, MAX_HEAD_OPTIONS
from tests.pages import CITIES, city, open_page, save_city_run, use_runs_folder

RUN = "cities"


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory):
    return save_city_run(tmp_path_factory, RUN)


@pytest.fixture
def runs_root(runs_folder, monkeypatch):
    return use_runs_folder(runs_folder, monkeypatch)


def head_box(app):
    return app.selectbox(key="explain_head")


def search(app, text: str):
    app.text_input(key="explain_head_search").input(text).run()
    assert not app.exception, app.exception
    return head_box(app)


def test_a_large_data_set_offers_the_test_heads_until_a_search(runs_root):
    assert CITIES > MAX_HEAD_OPTIONS
    app = open_page("explain", run=RUN)

    box = head_box(app)
    assert box.value == city(40)  # the first test triple's head
    assert box.options == [city(40), city(41)]  # the test triples' heads, once each
    assert app.get("iframe")  # the explanation of the first query is drawn


def test_a_search_offers_its_matches_and_a_match_is_explained(runs_root):
    app = open_page("explain", run=RUN)

    box = search(app, "CITY-012")  # case is ignored
    expected = [city(i) for i in range(CITIES) if "city-012" in city(i)]
    assert len(expected) == 10
    assert box.options == [city(40), *expected]  # the current head stays first
    assert box.value == city(40)

    box.set_value(city(125)).run()
    assert not app.exception, app.exception
    assert app.query_params["head"] == city(125)
    assert head_box(app).value == city(125)
    assert city(125) in app.get("iframe")[0].proto.srcdoc  # its explanation graph


def test_a_shared_label_finds_both_and_names_them_with_their_keys(runs_root):
    app = open_page("explain", run=RUN)

    box = search(app, "springfield")
    assert box.options[1:] == ["Springfield (city-0007)", "Springfield (city-0008)"]


def test_many_matches_are_cut_and_counted(runs_root):
    app = open_page("explain", run=RUN)

    box = search(app, "city-")
    assert len(box.options) == MAX_HEAD_MATCHES  # the current head is among the first
    # Names that start with the text come first: the Springfields match by key only.
    assert box.options[1:] == [city(i) for i in range(MAX_HEAD_MATCHES + 2) if i not in (7, 8, 40)]
    assert any(f"{CITIES:,} matches" in caption for caption in app.caption.values)


def test_no_match_keeps_the_current_head(runs_root):
    app = open_page("explain", run=RUN)

    box = search(app, "atlantis")
    assert box.options == [city(40)]
    assert any("No head matches" in caption for caption in app.caption.values)


def test_a_linked_head_outside_the_list_is_kept(runs_root):
    app = open_page("explain", run=RUN, head=city(2999), relation="borders")

    assert not app.warning
    assert head_box(app).value == city(2999)
    assert head_box(app).options[0] == city(2999)

"""The head search of a large data set, in a real browser.

A server of its own, with one run on a ring of 3,000 cities: a person types part
of a name into "Find a head", picks a match from the Head list, and the page
draws the explanation of that city's query. The screenshot goes to
``test-artifacts/head-search.png``.
"""

import pytest

from tests.pages import city, save_city_run
from tests.test_browser import (  # the module skips itself without chromium
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ERRORS,
    GRAPH_FRAME,
    GRAPH_SECONDS,
    server,  # noqa: F401  (a fixture, started on this module's runs folder)
    sync_playwright,
)

RUN = "cities"


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory):
    return save_city_run(tmp_path_factory, RUN)


def test_a_head_found_by_search_is_explained(server):  # noqa: F811
    wanted = city(125)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1200})
            page.goto(f"{server}/explain?run={RUN}")
            graph = page.frame_locator(GRAPH_FRAME)
            graph.locator(f"text={city(40)} \u2014").first.wait_for(timeout=GRAPH_SECONDS * 1000)

            search = page.get_by_role("textbox", name="Find a head")
            search.fill("city-012")
            search.press("Enter")
            page.get_by_role("combobox", name="Head").click()
            options = page.get_by_role("option")
            options.filter(has_text=wanted).wait_for(timeout=GRAPH_SECONDS * 1000)
            offered = sorted(options.all_inner_texts())
            options.filter(has_text=wanted).click()

            graph.locator(f"text={wanted} \u2014").first.wait_for(timeout=GRAPH_SECONDS * 1000)
            graph.locator("body[data-settled]").wait_for(state="attached", timeout=60_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "head-search.png"))
            error_count = page.locator(ERRORS).count()
            address = page.url
        finally:
            browser.close()

    assert offered == sorted([city(40), *(city(i) for i in range(120, 130))])
    assert error_count == 0
    assert f"head={wanted}" in address

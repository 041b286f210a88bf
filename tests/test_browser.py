"""The dashboard in a real browser: a Streamlit server and headless Chromium.

AppTest cannot run the graph's JavaScript; these tests can. They start
``streamlit run app.py`` on a free port with a runs folder holding one Nations
run. One opens a link to the Explain page, waits until vis-network has laid out
the graph inside its iframe and reads the drawn node labels back; one visits
every page; one reviews twenty predictions by clicking, as a reviewer would, and
reads the verdicts back from the run folder. Screenshots go to
``test-artifacts/`` for a person to look at.

Needs Debian's ``/usr/bin/chromium``; without it the test is skipped, unless
``GR_REQUIRE_BROWSER`` is set (as CI does), in which case it fails.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gr_core import PRESETS, Explainer, load_dataset, load_run_with_dataset, save_run, train
from gr_core.evaluation import run_evaluation
from gr_core.review import read_reviews
from tests.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
ARTIFACTS = ROOT / "test-artifacts"
RUN = "nations-distmult"
QUERY = {"head": "usa", "relation": "embassy", "k": 5, "method": "gr"}
START_SECONDS = 60
GRAPH_SECONDS = 60
GRAPH_FRAME = 'iframe[title="Graph of the explanation\'s triples"]'
EVALUATION = "n3-seed0"
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
CHART = ".js-plotly-plot"
# Every page: its address, a text it shows once drawn, and whether it draws a plotly chart.
PAGES = {
    "runs": ("", "Runs", False),
    "evaluate": (f"evaluate?evaluation={EVALUATION}", "Saved evaluations", True),
    "approximation": ("approximation", "Approximation quality", True),
    "data": ("data", "Entity degrees", True),
    "review": ("review", "Is the explanation a plausible reason", False),
}

if not CHROMIUM.exists():
    if os.environ.get("GR_REQUIRE_BROWSER"):
        raise RuntimeError(f"GR_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402  (only when a browser is there)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    """Poll Streamlit's health endpoint until it answers; fail with the log if it dies."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"streamlit did not answer within {START_SECONDS} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory):
    """A runs folder with one Nations run (default preset) and one saved evaluation of it."""
    root = tmp_path_factory.mktemp("browser") / "runs"
    dataset = load_dataset("nations")
    save_run(root / RUN, dataset, PRESETS["default"], train(dataset, PRESETS["default"]))
    run_evaluation(root / RUN, root / RUN / "evaluations" / EVALUATION, queries=3,
                   methods=("GR-1", "NH-1"))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def server(runs_folder, tmp_path_factory):
    """Run the dashboard on a free port; yield its address; stop it afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {**os.environ, "GR_RUNS_DIR": str(runs_folder)}
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    url = f"http://localhost:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_explain_link_draws_the_explanation_graph(server, runs_folder):
    explainer = Explainer(*load_run_with_dataset(runs_folder / RUN))
    explanation = explainer.explain(**QUERY)
    entities = {row.head_name for row in explanation.rows} | {
        row.tail_name for row in explanation.rows
    }
    entities |= {explanation.head_name, explanation.tail_name}
    link = f"{server}/explain?run={RUN}&" + "&".join(f"{k}={v}" for k, v in QUERY.items())

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1500})
            page.goto(link)
            frame = page.wait_for_selector(GRAPH_FRAME, timeout=GRAPH_SECONDS * 1000)
            graph = frame.content_frame()
            graph.wait_for_function(
                "() => typeof network !== 'undefined' && document.body.dataset.settled",
                timeout=GRAPH_SECONDS * 1000,
            )
            labels = graph.evaluate("() => network.body.data.nodes.get().map(n => n.label)")
            errors = page.locator(ERRORS)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "explain.png"))
            error_count = errors.count()
            address = page.url
        finally:
            browser.close()

    assert sorted(labels) == sorted(entities)
    assert error_count == 0
    assert f"tail={explanation.tail_name}" in address  # the page wrote its view into the URL


def open_page(browser, server: str, path: str, text: str, chart: bool = False):
    """Open a page of the dashboard for the run and wait until it has drawn; return it."""
    page = browser.new_page(viewport={"width": 1440, "height": 1500})
    separator = "&" if "?" in path else "?"
    page.goto(f"{server}/{path}{separator}run={RUN}")
    page.get_by_text(text, exact=False).first.wait_for(timeout=GRAPH_SECONDS * 1000)
    if chart:
        page.wait_for_selector(CHART, timeout=GRAPH_SECONDS * 1000)
    page.wait_for_timeout(1000)  # let the last elements finish drawing
    return page


def test_every_page_draws_without_an_error(server):
    shown = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for name, (path, text, chart) in PAGES.items():
                page = open_page(browser, server, path, text, chart)
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                charts = page.locator(CHART).count()
                shown[name] = (page.locator(ERRORS).count(), charts)
                page.close()
        finally:
            browser.close()

    assert all(errors == 0 for errors, _ in shown.values()), shown
    for name, (_, _, chart) in PAGES.items():
        assert shown[name][1] >= chart, f"no plotly chart drawn on the {name} page"


REVIEWED = 20  # predictions a reviewer judges in one sitting
VERDICT_CYCLE = ("plausible", "implausible", "unsure")
VERDICT_GROUP = "Is the explanation a"  # the radio group's accessible name starts so


def wait_for_position(page, position: int) -> None:
    """Wait until the Review page shows the prediction at ``position`` and has settled."""
    page.wait_for_function(
        """(position) => [...document.querySelectorAll('input[type=number]')].some(
            (e) => (e.getAttribute('aria-label') || '').startsWith('Position')
                   && e.value === String(position))""",
        arg=position,
        timeout=30_000,
    )
    page.wait_for_selector('[data-stale="true"]', state="detached", timeout=30_000)


def test_twenty_verdicts_given_in_the_browser_are_saved(server, runs_folder):
    nations = load_dataset("nations")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = open_page(browser, server, "review", "Is the explanation a plausible reason")
            for position in range(1, REVIEWED + 1):
                wait_for_position(page, position)
                verdict = VERDICT_CYCLE[position % len(VERDICT_CYCLE)]
                group = page.get_by_role("radiogroup", name=VERDICT_GROUP)
                group.get_by_text(verdict, exact=True).click()
                page.get_by_text(f"Saved: {verdict}", exact=False).wait_for(timeout=30_000)
                if position < REVIEWED:
                    page.get_by_role("button", name="Next").click()

            # A reload shows the last saved verdict again.
            page.reload()
            last = VERDICT_CYCLE[REVIEWED % len(VERDICT_CYCLE)]
            page.get_by_text(f"Saved: {last}", exact=False).wait_for(timeout=30_000)
        finally:
            browser.close()

    reviews = read_reviews(runs_folder / RUN).reviews
    expected = {
        (nations.entities[h], nations.relations[r], nations.entities[t]): VERDICT_CYCLE[i % 3]
        for i, (h, r, t) in enumerate(nations.test[:REVIEWED].tolist(), start=1)
    }
    assert {triple: review.verdict for triple, review in reviews.items()} == expected

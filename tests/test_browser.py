"""The Explain page in a real browser: a Streamlit server and headless Chromium.

AppTest cannot run the graph's JavaScript; this test can. It starts
``streamlit run app.py`` on a free port with a runs folder holding one Nations
run, opens a link to the Explain page, waits until vis-network has laid out the
graph inside its iframe and reads the drawn node labels back. A screenshot goes
to ``test-artifacts/explain.png`` for a person to look at.

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
from tests.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
ARTIFACTS = ROOT / "test-artifacts"
RUN = "nations-distmult"
QUERY = {"head": "usa", "relation": "embassy", "k": 5, "method": "gr"}
START_SECONDS = 60
GRAPH_SECONDS = 60
GRAPH_FRAME = 'iframe[title="Graph of the explanation\'s triples"]'

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
    """A runs folder with one Nations run (default preset)."""
    root = tmp_path_factory.mktemp("browser") / "runs"
    dataset = load_dataset("nations")
    save_run(root / RUN, dataset, PRESETS["default"], train(dataset, PRESETS["default"]))
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
            errors = page.locator(
                '[data-testid="stException"], [data-testid="stAlertContentError"]'
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "explain.png"))
            error_count = errors.count()
            address = page.url
        finally:
            browser.close()

    assert sorted(labels) == sorted(entities)
    assert error_count == 0
    assert f"tail={explanation.tail_name}" in address  # the page wrote its view into the URL

"""Time from a changed query to a drawn explanation on the Explain page.

Two measurements per data set (Nations and UMLS, default preset):

* AppTest: the page's script rerun after the head selector changes, with the
  run, its index and the Explainer already cached (what the server does for
  a user who picks another head);
* browser: headless chromium opens a link to a new query on a running
  ``streamlit run app.py`` and waits until the graph has been laid out inside
  its iframe (page load, websocket, script run, vis-network layout).

Target: at most 1 s. ``--run PATH`` adds a trained run of any data set (for
example FB15k-237, with ``GR_DATA_DIR`` set so its data set can be found);
its queries are typed and linked by their readable labels. Where the page
offers a head search (a data set with many entities), the head is searched
for first and the clock starts when it is picked.

    python -m benchmarks.dashboard_latency [--queries 5] [--run PATH]
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

from streamlit.testing.v1 import AppTest

from gr_core import PRESETS, load_dataset, load_run_with_dataset, save_run, train
from pages.explain_choices import HEAD_SEARCH_KEY
from tests.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
GRAPH_FRAME = 'iframe[title="Graph of the explanation\'s triples"]'


def heads_of(dataset, count: int) -> list[tuple[str, str]]:
    """Return (key, label) of the heads of the first test triples, without repeats.

    Heads whose label is shared with another entity are skipped: a link names them
    by label.
    """
    labels = list(dataset.entity_labels)
    unique = {label for label, times in Counter(labels).items() if times == 1}
    heads = dict.fromkeys(
        (dataset.entities[h], labels[h]) for h in dataset.test[:, 0].tolist()
        if labels[h] in unique
    )  # fmt: skip
    return list(heads)[: count + 1]


def apptest_seconds(run: str, relation: str, heads: list[str]) -> list[float]:
    """Return the rerun time after each change of the head selector."""
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params.update({"run": run, "head": heads[0][0], "relation": relation})
    app.run()
    app.switch_page("pages/explain.py").run()
    large = any(box.key == HEAD_SEARCH_KEY for box in app.text_input)
    times = []
    for head, label in heads[1:]:
        if large:  # the head is found by search first; the clock starts at the pick
            app.text_input(key=HEAD_SEARCH_KEY).input(label).run()
        started = time.perf_counter()
        app.selectbox(key="explain_head").set_value(head).run()
        times.append(time.perf_counter() - started)
        assert not app.exception, app.exception
    return times


def browser_seconds(url: str, run: str, relation: str, heads: list[str]):
    """Return, per new head, seconds to a laid-out graph: after picking it, after a link.

    Picking: the head is typed into the selector and Enter starts the clock; it
    stops when the graph of the new query has settled. Link: a fresh page load.
    """
    from playwright.sync_api import sync_playwright

    picked, linked = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1200})
        for _, head in heads:  # the first load warms the server's caches and is not counted
            started = time.perf_counter()
            query = urllib.parse.urlencode({"run": run, "head": head, "relation": relation})
            page.goto(f"{url}/explain?{query}&k=10")
            wait_for_graph(page, head)
            linked.append(time.perf_counter() - started)
        for _, head in reversed(heads[:-1]):
            search = page.get_by_role("textbox", name="Find a head")
            if search.count():  # a large data set: search first, the clock starts at the pick
                search.fill(head)
                search.press("Enter")
            page.get_by_role("combobox", name="Head").click()
            page.keyboard.type(head)
            page.get_by_role("option").filter(has_text=head).first.wait_for(timeout=60_000)
            started = time.perf_counter()
            page.keyboard.press("Enter")
            wait_for_graph(page, head)
            picked.append(time.perf_counter() - started)
        browser.close()
    return picked, linked[1:]


def wait_for_graph(page, head: str) -> None:
    """Wait until the graph iframe shows the query of ``head`` and its layout has settled."""
    graph = page.frame_locator(GRAPH_FRAME)
    graph.locator(f"text={head} \u2014").first.wait_for(timeout=60_000)
    graph.locator("body[data-settled]").wait_for(state="attached", timeout=60_000)


def start_server(runs: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "streamlit", "run", APP, "--server.headless", "true",
               "--server.port", str(port), "--server.fileWatcherType", "none"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "GR_RUNS_DIR": str(runs)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://localhost:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("streamlit did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--run", type=Path, help="also measure this trained run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        runs = Path(folder) / "runs"
        cases = []
        for name in ("nations", "umls"):
            dataset = load_dataset(name)
            save_run(runs / name, dataset, PRESETS["default"], train(dataset, PRESETS["default"]))
            relation = dataset.relations[int(dataset.test[0, 1])]
            cases.append((name, relation, heads_of(dataset, args.queries)))
        if args.run:
            dataset = load_run_with_dataset(args.run)[1]
            (runs / args.run.name).symlink_to(args.run.resolve())
            relation = dataset.relations[int(dataset.test[0, 1])]
            cases.append((args.run.name, relation, heads_of(dataset, args.queries)))
        os.environ["GR_RUNS_DIR"] = str(runs)

        print(f"{'data set':<9} {'AppTest median s':>17} {'max s':>7} "
              f"{'picked median s':>16} {'max s':>7} {'link median s':>14}")  # fmt: skip
        server, url = start_server(runs) if CHROMIUM.exists() else (None, None)
        try:
            for name, relation, heads in cases:
                script = apptest_seconds(name, relation, heads)
                nothing = ([float("nan")], [float("nan")])
                picked, linked = browser_seconds(url, name, relation, heads) if url else nothing
                print(f"{name:<9} {statistics.median(script):>17.3f} {max(script):>7.3f} "
                      f"{statistics.median(picked):>16.3f} {max(picked):>7.3f} "
                      f"{statistics.median(linked):>14.3f}")  # fmt: skip
        finally:
            if server:
                server.terminate()
                server.wait(timeout=10)


if __name__ == "__main__":
    main()

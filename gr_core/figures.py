"""Plotly figures of evaluation folders, for reports and the dashboard.

``approximation_figure`` draws the paper's Figure 2: for GR-1, the
probability GR predicts after removing the top triple against the probability
after really retraining without it, one panel per evaluation (for example one
per weight constraint), with the diagonal and the fit statistics.
"""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gr_core.colours import METHOD_COLOURS, TEXT_COLOUR
from gr_core.errors import GRError
from gr_core.evaluation import read_rows


def approximation_figure(folders: list[Path], titles: list[str] | None = None) -> go.Figure:
    """Return one scatter panel per evaluation folder: GR-1 predicted vs retrained."""
    folders = [Path(folder) for folder in folders]
    titles = titles or [folder.name for folder in folders]
    fits = [json.loads((f / "approximation.json").read_text(encoding="utf-8")) for f in folders]
    subtitles = [
        f"{title}<br><sub>r = {fit['pearson']:.3f}, Lipschitz {fit['lipschitz']:.3f}</sub>"
        for title, fit in zip(titles, fits, strict=True)
    ]
    figure = make_subplots(rows=1, cols=len(folders), subplot_titles=subtitles,
                           shared_yaxes=True, horizontal_spacing=0.04)  # fmt: skip

    for column, folder in enumerate(folders, start=1):
        rows = [row for row in read_rows(folder / "rows.csv") if row["method"] == "GR-1"]
        figure.add_trace(
            go.Scatter(
                x=[row["predicted_after"] for row in rows],
                y=[row["probability_after"] for row in rows],
                mode="markers",
                marker={"color": METHOD_COLOURS["GR"], "size": 6, "opacity": 0.7},
                name="GR-1",
                showlegend=column == 1,
                hovertemplate="predicted %{x:.4f}<br>retrained %{y:.4f}<extra></extra>",
            ),
            row=1, col=column,
        )  # fmt: skip
        figure.add_trace(
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="equal",
                       line={"color": TEXT_COLOUR, "dash": "dot", "width": 1},
                       showlegend=column == 1, hoverinfo="skip"),
            row=1, col=column,
        )  # fmt: skip
        figure.update_xaxes(title_text="GR: Pr after removal", range=[0, 1], row=1, col=column)
    figure.update_yaxes(title_text="retrained: Pr after removal", range=[0, 1], row=1, col=1)
    figure.update_layout(height=380, width=320 * len(folders) + 80, template="plotly_white",
                         margin={"t": 80, "b": 50, "l": 60, "r": 20})  # fmt: skip
    return figure


def html_to_png(html: Path, png: Path, width: int, height: int) -> None:
    """Draw a local HTML file to PNG with Debian's chromium through Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise GRError("--png needs the playwright package (requirements-test.txt)") from None
    if not Path("/usr/bin/chromium").exists():
        raise GRError("--png needs /usr/bin/chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": int(width) + 20, "height": int(height) + 20})
        page.goto(html.resolve().as_uri())
        page.wait_for_selector(".main-svg")
        page.screenshot(path=str(png))
        browser.close()

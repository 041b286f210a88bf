"""Plotly figures of evaluation folders, for reports and the dashboard.

``approximation_figure`` draws the paper's Figure 2: for GR-1, the
probability GR predicts after removing the top triple against the probability
after really retraining without it, one panel per evaluation (for example one
per weight constraint), with the diagonal and the fit statistics.
``faithfulness_figure`` draws an evaluation's PD% and TC% as grouped bars, one
colour per method family and one group per number of triples removed.
"""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gr_core.colours import METHOD_COLOURS, TEXT_COLOUR
from gr_core.errors import GRError
from gr_core.evaluation import read_rows
from gr_core.evaluations import split_method

FAMILY_ORDER = ("GR", "GR-O", "FO", "CRIAGE", "NH")  # GR first, the random baseline last
FAMILY_LABELS = {"FO": "first-order GR", "NH": "NH (random)"}
FAMILY_COLOUR_NAMES = {"FO": "first-order"}  # METHOD_COLOURS keys that differ from the family
MEASURES = {"pd": "PD %: probability dropped", "tc": "TC %: top-1 changed"}


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
    panels = [
        [row for row in read_rows(folder / "rows.csv") if row["method"] == "GR-1"]
        for folder in folders
    ]
    # Zoom in on small probabilities (a filtered top-1 can be far below 1), same scale in all.
    values = [max(r["predicted_after"], r["probability_after"]) for rows in panels for r in rows]
    top = min(1.0, max(0.05, 1.05 * max(values, default=1.0)))

    for column, rows in enumerate(panels, start=1):
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
        figure.update_xaxes(title_text="GR: Pr after removal", range=[0, top], row=1, col=column)
    figure.update_yaxes(title_text="retrained: Pr after removal", range=[0, top], row=1, col=1)
    figure.update_layout(height=380, width=320 * len(folders) + 80, template="plotly_white",
                         margin={"t": 80, "b": 50, "l": 60, "r": 20})  # fmt: skip
    return figure


def size_order(size: str) -> tuple[int, int]:
    """Return a sort key for method sizes: numbers ascending, then ``ALL``."""
    return (0, int(size)) if size.isdigit() else (1, 0)


def faithfulness_figure(summary: dict) -> go.Figure:
    """Return PD % and TC % per method as grouped bars: x is k, one bar colour per family.

    ``summary`` is ``{method: {"pd": %, "tc": %, ...}}`` as in summary.json.
    """
    split = {method: split_method(method) for method in summary}
    families = list(dict.fromkeys(family for family, _ in split.values()))
    families.sort(key=lambda f: FAMILY_ORDER.index(f) if f in FAMILY_ORDER else len(FAMILY_ORDER))
    sizes = sorted({size for _, size in split.values()}, key=size_order)
    figure = make_subplots(rows=1, cols=2, subplot_titles=tuple(MEASURES.values()),
                           horizontal_spacing=0.08)  # fmt: skip

    for family in families:
        by_size = {size: method for method, (f, size) in split.items() if f == family}
        shown = [size for size in sizes if size in by_size]
        colour = METHOD_COLOURS.get(FAMILY_COLOUR_NAMES.get(family, family), TEXT_COLOUR)
        for column, measure in enumerate(MEASURES, start=1):
            figure.add_trace(
                go.Bar(
                    x=shown,
                    y=[summary[by_size[size]][measure] for size in shown],
                    customdata=[by_size[size] for size in shown],
                    name=FAMILY_LABELS.get(family, family),
                    legendgroup=family,
                    showlegend=column == 1,
                    marker={"color": colour},
                    hovertemplate="%{customdata}: %{y:.1f} %<extra></extra>",
                ),
                row=1, col=column,
            )  # fmt: skip
    figure.update_xaxes(title_text="triples removed (k)", type="category",
                        categoryorder="array", categoryarray=sizes)  # fmt: skip
    figure.update_yaxes(range=[0, 100], ticksuffix=" %")
    figure.update_layout(barmode="group", height=380, template="plotly_white",
                         legend={"orientation": "h", "y": -0.25},
                         margin={"t": 50, "b": 40, "l": 50, "r": 20})  # fmt: skip
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

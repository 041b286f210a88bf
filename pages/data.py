"""Data page: the data set of the selected run in numbers and charts.

Shows the sizes of the data set the sidebar's run was trained on, how often each
relation occurs, how entity degrees and the neighbourhood sizes of the test
triples are distributed. ``gr_core.profile`` counts (once per server and run
folder); this page draws.
"""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from gr_core import load_run_with_dataset
from gr_core.colours import BLUE, BLUISH_GREEN, ORANGE
from gr_core.errors import GRError
from gr_core.profile import DatasetProfile, profile_dataset
from pages.loading import chosen_entry
from pages.shared import plain, run_router_first

SIZE_LABELS = {
    "entities": "Entities",
    "relations": "Relations",
    "train": "Train triples",
    "valid": "Valid triples",
    "test": "Test triples",
}
CHART_HEIGHT = 360
NEIGHBOURHOOD_CAPTION = (
    "The neighbours of a triple are the training triples that share its head or tail "
    "(in either slot) or its relation: the candidates an explanation chooses from. An "
    "explanation's candidates are the neighbours of (head, relation, predicted tail); "
    "this chart counts them for (head, relation, true tail) of each test triple, a good "
    "proxy that needs no model, and the same triple whenever the prediction is right."
)


@st.cache_data(max_entries=16, show_spinner="Counting the data set…")
def cached_profile(path: str, config_mtime_ns: int) -> tuple[str, DatasetProfile]:
    """Return the name and profile of the run's data set; the mtime keys the cache.

    Raises GRError when the run or its data set cannot be loaded.
    """
    _, dataset = load_run_with_dataset(path, load_ledger=False)
    return dataset.name, profile_dataset(dataset)


# ---- charts -----------------------------------------------------------------------------


def styled(figure: go.Figure, x_title: str, y_title: str) -> go.Figure:
    """Give a chart the page's size, margins and axis titles."""
    figure.update_layout(
        height=CHART_HEIGHT,
        template="plotly_white",
        margin={"t": 20, "b": 10, "l": 10, "r": 10},
        bargap=0.1,
    )
    figure.update_xaxes(title_text=x_title)
    figure.update_yaxes(title_text=y_title)
    return figure


def relations_figure(relations: pd.DataFrame) -> go.Figure:
    """Return a bar per relation: its training triples, most frequent first."""
    bars = go.Bar(
        x=relations["label"],
        y=relations["triples"],
        marker_color=BLUISH_GREEN,
        customdata=relations["share"],
        hovertemplate="%{x}<br>%{y} triples (%{customdata:.1%})<extra></extra>",
    )
    return styled(go.Figure(bars), "relation", "training triples")


def histogram_figure(values: pd.Series, colour: str, x_title: str) -> go.Figure:
    """Return a histogram of whole-number values."""
    bars = go.Histogram(
        x=values,
        marker_color=colour,
        hovertemplate="%{x}: %{y}<extra></extra>",
    )
    return styled(go.Figure(bars), x_title, "count")


# ---- sections ---------------------------------------------------------------------------


def sizes_ui(profile: DatasetProfile) -> None:
    """Draw the numbers of entities, relations and triples per split."""
    columns = st.columns(len(SIZE_LABELS))
    for column, (key, label) in zip(columns, SIZE_LABELS.items(), strict=True):
        column.metric(label, f"{profile.sizes[key]:,}")


def relations_ui(profile: DatasetProfile) -> None:
    """Draw the relation frequencies as a bar chart, with the table behind it."""
    st.subheader("Relations")
    st.caption("How many training triples each relation has, most frequent first.")
    st.plotly_chart(relations_figure(profile.relations), key="relations_chart")
    with st.expander("Table of relations"):
        st.dataframe(
            profile.relations,
            hide_index=True,
            key="relations_table",
            column_config={"share": st.column_config.NumberColumn(format="percent")},
        )


def degrees_ui(profile: DatasetProfile) -> None:
    """Draw the distribution of entity degrees, with the table behind it."""
    st.subheader("Entity degrees")
    st.caption(
        "The degree of an entity is the number of training triples that contain it, as "
        "head or tail (a triple from an entity to itself counts once)."
    )
    chart = histogram_figure(profile.degrees["degree"], BLUE, "degree")
    st.plotly_chart(chart, key="degrees_chart")
    with st.expander("Table of entities"):
        st.dataframe(profile.degrees, hide_index=True, key="degrees_table")


def neighbourhoods_ui(profile: DatasetProfile) -> None:
    """Draw the distribution of the test triples' neighbourhood sizes."""
    st.subheader("Neighbourhood sizes")
    st.caption(NEIGHBOURHOOD_CAPTION)
    if profile.neighbourhoods.empty:
        st.info("This data set has no test triples.")
        return
    sizes = profile.neighbourhoods["neighbours"]
    columns = st.columns(3)
    columns[0].metric("Mean neighbours", f"{profile.mean_neighbourhood:,.1f}")
    columns[1].metric("Median neighbours", f"{sizes.median():,.0f}")
    columns[2].metric("Largest", f"{sizes.max():,}")
    chart = histogram_figure(sizes, ORANGE, "training neighbours of a test triple")
    st.plotly_chart(chart, key="neighbourhoods_chart")


# ---- the page ---------------------------------------------------------------------------


def data_page() -> None:
    """Draw the Data page."""
    run_router_first()
    st.title("Data set")
    entry = chosen_entry("No runs yet: train one on the Runs page to see its data set here.")
    if entry is None:
        return
    try:
        name, profile = cached_profile(*entry.key)
    except GRError as error:
        st.error(plain(str(error)))
        return

    st.caption(f"The data set run **{plain(entry.name)}** was trained on: **{plain(name)}**.")
    sizes_ui(profile)
    relations_ui(profile)
    degrees_ui(profile)
    neighbourhoods_ui(profile)


data_page()

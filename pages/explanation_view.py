"""Not a page: one explanation as a graph and a table, the way Explain and Review show it.

The table names entities and relations by their display labels and colours each
triple's category as the graph's legend does; the graph is the standalone page
``gr_core.render`` writes, shown in an iframe.
"""

import pandas as pd
import streamlit as st

from gr_core import Explanation
from gr_core.colours import category_colour
from gr_core.graph import explanation_graph
from gr_core.render import graph_html
from pages.loading import LoadedRun

RANK_COLUMN = st.column_config.NumberColumn(width="small")


def explanation_table(explanation: Explanation, loaded: LoadedRun) -> pd.DataFrame:
    """Return one row per explanation triple: rank, names, influence, probability, category."""
    entity, relation = loaded.entity_labels, loaded.relation_labels
    return pd.DataFrame(
        {
            "rank": [row.rank for row in explanation.rows],
            "head": [entity[row.head_name] for row in explanation.rows],
            "relation": [relation[row.relation_name] for row in explanation.rows],
            "tail": [entity[row.tail_name] for row in explanation.rows],
            "influence": [row.influence for row in explanation.rows],
            "probability after removal": [row.probability_after for row in explanation.rows],
            "category": [row.category for row in explanation.rows],
        }
    )


def coloured_categories(table: pd.DataFrame):
    """Return the table styled with each category's colour (text only, names untouched)."""
    return table.style.map(
        lambda category: f"color: {category_colour(category)}; font-weight: 600",
        subset=["category"],
    )


def graph_ui(explanation: Explanation, loaded: LoadedRun, height: int) -> str:
    """Draw the explanation's graph; return its page as HTML."""
    graph = explanation_graph(explanation, loaded.entity_labels, loaded.relation_labels)
    html = graph_html(graph, height=height)
    st.iframe(html, height=height + 6, alt="Graph of the explanation's triples")
    return html

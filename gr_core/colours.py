"""The one colour scheme of the product: graph, plotly charts and legends all read it here.

Colours come from the Okabe–Ito palette (Okabe and Ito, 2008), which stays distinct for
the common kinds of colour blindness. Edges and nodes share meanings: a ``shared head``
triple has the colour of the ``head`` node, a ``two-hop path`` triple that of its
``via`` node, and so on, so one legend explains both.

Nothing else in the code base should spell a hex colour; add a name here instead.
"""

from __future__ import annotations

from gr_core.categories import (
    HEAD_TAIL_LINK,
    SHARED_HEAD,
    SHARED_RELATION,
    SHARED_TAIL,
    TWO_HOP_PATH,
)

# Okabe–Ito, named as in their paper; yellow is left out, it vanishes on white.
BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
REDDISH_PURPLE = "#CC79A7"
GREY = "#999999"
LIGHT_GREY = "#C8C8C8"

PREDICTION = "prediction"

CATEGORY_COLOURS: dict[str, str] = {
    HEAD_TAIL_LINK: REDDISH_PURPLE,
    TWO_HOP_PATH: ORANGE,
    SHARED_HEAD: BLUE,
    SHARED_TAIL: VERMILLION,
    SHARED_RELATION: BLUISH_GREEN,
    PREDICTION: BLACK,
}
OTHER_COLOUR = GREY  # a triple in no category, or a category this module does not know

ROLE_COLOURS: dict[str, str] = {
    "head": BLUE,
    "tail": VERMILLION,
    "head+tail": REDDISH_PURPLE,
    "via": ORANGE,
    "other": LIGHT_GREY,
}

# Chart series: our method in strong blue, the random baseline in grey.
METHOD_COLOURS: dict[str, str] = {
    "GR": BLUE,
    "NH": GREY,
    "first-order": ORANGE,
    "GR-O": SKY_BLUE,
    "CRIAGE": VERMILLION,
}

# Page furniture of the graph view.
TEXT_COLOUR = "#222222"
BACKGROUND_COLOUR = "#FFFFFF"
FRAME_COLOUR = "#DDDDDD"
LABEL_BACKING_COLOUR = "rgba(255, 255, 255, 0.85)"  # behind entity names on the canvas
QUIET_BORDER_COLOUR = "#666666"  # the rim of via and other nodes
FOCUS_BORDER_COLOUR = BLACK  # the rim of head and tail nodes

LOSS_COLOUR = VERMILLION
MRR_COLOUR = BLUISH_GREEN
PROBABILITY_COLOUR = BLUE
KNOWN_COLOUR = GREY  # a prediction train or valid already hold


def category_colour(category: str) -> str:
    """Return the colour of an explanation category, grey for ``other`` or an unknown one."""
    return CATEGORY_COLOURS.get(category, OTHER_COLOUR)


def role_colour(role: str) -> str:
    """Return the fill colour of a node role, the ``other`` grey for an unknown one."""
    return ROLE_COLOURS.get(role, ROLE_COLOURS["other"])

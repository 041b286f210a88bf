"""Figures of evaluations: the PD / TC bars per method family."""

from gr_core.colours import METHOD_COLOURS
from gr_core.figures import faithfulness_figure

SUMMARY = {
    method: {"pd": pd, "tc": tc, "n": 10, "removed": 1.0}
    for method, pd, tc in (
        ("GR-1", 90.0, 30.0),
        ("GR-10", 100.0, 80.0),
        ("GR-ALL", 100.0, 95.0),
        ("NH-1", 50.0, 10.0),
        ("NH-10", 60.0, 20.0),
        ("NH-ALL", 80.0, 70.0),
        ("GR-O-3", 92.0, 40.0),
        ("FO-1", 85.0, 25.0),
    )
}


def test_bars_show_each_family_per_size_in_its_colour():
    figure = faithfulness_figure(SUMMARY)

    bars = {(trace.legendgroup, trace.xaxis): trace for trace in figure.data}
    assert [trace.legendgroup for trace in figure.data[::2]] == ["GR", "GR-O", "FO", "NH"]
    gr_pd, gr_tc = bars["GR", "x"], bars["GR", "x2"]
    assert list(gr_pd.x) == ["1", "10", "ALL"]
    assert list(gr_pd.y) == [SUMMARY[m]["pd"] for m in ("GR-1", "GR-10", "GR-ALL")]
    assert list(gr_tc.y) == [SUMMARY[m]["tc"] for m in ("GR-1", "GR-10", "GR-ALL")]
    assert list(gr_pd.customdata) == ["GR-1", "GR-10", "GR-ALL"]
    assert list(bars["GR-O", "x"].x) == ["3"] and list(bars["FO", "x2"].y) == [25.0]

    assert gr_pd.marker.color == METHOD_COLOURS["GR"]
    assert bars["NH", "x"].marker.color == METHOD_COLOURS["NH"]
    assert bars["FO", "x"].marker.color == METHOD_COLOURS["first-order"]
    assert [trace.showlegend for trace in figure.data[:2]] == [True, False]
    assert list(figure.layout.xaxis.categoryarray) == ["1", "3", "10", "ALL"]


def test_one_method_draws_one_bar_per_measure():
    figure = faithfulness_figure({"GR-1": SUMMARY["GR-1"]})

    assert len(figure.data) == 2
    assert [list(trace.y) for trace in figure.data] == [[90.0], [30.0]]

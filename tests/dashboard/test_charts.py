"""Server-drawn SVG charts: what they draw adds up, text is escaped, no script or style."""

from __future__ import annotations

import re

import pytest

from dashboards.charts import (
    Bar,
    BaselineRow,
    Series,
    baseline_chart,
    horizontal_bars,
    legend,
    proportion_bar,
    stacked_columns,
    tick_step,
)


def values(svg: str, series: str | None = None) -> list[float]:
    pattern = r'data-series="([^"]*)"[^>]*data-value="([0-9.]+)"'
    return [float(v) for s, v in re.findall(pattern, svg) if series is None or s == series]


SERIES = (
    Series("critical", "critical", "#900", (1, 0, 2)),
    Series("low", "low", "#09f", (0, 3, 1)),
)


def test_stacked_columns_draw_every_nonzero_value_once() -> None:
    svg = str(stacked_columns("c", ["a", "b", "c"], SERIES, title="t"))
    assert values(svg, "critical") == [1, 2]
    assert values(svg, "low") == [3, 1]
    assert 'data-total="7"' in svg


def test_stacked_columns_stack_series_in_order_from_the_bottom() -> None:
    svg = str(stacked_columns("c", ["a", "b", "c"], SERIES, title="t"))
    ys = {
        s: float(y)
        for y, s in re.findall(r'<rect x="[^"]*" y="([^"]*)"[^>]*data-series="([^"]*)" '
                               r'data-label="c"', svg)
    }  # fmt: skip
    assert ys["low"] < ys["critical"]  # SVG y grows downwards: low sits on critical


def test_stacked_columns_say_when_there_is_nothing() -> None:
    empty = (Series("x", "x", "#000", (0, 0)),)
    svg = str(stacked_columns("c", ["a", "b"], empty, title="t", empty="Nothing here"))
    assert "Nothing here" in svg
    assert values(svg) == []


def test_stacked_columns_refuse_series_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="one value per label"):
        stacked_columns("c", ["a"], SERIES, title="t")


def test_labels_and_titles_are_escaped() -> None:
    hostile = '<script>alert("x")</script>'
    svg = str(stacked_columns(hostile, [hostile], (Series(hostile, hostile, "#000", (1,)),),
                              title=hostile))  # fmt: skip
    bars = str(horizontal_bars("h", [Bar(hostile, hostile, 2, "#000")], title=hostile, unit="u"))
    key = str(legend("l", [Series(hostile, hostile, "#000", (1,))]))
    for markup in (svg, bars, key):
        assert "<script>" not in markup
        assert "&lt;script&gt;" in markup


def test_charts_use_no_style_attributes_or_scripts() -> None:
    # The dashboard's Content-Security-Policy allows neither inline styles nor scripts.
    drawn = [
        str(stacked_columns("c", ["a", "b", "c"], SERIES, title="t")),
        str(horizontal_bars("h", [Bar("a", "a", 3, "#000")], title="t", unit="u")),
        str(proportion_bar("p", SERIES, title="t")),
        str(baseline_chart("b", [BaselineRow("x", "x", 5, 1.5)], title="t")),
        str(legend("l", SERIES)),
    ]
    for markup in drawn:
        assert "style=" not in markup
        assert "<script" not in markup
        assert "http://" not in markup.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_legend_gives_each_series_total() -> None:
    key = str(legend("c", SERIES))
    assert re.findall(r'data-series="([^"]*)" data-total="(\d+)"', key) == [
        ("critical", "3"),
        ("low", "4"),
    ]


def test_proportion_bar_splits_by_totals() -> None:
    svg = str(proportion_bar("p", SERIES, title="t"))
    assert values(svg) == [3, 4]
    assert "(43%)" in svg  # 3 of 7


def test_baseline_chart_marks_the_baseline_and_omits_a_missing_one() -> None:
    svg = str(baseline_chart("b", [BaselineRow("x", "x", 42, 0.4), BaselineRow("y", "y", 2, None)],
                             title="t"))  # fmt: skip
    assert re.findall(r'data-baseline="([0-9.]+)"', svg) == ["0.4"]
    assert values(svg) == [42, 2]


@pytest.mark.parametrize(
    ("top", "step"),
    [
        (0, 1),  # an empty chart still has a scale
        (5, 1),  # up to five: every whole number is a tick
        (6, 2),
        (11, 5),
        (48, 10),
        (999, 200),
        (5000, 1000),
    ],
)
def test_ticks_are_whole_steps_of_one_two_or_five(top: int, step: int) -> None:
    assert tick_step(top) == step

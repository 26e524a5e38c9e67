"""Small charts drawn on the server as inline SVG, for the dashboard and the report.

No script and no network: a chart is markup, so it renders offline, under a strict
Content-Security-Policy (colours are SVG presentation attributes, not ``style``
attributes), in print and in a PDF. Every mark carries its numbers twice: as a
``<title>`` a person sees on hover, and as ``data-series`` / ``data-label`` /
``data-value`` attributes that tests (and assistive tools) read back, so a test can add
up what a chart draws and compare it with a count taken in SQL.

All text is escaped here; the functions return :class:`markupsafe.Markup` so templates
insert them as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from markupsafe import Markup

from auditor.vocabulary import DetectorName, ReviewStatus, Severity

__all__ = [
    "DETECTOR_COLORS",
    "SEVERITY_COLORS",
    "STATUS_COLORS",
    "Bar",
    "BaselineRow",
    "Series",
    "baseline_chart",
    "fmt_count",
    "horizontal_bars",
    "legend",
    "nice_ceiling",
    "proportion_bar",
    "stacked_columns",
    "tick_step",
]

SEVERITY_COLORS: Final = {
    Severity.CRITICAL: "#9b1c1c",
    Severity.HIGH: "#dd6b20",
    Severity.MEDIUM: "#d69e2e",
    Severity.LOW: "#3182ce",
    Severity.INFO: "#a0aec0",
}
"""Hot to cold, so the eye finds the urgent part of a stack first."""

DETECTOR_COLORS: Final = {
    # Okabe-Ito: told apart by people with the common colour-vision deficiencies.
    DetectorName.LEAKED_TOKEN: "#0072b2",
    DetectorName.PHI_IN_LOGS: "#cc79a7",
    DetectorName.REPLAY_BURST: "#d55e00",
    DetectorName.VALIDATION_ANOMALY: "#009e73",
    DetectorName.POLICY: "#e69f00",
}

STATUS_COLORS: Final = {
    ReviewStatus.OPEN: "#c53030",
    ReviewStatus.ACKNOWLEDGED: "#dd6b20",
    ReviewStatus.ASSIGNED: "#d69e2e",
    ReviewStatus.RESOLVED: "#2f855a",
    ReviewStatus.FALSE_POSITIVE: "#718096",
}

_AXIS: Final = "#a0aec0"
_GRID: Final = "#e2e8f0"
_TEXT: Final = "#4a5568"
_FONT: Final = 11
_MAX_X_LABELS: Final = 10


@dataclass(frozen=True, slots=True)
class Series:
    """One named, coloured series of values (one value per column, or a single value)."""

    name: str
    label: str
    color: str
    values: tuple[int, ...]

    @property
    def total(self) -> int:
        """The sum of the series."""
        return sum(self.values)


@dataclass(frozen=True, slots=True)
class Bar:
    """One labelled bar of a horizontal bar chart."""

    name: str
    label: str
    value: int
    color: str


@dataclass(frozen=True, slots=True)
class BaselineRow:
    """One incident measured against what is normal: observed count and baseline."""

    name: str
    label: str
    observed: float
    baseline: float | None
    note: str = ""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _n(value: float) -> str:
    # Coordinates with two decimals: exact enough, and stable for golden comparisons.
    return f"{value:.2f}".rstrip("0").rstrip(".")


def fmt_count(value: float) -> str:
    """A count for people: thousands separated, no needless decimals."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power:
            return step * power
    return 10.0 * power  # pragma: no cover - the loop always returns


def tick_step(top: float, *, most: int = 5) -> int:
    """A whole step of 1, 2 or 5 times a power of ten giving at most ``most`` ticks to ``top``."""
    if top <= most:
        return 1
    power = 10 ** math.floor(math.log10(top / most))
    for step in (1, 2, 5, 10):
        if top / (step * power) <= most:
            return int(step * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def _open_svg(chart_id: str, title: str, width: int, height: int, total: float) -> list[str]:
    return [
        (
            f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
            f' role="img" aria-labelledby="{_e(chart_id)}-title" data-chart="{_e(chart_id)}"'
            f' data-total="{_n(total)}" font-size="{_FONT}">'
        ),
        f'<title id="{_e(chart_id)}-title">{_e(title)}</title>',
    ]


def _empty(parts: list[str], width: int, height: int, message: str) -> None:
    parts.append(
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="{_TEXT}"'
        f' class="chart-empty">{_e(message)}</text>'
    )


def stacked_columns(
    chart_id: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "findings",
    width: int = 1200,
    height: int = 240,
    empty: str = "Nothing in this period",
) -> Markup:
    """Columns over time (one per label), stacked by series.

    Args:
        chart_id: A stable id for the chart (``data-chart``); unique within a page.
        labels: One label per column, e.g. days.
        series: The stacks, first at the bottom; each has one value per label.
        title: What the chart shows, for screen readers and tooltips.
        unit: The noun counted, for tooltips.
        width: The drawing's width in user units (it scales to its container).
        height: The drawing's height in user units.
        empty: What to say when every value is zero.
    """
    if any(len(s.values) != len(labels) for s in series):
        raise ValueError("every series needs one value per label")
    left, right, top, bottom = 40, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    stacks = [sum(s.values[i] for s in series) for i in range(len(labels))]
    total = sum(stacks)
    parts = _open_svg(chart_id, title, width, height, total)
    step = tick_step(max(stacks, default=0))
    ticks = max(1, math.ceil(max(stacks, default=0) / step))
    top_value = step * ticks
    for k in range(ticks + 1):
        y = top + plot_h - plot_h * k / ticks
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{_n(y)}" y2="{_n(y)}"'
            f' stroke="{_GRID if k else _AXIS}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{_n(y + 4)}" text-anchor="end" fill="{_TEXT}">'
            f"{_e(fmt_count(step * k))}</text>"
        )
    if total == 0 or not labels:
        _empty(parts, width, height, empty)
        parts.append("</svg>")
        return Markup("".join(parts))  # noqa: S704 - every piece is escaped above
    slot = plot_w / len(labels)
    bar_w = max(1.0, slot * 0.72)
    every = max(1, math.ceil(len(labels) / _MAX_X_LABELS))
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        base = float(top + plot_h)
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top_value
            base -= h
            parts.append(
                f'<rect x="{_n(x)}" y="{_n(base)}" width="{_n(bar_w)}" height="{_n(h)}"'
                f' fill="{_e(s.color)}" data-series="{_e(s.name)}" data-label="{_e(label)}"'
                f' data-value="{value}"><title>{_e(label)} · {_e(s.label)}: '
                f"{_e(fmt_count(value))} {_e(unit)}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{_n(left + slot * i + slot / 2)}" y="{height - 8}"'
                f' text-anchor="middle" fill="{_TEXT}">{_e(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every piece is escaped above


def legend(chart_id: str, series: Sequence[Series | Bar], *, hide_empty: bool = False) -> Markup:
    """The key of a chart, with each series' total, as an HTML list."""
    items = []
    for s in series:
        total = s.total if isinstance(s, Series) else s.value
        if hide_empty and total == 0:
            continue
        items.append(
            f'<li data-series="{_e(s.name)}" data-total="{total}">'
            f'<svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">'
            f'<rect width="10" height="10" rx="2" fill="{_e(s.color)}"/></svg>'
            f'<span class="legend-label">{_e(s.label)}</span>'
            f' <span class="legend-total">{_e(fmt_count(total))}</span></li>'
        )
    return Markup(  # noqa: S704 - every piece is escaped above
        f'<ul class="legend" data-legend-for="{_e(chart_id)}">{"".join(items)}</ul>'
    )


def horizontal_bars(
    chart_id: str,
    bars: Sequence[Bar],
    *,
    title: str,
    unit: str,
    width: int = 600,
    row: int = 24,
    label_width: int = 160,
    empty: str = "Nothing in this period",
) -> Markup:
    """One bar per item, longest scale first as given; the value is written at its end."""
    height = max(row * len(bars), row * 2) + 8
    total = sum(b.value for b in bars)
    parts = _open_svg(chart_id, title, width, height, total)
    if not bars or total == 0:
        _empty(parts, width, height, empty)
        parts.append("</svg>")
        return Markup("".join(parts))  # noqa: S704 - every piece is escaped above
    plot_w = width - label_width - 70
    top_value = max(b.value for b in bars)
    for i, b in enumerate(bars):
        y = 4 + i * row
        w = max(1.0, plot_w * b.value / top_value)
        parts.append(
            f'<text x="{label_width - 8}" y="{_n(y + row / 2 + 4)}" text-anchor="end"'
            f' fill="{_TEXT}">{_e(b.label)}</text>'
            f'<rect x="{label_width}" y="{_n(y + 4)}" width="{_n(w)}" height="{row - 8}"'
            f' rx="2" fill="{_e(b.color)}" data-series="{_e(b.name)}" data-value="{b.value}">'
            f"<title>{_e(b.label)}: {_e(fmt_count(b.value))} {_e(unit)}</title></rect>"
            f'<text x="{_n(label_width + w + 6)}" y="{_n(y + row / 2 + 4)}" fill="{_TEXT}"'
            f' class="bar-value">{_e(fmt_count(b.value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every piece is escaped above


def proportion_bar(
    chart_id: str, parts_in: Sequence[Series], *, title: str, unit: str = "findings"
) -> Markup:
    """One bar split in proportion to each part's total (e.g. findings by review status)."""
    width, height = 600, 22
    total = sum(p.total for p in parts_in)
    parts = _open_svg(chart_id, title, width, height, total)
    if total == 0:
        parts.append(f'<rect width="{width}" height="{height}" rx="4" fill="{_GRID}"/>')
        parts.append("</svg>")
        return Markup("".join(parts))  # noqa: S704 - every piece is escaped above
    x = 0.0
    for p in parts_in:
        if p.total <= 0:
            continue
        w = width * p.total / total
        share = 100 * p.total / total
        parts.append(
            f'<rect x="{_n(x)}" y="0" width="{_n(w)}" height="{height}" fill="{_e(p.color)}"'
            f' data-series="{_e(p.name)}" data-value="{p.total}"><title>{_e(p.label)}: '
            f"{_e(fmt_count(p.total))} {_e(unit)} ({share:.0f}%)</title></rect>"
        )
        x += w
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every piece is escaped above


def baseline_chart(
    chart_id: str,
    rows: Sequence[BaselineRow],
    *,
    title: str,
    unit: str = "failures",
    width: int = 600,
    row: int = 30,
    label_width: int = 180,
) -> Markup:
    """Observed counts as bars with the baseline marked on each, for anomalies.

    The baseline is the detector's expected level for the same window; the distance
    between the bar's end and the mark is what made the incident an anomaly.
    """
    height = max(row * len(rows), row) + 22
    parts = _open_svg(chart_id, title, width, height, sum(r.observed for r in rows))
    if not rows:
        _empty(parts, width, height, "No anomalies in this period")
        parts.append("</svg>")
        return Markup("".join(parts))  # noqa: S704 - every piece is escaped above
    plot_w = width - label_width - 90
    scale = nice_ceiling(max(max(r.observed, r.baseline or 0.0) for r in rows))
    for i, r in enumerate(rows):
        y = 4 + i * row
        w = max(1.0, plot_w * r.observed / scale)
        parts.append(
            f'<text x="{label_width - 8}" y="{_n(y + row / 2 + 4)}" text-anchor="end"'
            f' fill="{_TEXT}">{_e(r.label)}</text>'
            f'<rect x="{label_width}" y="{_n(y + 6)}" width="{_n(plot_w)}" height="{row - 12}"'
            f' fill="{_GRID}" rx="2"/>'
            f'<rect x="{label_width}" y="{_n(y + 6)}" width="{_n(w)}" height="{row - 12}"'
            f' rx="2" fill="{SEVERITY_COLORS[Severity.HIGH]}" data-series="{_e(r.name)}"'
            f' data-value="{_n(r.observed)}"><title>{_e(r.label)}: '
            f"{_e(fmt_count(r.observed))} {_e(unit)} observed{_e(r.note)}</title></rect>"
        )
        if r.baseline is not None:
            bx = label_width + plot_w * r.baseline / scale
            parts.append(
                f'<line x1="{_n(bx)}" x2="{_n(bx)}" y1="{_n(y + 2)}" y2="{_n(y + row - 2)}"'
                f' stroke="#1a202c" stroke-width="2.5" data-baseline="{_n(r.baseline)}">'
                f"<title>baseline: {_e(fmt_count(r.baseline))} {_e(unit)}</title></line>"
            )
        parts.append(
            f'<text x="{_n(label_width + plot_w + 8)}" y="{_n(y + row / 2 + 4)}"'
            f' fill="{_TEXT}">{_e(fmt_count(r.observed))}'
            + (f" / {_e(fmt_count(r.baseline))}" if r.baseline is not None else "")
            + "</text>"
        )
    legend_y = height - 6
    parts.append(
        f'<rect x="{label_width}" y="{legend_y - 9}" width="10" height="10" rx="2"'
        f' fill="{SEVERITY_COLORS[Severity.HIGH]}"/>'
        f'<text x="{label_width + 14}" y="{legend_y}" fill="{_TEXT}">observed in the window</text>'
        f'<line x1="{label_width + 170}" x2="{label_width + 170}" y1="{legend_y - 10}"'
        f' y2="{legend_y + 1}" stroke="#1a202c" stroke-width="2.5"/>'
        f'<text x="{label_width + 176}" y="{legend_y}" fill="{_TEXT}">baseline (expected)</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every piece is escaped above

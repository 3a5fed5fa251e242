"""Geometry for the inline SVG charts of the lead pages, computed on the server.

No JavaScript charting: a view asks for a chart, gets numbers (coordinates, colours,
labels), and a template draws them as SVG. Every chart also has a table beside it on the
page, so the numbers are readable without the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

LABEL_WIDTH = 150
VALUE_WIDTH = 150
ROW_HEIGHT = 30
BAR_HEIGHT = 16
PLOT_WIDTH = 420
TOP = 24
BOTTOM = 28


@dataclass
class CiRow:
    label: str
    value: float | None
    lo: float | None
    hi: float | None
    lang: str = ""
    dir: str = "ltr"
    flagged: bool = False
    # Filled in by ci_chart:
    y: float = 0
    bar_x: float = 0
    bar_width: float = 0
    lo_x: float | None = None
    hi_x: float | None = None
    value_x: float | None = None
    text: str = ""


@dataclass
class CiChart:
    rows: list[CiRow]
    width: int
    height: int
    plot_x: int
    plot_width: int
    ticks: list[dict[str, Any]] = field(default_factory=list)
    threshold_x: float | None = None
    threshold_label: str = ""
    zero_x: float = 0
    title: str = ""
    bar_height: int = BAR_HEIGHT


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(lo / step) * step
    ticks = []
    x = first
    while x <= hi + 1e-9:
        ticks.append(round(x, 10))
        x += step
    return ticks


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def ci_chart(
    rows: list[CiRow],
    *,
    lo: float,
    hi: float,
    title: str,
    threshold: float | None = None,
    threshold_label: str = "",
    digits: int = 2,
) -> CiChart:
    """Horizontal bars from the baseline to each value, with the CI as a whisker."""
    values = [v for r in rows for v in (r.value, r.lo, r.hi) if v is not None]
    lo = min([lo, *values])
    hi = max([hi, *values])
    if hi <= lo:
        hi = lo + 1
    plot_x = LABEL_WIDTH

    def x_of(v: float) -> float:
        return plot_x + (v - lo) / (hi - lo) * PLOT_WIDTH

    base = 0.0 if lo <= 0 <= hi else lo
    zero_x = x_of(base)
    for k, row in enumerate(rows):
        row.y = TOP + k * ROW_HEIGHT
        if row.value is not None:
            vx = x_of(row.value)
            row.bar_x, row.bar_width = min(zero_x, vx), abs(vx - zero_x)
            row.value_x = vx
            row.text = _fmt(row.value, digits)
            if row.lo is not None and row.hi is not None:
                row.lo_x, row.hi_x = x_of(row.lo), x_of(row.hi)
                row.text += f" [{_fmt(row.lo, digits)}, {_fmt(row.hi, digits)}]"
        else:
            row.text = "—"
    height = TOP + len(rows) * ROW_HEIGHT + BOTTOM
    ticks = [{"x": x_of(t), "label": f"{t:g}"} for t in _nice_ticks(lo, hi)]
    return CiChart(
        rows=rows,
        width=LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH,
        height=height,
        plot_x=plot_x,
        plot_width=PLOT_WIDTH,
        ticks=ticks,
        threshold_x=x_of(threshold) if threshold is not None and lo <= threshold <= hi else None,
        threshold_label=threshold_label,
        zero_x=zero_x,
        title=title,
    )


@dataclass
class HeatCell:
    x: int
    y: int
    value: float | None
    fill: str
    text: str
    text_fill: str
    shared: int


@dataclass
class HeatMap:
    labels: list[dict[str, Any]]
    cells: list[HeatCell]
    size: int
    cell: int
    offset: int
    width: int
    height: int
    title: str
    legend: list[dict[str, Any]]


def _kappa_colour(value: float | None) -> tuple[str, str]:
    """Diverging scale: red below 0 (worse than chance), white at 0, blue towards 1."""
    if value is None:
        return "#eceff3", "#5f6368"
    v = max(-1.0, min(1.0, value))
    if v >= 0:
        r, g, b = (int(255 - v * (255 - c)) for c in (36, 84, 214))
    else:
        r, g, b = (int(255 - -v * (255 - c)) for c in (179, 38, 30))
    text = "#ffffff" if abs(v) > 0.55 else "#1d1d1f"
    return f"#{r:02x}{g:02x}{b:02x}", text


def heat_map(
    *, labels: list[str], values: list[list[float | None]], shared: list[list[int]], title: str
) -> HeatMap:
    """An evaluator × evaluator grid of Cohen's kappa; empty cells where too few items are shared."""
    n = len(labels)
    cell = 44 if n <= 12 else 28 if n <= 24 else 18
    offset = 140
    cells = []
    for i in range(n):
        for j in range(n):
            value = values[i][j]
            fill, text_fill = _kappa_colour(value)
            cells.append(
                HeatCell(
                    x=offset + j * cell,
                    y=offset + i * cell,
                    value=value,
                    fill=fill,
                    text="" if value is None or cell < 28 else f"{value:.2f}",
                    text_fill=text_fill,
                    shared=shared[i][j],
                )
            )
    legend = [
        {"value": v, "fill": _kappa_colour(v)[0], "x": offset + k * 40}
        for k, v in enumerate((-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0))
    ]
    return HeatMap(
        labels=[
            {"text": label, "pos": offset + k * cell + cell / 2} for k, label in enumerate(labels)
        ],
        cells=cells,
        size=n,
        cell=cell,
        offset=offset,
        # Column labels are rotated up and to the right: leave room for the last ones.
        width=max(offset + n * cell + 110, offset + 7 * 40 + 10),
        height=offset + n * cell + 50,
        title=title,
        legend=legend,
    )

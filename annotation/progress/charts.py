"""Geometry of the progress charts (inline SVG drawn by templates/annotation/lead/
_progress_chart.html): one line per language across model versions or periods, each
point with its 95% CI as a whisker. Computed on the server like annotation.charts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Colour-blind-safe (Okabe–Ito, then Tol's muted) so ten languages stay apart in print.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#332288",
    "#882255",
    "#117733",
    "#999933",
)
LEFT = 48
RIGHT = 16
TOP = 16
PLOT_HEIGHT = 220
BOTTOM = 70
MIN_STEP = 44
WIDTH = 720


@dataclass
class Point:
    x: float
    y: float
    lo_y: float | None
    hi_y: float | None
    title: str


@dataclass
class Line:
    label: str
    colour: str
    points: list[Point]
    path: str
    legend_y: float = 0


@dataclass
class ProgressChart:
    title: str
    width: int
    height: int
    plot_left: int
    plot_right: float
    plot_top: int
    plot_bottom: int
    lines: list[Line]
    x_labels: list[dict[str, Any]]
    y_ticks: list[dict[str, Any]] = field(default_factory=list)
    zero_y: float | None = None


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    out, x = [], math.ceil(lo / step) * step
    while x <= hi + 1e-9:
        out.append(round(x, 10))
        x += step
    return out


@dataclass(frozen=True)
class _Scale:
    """The chart's vertical scale: from `lo` at the bottom to `hi` at the top."""

    lo: float
    hi: float

    def y(self, v: float) -> float:
        return TOP + (self.hi - v) / (self.hi - self.lo) * PLOT_HEIGHT


def _picked(entry: dict[str, Any], field_name: str) -> tuple[float | None, list[float | None]]:
    """The plotted value and its interval: the entry's, or its gap's with field_name="gap"."""
    if field_name == "gap":
        gap = entry.get("gap") or {}
        return gap.get("value"), gap.get("ci") or [None, None]
    return entry["value"], entry["ci"]


def _scale(report: dict[str, Any], field_name: str, lo: float | None, hi: float | None) -> _Scale:
    """Every plotted value and interval end fits, within `lo` and `hi` when given."""
    values = [
        v
        for row in report["languages"]
        for e in row["series"]
        for v in (_picked(e, field_name)[0], *_picked(e, field_name)[1])
        if v is not None
    ]
    low = min([*([lo] if lo is not None else []), *values], default=0.0)
    high = max([*([hi] if hi is not None else []), *values], default=1.0)
    if high <= low:
        high = low + 1
    return _Scale(low, high)


def _line(
    row: dict[str, Any],
    n: int,
    *,
    keys: list[str],
    step: float,
    scale: _Scale,
    field_name: str,
    digits: int,
) -> Line:
    """One language's line: a point per key with a value, its whisker and its tooltip."""
    points = []
    for entry in row["series"]:
        value, ci = _picked(entry, field_name)
        if value is None:
            continue
        x = LEFT + step * (keys.index(entry["key"]) + 0.5)
        text = f"{row['language']} · {entry['key']}: {value:.{digits}f}"
        if ci[0] is not None and ci[1] is not None:
            text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
        points.append(
            Point(
                x=x,
                y=scale.y(value),
                lo_y=scale.y(ci[0]) if ci[0] is not None else None,
                hi_y=scale.y(ci[1]) if ci[1] is not None else None,
                title=text,
            )
        )
    path = " ".join(f"{'M' if k == 0 else 'L'}{p.x:.1f},{p.y:.1f}" for k, p in enumerate(points))
    return Line(
        label=f"{row['name']} ({row['language']})",
        colour=PALETTE[n % len(PALETTE)],
        points=points,
        path=path,
        legend_y=TOP + PLOT_HEIGHT + BOTTOM + 16 * n,
    )


def progress_chart(
    *,
    report: dict[str, Any],
    title: str,
    field_name: str = "value",
    lo: float | None = None,
    hi: float | None = None,
    digits: int = 2,
) -> ProgressChart:
    """Lines of `series[field_name]` (value, or gap.value with field_name="gap") per language."""
    keys = [k["key"] for k in report["keys"]]
    labels = [k.get("label", k["key"]) for k in report["keys"]]
    step = max(MIN_STEP, (WIDTH - LEFT - RIGHT) / max(1, len(keys)))
    width = int(max(WIDTH, LEFT + RIGHT + step * len(keys)))
    scale = _scale(report, field_name, lo, hi)
    lines = [
        _line(row, n, keys=keys, step=step, scale=scale, field_name=field_name, digits=digits)
        for n, row in enumerate(report["languages"])
    ]
    height = TOP + PLOT_HEIGHT + BOTTOM + 16 * len(lines) + 8
    return ProgressChart(
        title=title,
        width=width,
        height=height,
        plot_left=LEFT,
        plot_right=width - RIGHT,
        plot_top=TOP,
        plot_bottom=TOP + PLOT_HEIGHT,
        lines=lines,
        x_labels=[
            {"x": LEFT + step * (k + 0.5), "text": label[:18]} for k, label in enumerate(labels)
        ],
        y_ticks=[{"y": scale.y(t), "text": f"{t:g}"} for t in _ticks(scale.lo, scale.hi)],
        zero_y=scale.y(0.0) if scale.lo < 0 < scale.hi else None,
    )

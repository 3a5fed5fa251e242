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

    def pick(entry: dict[str, Any]) -> tuple[float | None, list[float | None]]:
        if field_name == "gap":
            gap = entry.get("gap") or {}
            return gap.get("value"), gap.get("ci") or [None, None]
        return entry["value"], entry["ci"]

    values = [
        v
        for row in report["languages"]
        for e in row["series"]
        for v in (pick(e)[0], *pick(e)[1])
        if v is not None
    ]
    lo = min([*([lo] if lo is not None else []), *values], default=0.0)
    hi = max([*([hi] if hi is not None else []), *values], default=1.0)
    if hi <= lo:
        hi = lo + 1

    def y_of(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * PLOT_HEIGHT

    lines = []
    for n, row in enumerate(report["languages"]):
        points = []
        for entry in row["series"]:
            value, ci = pick(entry)
            if value is None:
                continue
            x = LEFT + step * (keys.index(entry["key"]) + 0.5)
            text = f"{row['language']} · {entry['key']}: {value:.{digits}f}"
            if ci[0] is not None and ci[1] is not None:
                text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
            points.append(
                Point(
                    x=x,
                    y=y_of(value),
                    lo_y=y_of(ci[0]) if ci[0] is not None else None,
                    hi_y=y_of(ci[1]) if ci[1] is not None else None,
                    title=text,
                )
            )
        path = " ".join(
            f"{'M' if k == 0 else 'L'}{p.x:.1f},{p.y:.1f}" for k, p in enumerate(points)
        )
        lines.append(
            Line(
                label=f"{row['name']} ({row['language']})",
                colour=PALETTE[n % len(PALETTE)],
                points=points,
                path=path,
                legend_y=TOP + PLOT_HEIGHT + BOTTOM + 16 * n,
            )
        )
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
        y_ticks=[{"y": y_of(t), "text": f"{t:g}"} for t in _ticks(lo, hi)],
        zero_y=y_of(0.0) if lo < 0 < hi else None,
    )

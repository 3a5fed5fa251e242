"""What to do next, per language: calibrate, review a regression, run an active-learning
round with the budget that would call the undecided change or gap, adjudicate.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from annotation.models import Project
from annotation.progress.options import MIN_EFFECT_SHARE
from annotation.progress.stats import needed_items


def next_actions(
    project: Project,
    row: dict[str, Any],
    *,
    by: str,
    cis: dict[tuple[str, str], list[float | None]],
    measure_range: float,
) -> list[dict[str, Any]]:
    """Next steps for one language, each with the link that does it. Messages are English
    for pipelines; the pages word each action from its code."""
    actions: list[dict[str, Any]] = []
    tag = row["language"]
    alpha = row["agreement"]["alpha"]
    if alpha is not None and alpha < project.agreement_threshold:
        actions.append(
            {
                "code": "calibrate",
                "message": f"agreement {alpha:.3f} is below the threshold {project.agreement_threshold:.3f}: "
                "open a calibration round",
                "url": reverse("guidelines:lead_rounds", args=[project.slug]) + f"?language={tag}",
            }
        )
    latest: dict[str, Any] | None = row["series"][-1] if row["series"] else None
    change = latest["change"] if latest else None
    if latest and change and change["verdict"] == "worse":
        actions.append(
            {
                "code": "regression",
                "message": f"quality fell by {-change['value']:.3f} from {change['from']} to {latest['key']}: "
                "review the items that got worse",
                "url": reverse("annotation:progress_regressed", args=[project.slug, tag])
                + "?"
                + _query({"by": by, "key": latest["key"], "from": change["from"]}),
            }
        )
    budget = _budget(row, cis, measure_range) if latest else 0
    if budget:
        actions.append(
            {
                "code": "active_learning",
                "message": f"the intervals are too wide to call the change or the gap: about {budget} more "
                "judged items would; run an active-learning round with the parity strategy",
                "budget": budget,
                "url": reverse("active_learning:rounds", args=[project.slug])
                + "?"
                + _query({"strategy": "parity", "budget": budget, "language": tag}),
            }
        )
    if row["items_in_adjudication"]:
        actions.append(
            {
                "code": "adjudicate",
                "message": f"{row['items_in_adjudication']} items wait for adjudication",
                "count": row["items_in_adjudication"],
                "url": reverse("annotation:adjudication_queue", args=[project.slug]),
            }
        )
    return actions


def _query(params: dict[str, Any]) -> str:
    return urlencode(params)


def _half_width(ci: list[float | None]) -> float | None:
    return (ci[1] - ci[0]) / 2 if ci[0] is not None and ci[1] is not None else None


def _budget(
    row: dict[str, Any], cis: dict[tuple[str, str], list[float | None]], measure_range: float
) -> int:
    """More judged items of this language's latest version or period that would let its
    interval call what is still undecided: the change from the previous key, or the gap to
    the best language. Two groups are independent, so a difference's half-width is
    √(h_this² + h_other²); only h_this shrinks (as 1/√n) with items of this language, and
    the difference is called once its half-width is below half its size (never asking for
    less than MIN_EFFECT_SHARE of the range). A difference the other group alone keeps
    undecided asks for nothing."""
    latest = row["series"][-1]
    h_this = _half_width(latest["ci"])
    if h_this is None or h_this <= 0:
        return 0
    floor = MIN_EFFECT_SHARE * measure_range
    undecided: list[tuple[dict[str, Any], float | None]] = []
    change = latest["change"]
    if change and change["verdict"] == "no_evidence":
        undecided.append(
            (change, _half_width(cis.get((row["language"], change["from"]), [None, None])))
        )
    gap = latest["gap"]
    if gap and gap["value"] and gap["ci"][0] is not None and gap["ci"][0] <= 0:
        undecided.append((gap, _half_width(cis.get((gap["best"], latest["key"]), [None, None]))))
    needs = []
    for diff, h_other in undecided:
        if diff["value"] is None or h_other is None:
            continue
        target = max(abs(diff["value"]), floor) / 2
        room = target**2 - h_other**2
        if room <= 0:
            continue
        needs.append(needed_items(n=latest["items"], half_width=h_this, target=math.sqrt(room)))
    return max(needs, default=0)

"""The parity report over time: per language, quality by model version or by period of
judgment with bootstrap CIs, the change from the previous version or period, the gap to
the best language and whether it narrowed; Bradley–Terry strengths for pairwise
projects; agreement per guideline version and calibration round; breakdowns by
evaluator dialect, item domain and task, and code-switching; and what to do next.

Quality is measured as in the snapshot report (`annotation.agreement.parity_report`):
one score per item — its label under the project's one label rule, as a number
(`annotation.labels.label_score`; for pairwise, per model: how far the label favours that
model's side) — from items not picked by an uncertainty selector, with a final label in
place of its item's judgments. An item belongs to the period of its latest counted
judgment. The data are read as arrays (`annotation.progress_data`); the maths is in
`annotation.progress_stats` (no Django).
"""

from __future__ import annotations

import csv
import datetime
import io
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from annotation.agreement.alpha import CONFIDENCE, MAX_RESAMPLES
from annotation.agreement.loading import CALIBRATION_KINDS, _alpha_summary, _judgments_load, _Scheme
from annotation.agreement.parity import _quality_measure
from annotation.audit import AL_ROUND_RUN, audit_record
from annotation.labels import label_scores
from annotation.model_versions import model_versions_for
from annotation.models import AuditEvent, Item, ItemStatus, Language, Project, TaskType
from annotation.progress_data import NONE_KEY, ProgressData, judgment_dialects, progress_data_load
from annotation.progress_stats import (
    bootstrap_group_means,
    bradley_terry_bootstrap,
    needed_items,
    progress_series,
    unique_inverse,
)

BY_CHOICES = ("model", "period")
PERIODS = ("week", "month")
VERDICTS = {1: "better", -1: "worse", 0: "no_evidence"}
GAP_VERDICTS = {1: "widened", -1: "narrowed", 0: "no_evidence"}
# A change smaller than this share of the measure's range is not worth more items to call.
MIN_EFFECT_SHARE = 0.05
# The regressed-items list shows at most this many items.
REGRESSED_LIMIT = 200
SHARE_SALT = "annotation.progress.share"
SHARE_MAX_DAYS = 90


def _opt(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _pair(ci: np.ndarray) -> list[float | None]:
    return [_opt(ci[0]), _opt(ci[1])]


def progress_args_clean(
    *, by: Any, period: Any = None, resamples: Any = 1000, seed: Any = 0
) -> dict[str, Any]:
    """Check the report's arguments; ValidationError names the bad one (API and CLI)."""
    if by not in BY_CHOICES:
        raise ValidationError(f"by must be one of {', '.join(BY_CHOICES)}, not {by!r}")
    period = period or "week"
    if period not in PERIODS:
        raise ValidationError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    if (
        isinstance(resamples, bool)
        or not isinstance(resamples, int)
        or not 0 <= resamples <= MAX_RESAMPLES
    ):
        raise ValidationError(f"resamples must be a whole number from 0 to {MAX_RESAMPLES}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError("seed must be a whole number ≥ 0")
    return {"by": by, "period": period, "resamples": resamples, "seed": seed}


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------


def _ordered_keys(project: Project, by: str, present: Sequence[str]) -> list[dict[str, Any]]:
    if by == "period":
        return [{"key": k, "label": k} for k in sorted(present)]
    registry = {mv.name: mv for mv in model_versions_for(project=project)}
    order = {name: k for k, name in enumerate(registry)}
    keys = sorted(set(present), key=lambda k: (order.get(k, len(order)), k))
    out = []
    for key in keys:
        mv = registry.get(key)
        out.append(
            {
                "key": key,
                "label": f"{key} {mv.version}".strip() if mv else key,
                "version": mv.version if mv else "",
                "released_on": mv.released_on.isoformat() if mv and mv.released_on else None,
            }
        )
    return out


def _focus_rows(data: ProgressData, items: np.ndarray, focus: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise: the rows of the focus model's side of `items` — (item, score) with the
    item's score where it is side A and 1 − score where it is side B."""
    a = items[data.model_a[items] == focus]
    b = items[data.model_b[items] == focus]
    return np.concatenate([a, b]), np.concatenate([data.score[a], 1 - data.score[b]])


def progress_report(
    *,
    project: Project,
    by: str = "model",
    period: str = "week",
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The progress report (see the module docstring). `by` is "model" (model versions in
    release order) or "period" (`period` = week or month of judgment)."""
    args = progress_args_clean(by=by, period=period, resamples=resamples, seed=seed)
    by, period, resamples, seed = args["by"], args["period"], args["resamples"], args["seed"]
    level = project.agreement_level
    scheme = _Scheme.of(project, level)
    last_round = _last_round(project)
    data = progress_data_load(
        project=project, with_created=by == "period" or last_round is not None
    )
    pairwise = project.task_type == TaskType.PAIRWISE
    languages = list(project.languages.order_by("tag"))
    tags = data.tags
    # Quality from items an uncertainty selector did not pick (they over-represent hard
    # cases), as in the snapshot report.
    quality = np.flatnonzero(~data.uncertainty & np.isfinite(data.score))
    if pairwise:
        appearances = np.bincount(data.model_a[quality], minlength=len(data.models))
        appearances += np.bincount(data.model_b[quality], minlength=len(data.models))
        measure, focus_name = _quality_measure(
            project, {m: int(n) for m, n in zip(data.models, appearances, strict=True) if n}
        )
        focus = data.models.index(focus_name) if focus_name is not None else -1
        # Every model's side of every item: side A's score, and 1 − it for side B.
        row_item = np.concatenate([quality, quality])
        row_model = np.concatenate([data.model_a[quality], data.model_b[quality]])
        row_score = np.concatenate([data.score[quality], 1 - data.score[quality]])
        head_item, head_score = _focus_rows(data, quality, focus)
    else:
        measure, _ = _quality_measure(project, {})
        focus = -1
        row_item, row_model, row_score = quality, data.model[quality], data.score[quality]
        head_item, head_score = quality, data.score[quality]

    if by == "model":
        present = np.unique(row_model)
        keys = _ordered_keys(project, by, [data.models[k] for k in present])
        table = np.full(len(data.models), -1, dtype=np.int64)
        table[[data.models.index(k["key"]) for k in keys]] = np.arange(len(keys))
        series_item, series_score, series_key = row_item, row_score, table[row_model]
    else:
        item_period, period_names = data.item_periods(period)
        present = np.unique(item_period[row_item]) if len(row_item) else np.zeros(0, np.int64)
        keys = _ordered_keys(project, by, [period_names[k] for k in present])
        table = np.full(len(period_names), -1, dtype=np.int64)
        table[present] = np.arange(len(keys))
        # By period, pairwise projects follow the headline (the focus model's win rate).
        series_item, series_score = head_item, head_score
        series_key = table[item_period[series_item]]
    series_lang = data.language[series_item]
    mine = series_lang >= 0
    # Model versions follow each other by release date; versions released together (or
    # undated) are not compared as if one followed the other.
    rank = (
        np.array(
            [
                datetime.date.fromisoformat(k["released_on"]).toordinal()
                if k.get("released_on")
                else np.nan
                for k in keys
            ],
            dtype=np.float64,
        )
        if by == "model"
        else None
    )
    series = progress_series(
        series_lang[mine],
        series_key[mine],
        series_score[mine],
        n_languages=len(tags),
        n_keys=len(keys),
        resamples=resamples,
        seed=seed,
        rank=rank,
    )

    counts = data.status_counts
    rounds = _calibration_alpha(project, scheme, resamples=resamples, seed=seed)
    breakdowns = _breakdowns(
        data, quality, head_item, head_score, focus, resamples=resamples, seed=seed
    )
    lo_measure, hi_measure = _measure_range(project)
    j_language = data.language[data.j_item]
    since_round = (
        _since_round(data, last_round, focus, languages, resamples=resamples, seed=seed)
        if last_round is not None
        else None
    )

    rows = []
    for li, lang in enumerate(languages):
        tag = lang.tag
        series_out = []
        for ki, key in enumerate(keys):
            if series.n[li, ki] == 0:
                continue
            prev = int(series.previous[li, ki])
            entry: dict[str, Any] = {
                "key": key["key"],
                "items": int(series.n[li, ki]),
                "value": _opt(series.mean[li, ki]),
                "ci": _pair(series.ci[li, ki]),
                "change": None,
                "gap": None,
            }
            if prev >= 0:
                entry["change"] = {
                    "from": keys[prev]["key"],
                    "value": _opt(series.change[li, ki]),
                    "ci": _pair(series.change_ci[li, ki]),
                    "verdict": VERDICTS[int(series.change_verdict[li, ki])],
                }
            best = int(series.best[ki])
            if best >= 0 and np.isfinite(series.gap[li, ki]):
                gap: dict[str, Any] = {
                    "best": tags[best],
                    "value": _opt(series.gap[li, ki]),
                    "ci": _pair(series.gap_ci[li, ki]),
                    "change": None,
                }
                if prev >= 0 and np.isfinite(series.gap_change[li, ki]):
                    gap["change"] = {
                        "from": keys[prev]["key"],
                        "value": _opt(series.gap_change[li, ki]),
                        "ci": _pair(series.gap_change_ci[li, ki]),
                        "verdict": GAP_VERDICTS[int(series.gap_change_verdict[li, ki])],
                    }
                entry["gap"] = gap
            series_out.append(entry)
        in_language = j_language == li
        sub = data.judgments.subset(in_language)
        agreement = _alpha_summary(sub, scheme, resamples=resamples, seed=seed, package=False)
        by_guideline = []
        if len(sub):
            versions = data.j_guideline[in_language]
            distinct = np.unique(versions)
            for code in sorted(distinct, key=lambda c: data.guidelines[c]):
                # One version: its alpha is the language's (same judgments, same seed).
                summary = (
                    agreement
                    if len(distinct) == 1
                    else _alpha_summary(
                        sub.subset(versions == code),
                        scheme,
                        resamples=resamples,
                        seed=seed,
                        package=False,
                    )
                )
                by_guideline.append(
                    {
                        "version": data.guidelines[code],
                        "alpha": summary["alpha"],
                        "ci": summary["ci"],
                        "units": summary["units"],
                        "judgments": summary["judgments"],
                    }
                )
        row: dict[str, Any] = {
            "language": tag,
            "name": lang.name,
            "direction": lang.direction,
            "series": series_out,
            "agreement": {
                "alpha": agreement["alpha"],
                "ci": agreement["ci"],
                "units": agreement["units"],
                "by_guideline_version": by_guideline,
                "by_calibration_round": rounds.get(tag, []),
            },
            "breakdowns": breakdowns[tag],
            "items_in_adjudication": int(counts.get(tag, {}).get("adjudication", 0)),
            "items_in_pool": int(counts.get(tag, {}).get("pool", 0)),
        }
        if pairwise:
            row["bradley_terry"] = _bradley_terry(
                data, quality[data.language[quality] == li], resamples=resamples, seed=seed
            )
        rows.append(row)
    # Each (language, key)'s interval, for the budget of a difference between two of them.
    cis = {(row["language"], e["key"]): e["ci"] for row in rows for e in row["series"]}
    for row in rows:
        row["actions"] = _actions(
            project, row, by=by, cis=cis, measure_range=hi_measure - lo_measure
        )
    return {
        "project": project.slug,
        "task_type": project.task_type,
        "by": by,
        "period": period if by == "period" else None,
        "level": level,
        "agreement_threshold": project.agreement_threshold,
        "quality": {
            **measure,
            "range": [lo_measure, hi_measure],
            "series": "every model's win rate" if by == "model" and pairwise else "headline",
        },
        "keys": keys,
        "since_round": since_round,
        "generated_at": timezone.now().isoformat(),
        "resamples": resamples,
        "seed": seed,
        "confidence": CONFIDENCE,
        "languages": rows,
    }


def _last_round(project: Project) -> AuditEvent | None:
    """The project's latest active-learning round, as the audit event it left."""
    return (
        AuditEvent.objects.filter(project=project, verb=AL_ROUND_RUN)
        .order_by("-created_at", "-pk")
        .first()
    )


def _since_round(
    data: ProgressData,
    event: AuditEvent,
    focus: int,
    languages: list[Language],
    *,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Each language as it stood when the round ran (its judgments and final labels from
    before then) and as it stands now: items judged, and the headline quality with its
    interval and the interval's width. The round's picks that an uncertainty selector
    chose are judged items but, as everywhere in the report, not quality items."""
    when = event.created_at.timestamp()
    states = (data.scores_at(when), data.score)
    judged = [data.judged_at(when), np.ones(data.n_items, dtype=bool)]
    L = len(data.tags)
    judged_count, groups, values = [], [], []
    for k, score in enumerate(states):
        quality = np.flatnonzero(~data.uncertainty & np.isfinite(score) & judged[k])
        if focus >= 0:
            a = quality[data.model_a[quality] == focus]
            b = quality[data.model_b[quality] == focus]
            item, value = np.concatenate([a, b]), np.concatenate([score[a], 1 - score[b]])
        else:
            item, value = quality, score[quality]
        mine = data.language[item] >= 0
        groups.append(data.language[item][mine] * 2 + k)
        values.append(value[mine])
        judged_languages = data.language[judged[k]]
        judged_count.append(np.bincount(judged_languages[judged_languages >= 0], minlength=L))
    gm = bootstrap_group_means(
        np.concatenate(groups),
        np.concatenate(values),
        n_groups=2 * L,
        resamples=resamples,
        seed=seed,
    )
    ci = gm.ci()
    rows = []
    for li, lang in enumerate(languages):
        state = {}
        for k, name in enumerate(("before", "after")):
            g = li * 2 + k
            lo, hi = _pair(ci[g])
            state[name] = {
                "items_judged": int(judged_count[k][li]),
                "items": int(gm.n[g]),
                "value": _opt(gm.mean[g]),
                "ci": [lo, hi],
                "ci_width": hi - lo if lo is not None and hi is not None else None,
            }
        rows.append({"language": lang.tag, "name": lang.name, "direction": lang.direction, **state})
    return {
        "round": event.object_id,
        "at": event.created_at.isoformat(),
        "strategy": event.data.get("strategy"),
        "selected": event.data.get("selected"),
        "languages": rows,
    }


def _measure_range(project: Project) -> tuple[float, float]:
    if project.task_type == TaskType.RATING:
        scale = (project.schema or {}).get("scale") or {"min": 1, "max": 5}
        return float(scale["min"]), float(scale["max"])
    return 0.0, 1.0


def _calibration_alpha(
    project: Project, scheme: Any, *, resamples: int, seed: int
) -> dict[str, list[dict[str, Any]]]:
    """Alpha of each calibration round (a language and a guideline version), on its
    calibration judgments, one evaluator's retries keeping the latest."""
    data = _judgments_load(project, kinds=CALIBRATION_KINDS, with_created=True)
    out: dict[str, list[dict[str, Any]]] = {}
    if not len(data):
        return out
    frame = data.frame.assign(
        _version=data.frame["guideline_version"].fillna("").replace("", NONE_KEY)
    )
    frame = frame.sort_values("created_at").drop_duplicates(
        ["language", "_version", "item", "rater"], keep="last"
    )
    trimmed = type(data)(frame, data.rater_labels)
    for (tag, version), index in frame.groupby(["language", "_version"]).groups.items():
        mask = frame.index.isin(index)
        summary = _alpha_summary(
            trimmed.subset(mask), scheme, resamples=resamples, seed=seed, package=False
        )
        out.setdefault(tag, []).append(
            {
                "version": version,
                "alpha": summary["alpha"],
                "ci": summary["ci"],
                "units": summary["units"],
                "judgments": summary["judgments"],
            }
        )
    return out


BREAKDOWNS = ("dialect", "domain", "task", "code_switched")


def _breakdowns(
    data: ProgressData,
    quality: np.ndarray,
    head_item: np.ndarray,
    head_score: np.ndarray,
    focus: int,
    *,
    resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Quality per evaluator dialect, item domain, task and code-switching, per language:
    one bootstrap for every group of every breakdown of every language."""
    tags = data.tags
    out: dict[str, dict[str, Any]] = {tag: {name: [] for name in BREAKDOWNS} for tag in tags}
    # (dimension, language, key code, score) parts; key names per dimension.
    parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    names: dict[str, list[str]] = {}
    for name in ("domain", "task", "code_switched"):
        codes, names[name] = data.attributes[name]
        parts.append((name, data.language[head_item], codes[head_item], head_score))
    in_quality = np.zeros(data.n_items, dtype=bool)
    in_quality[quality] = True
    chosen = np.flatnonzero(in_quality[data.j_item])
    dialect, names["dialect"] = judgment_dialects(data)
    if len(names["dialect"]) == 1:
        # No evaluator gave a dialect: the unit is the item, scored on its judgments alone.
        unit_item = quality
        unit_dialect = np.zeros(len(quality), dtype=np.int64)
        score = data.vote_score[quality]
    elif len(chosen):
        # Each dialect's judgments of an item scored on their own by the label rule, with
        # (item, dialect) as the unit; no final label speaks for a dialect.
        width = len(names["dialect"])
        unit, unit_of = unique_inverse(data.j_item[chosen] * width + dialect[chosen])
        score = label_scores(
            rule=data.rule, item=unit_of, n_items=len(unit), **data.votes_of(chosen)
        )
        unit_item, unit_dialect = unit // width, unit % width
    else:
        unit_item = unit_dialect = np.zeros(0, dtype=np.int64)
        score = np.zeros(0)
    if focus >= 0:
        a = np.flatnonzero(data.model_a[unit_item] == focus)
        b = np.flatnonzero(data.model_b[unit_item] == focus)
        rows = np.concatenate([a, b])
        unit_score = np.concatenate([score[a], 1 - score[b]])
    else:
        rows, unit_score = np.arange(len(unit_item)), score
    parts.append(("dialect", data.language[unit_item[rows]], unit_dialect[rows], unit_score))
    if not any(len(p[1]) for p in parts):
        return out
    # Groups ordered by language, dimension and key name, each list sorted.
    dims = sorted(names)
    width = max(len(n) for n in names.values())
    group = np.concatenate(
        [(lang * len(dims) + dims.index(dim)) * width + key for dim, lang, key, _ in parts]
    )
    scores = np.concatenate([p[3] for p in parts])
    keep = (group >= 0) & np.isfinite(scores)
    # The groups that have rows, numbered in order (a count per possible group, not a sort).
    present = np.flatnonzero(np.bincount(group[keep], minlength=1))
    number = np.zeros(int(present[-1]) + 1 if len(present) else 0, dtype=np.int64)
    number[present] = np.arange(len(present))
    gm = bootstrap_group_means(
        number[group[keep]], scores[keep], n_groups=len(present), resamples=resamples, seed=seed
    )
    ci = gm.ci()
    for g, code in enumerate(present):
        lang, rest = divmod(int(code), len(dims) * width)
        dim, key = divmod(rest, width)
        out[tags[lang]][dims[dim]].append(
            {
                "key": names[dims[dim]][key],
                "items": int(gm.n[g]),
                "value": _opt(gm.mean[g]),
                "ci": _pair(ci[g]),
            }
        )
    return out


def _bradley_terry(
    data: ProgressData, items: np.ndarray, *, resamples: int, seed: int
) -> list[dict[str, Any]]:
    """Bradley–Terry strengths of the models compared on `items` (one language's quality
    items), each item a comparison its label decides."""
    if not len(items):
        return []
    used, local = np.unique(
        np.concatenate([data.model_a[items], data.model_b[items]]), return_inverse=True
    )
    names = [data.models[k] for k in used]
    local = local.reshape(-1)
    bt = bradley_terry_bootstrap(
        local[: len(items)],
        local[len(items) :],
        data.score[items],
        n_models=len(names),
        resamples=resamples,
        seed=seed,
        names=names,
    )
    out = [
        {
            "model": name,
            "strength": _opt(bt.strength[k]),
            "ci": _pair(bt.ci[k]),
            "win_rate": _opt(bt.win_rate[k]),
            "win_ci": _pair(bt.win_ci[k]),
            "comparisons": int(bt.comparisons[k]),
        }
        for k, name in enumerate(names)
    ]
    out.sort(
        key=lambda r: (-(r["strength"] if r["strength"] is not None else -math.inf), r["model"])
    )
    return out


# ---------------------------------------------------------------------------------------
# What to do next
# ---------------------------------------------------------------------------------------


def _actions(
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


# ---------------------------------------------------------------------------------------
# The items that got worse
# ---------------------------------------------------------------------------------------


def regressed_items(
    *, project: Project, language: str, by: str, key: str, previous: str, period: str = "week"
) -> list[dict[str, Any]]:
    """Items of `key` (a model version or period start) in `language` that did worse than
    under `previous`: where the same prompt (prompt_id) was judged under both, the items
    whose score fell; otherwise the items of `key` scoring below the mean of `previous`.
    Worst first."""
    args = progress_args_clean(by=by, period=period)
    data = progress_data_load(
        project=project, language=language, with_created=args["by"] == "period", with_prompt=True
    )
    if not data.n_items:
        return []
    every = np.flatnonzero(np.isfinite(data.score))
    if project.task_type == TaskType.PAIRWISE:
        item = np.concatenate([every, every])
        model = np.concatenate([data.model_a[every], data.model_b[every]])
        score = np.concatenate([data.score[every], 1 - data.score[every]])
    else:
        item, model, score = every, data.model[every], data.score[every]
    if args["by"] == "period":
        item_period, period_names = data.item_periods(args["period"])
        names = np.array(period_names, dtype=object)[item_period[item]]
    else:
        names = np.array(data.models, dtype=object)[model]
    assert data.prompt_id is not None
    scored = pd.DataFrame(
        {
            "item": data.item_id[item],
            "key": names,
            "score": score,
            "prompt_id": data.prompt_id[item],
        }
    )
    new, old = scored[scored["key"] == key], scored[scored["key"] == previous]
    if new.empty or old.empty:
        return []
    old_by_prompt = old[old["prompt_id"] != ""].groupby("prompt_id")["score"].mean()
    matched = new["prompt_id"].isin(old_by_prompt.index) & (new["prompt_id"] != "")
    if matched.any():
        worse = new[matched].assign(
            before=old_by_prompt.loc[new.loc[matched, "prompt_id"]].to_numpy()
        )
    else:
        worse = new.assign(before=float(old["score"].mean()))
    worse = worse[worse["score"] < worse["before"]].assign(drop=lambda f: f["before"] - f["score"])
    worse = worse.sort_values(["drop", "item"], ascending=[False, True]).drop_duplicates("item")[
        :REGRESSED_LIMIT
    ]
    items = Item.objects.in_bulk(worse["item"].tolist())
    return [
        {
            "item": items[int(r.item)],
            "score": float(r.score),
            "before": float(r.before),
            "matched_prompt": bool(matched.any()),
        }
        for r in worse.itertuples()
        if int(r.item) in items
    ]


def items_adjudication_send(*, project: Project, item_ids: Sequence[int], actor: Any) -> int:
    """Send judged items (status done) of the project to the adjudication queue; returns
    how many moved. Items in any other status stay as they are."""
    with transaction.atomic():
        moved = Item.objects.filter(
            project=project, pk__in=list(item_ids), status=ItemStatus.DONE
        ).update(status=ItemStatus.ADJUDICATION, updated_at=timezone.now())
        audit_record(
            verb="items.adjudication_send",
            actor=actor,
            project=project,
            data={"requested": len(item_ids), "moved": moved},
        )
    return moved


# ---------------------------------------------------------------------------------------
# Sharing: CSV and signed links
# ---------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "language",
    "key",
    "items",
    "value",
    "ci_low",
    "ci_high",
    "change_from",
    "change",
    "change_ci_low",
    "change_ci_high",
    "change_verdict",
    "best_language",
    "gap",
    "gap_ci_low",
    "gap_ci_high",
    "gap_change",
    "gap_change_ci_low",
    "gap_change_ci_high",
    "gap_verdict",
)


def progress_csv(report: dict[str, Any]) -> str:
    """One CSV row per language and key (model version or period)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report["languages"]:
        for entry in row["series"]:
            change = entry["change"] or {}
            gap = entry["gap"] or {}
            gap_change = gap.get("change") or {}
            writer.writerow(
                [
                    row["language"],
                    entry["key"],
                    entry["items"],
                    entry["value"],
                    *entry["ci"],
                    change.get("from", ""),
                    change.get("value", ""),
                    *(change.get("ci") or ["", ""]),
                    change.get("verdict", ""),
                    gap.get("best", ""),
                    gap.get("value", ""),
                    *(gap.get("ci") or ["", ""]),
                    gap_change.get("value", ""),
                    *(gap_change.get("ci") or ["", ""]),
                    gap_change.get("verdict", ""),
                ]
            )
    return out.getvalue()


def share_link_create(*, project: Project, by: str, days: int, actor: Any) -> str:
    """A signed token for the read-only printable report, valid `days` days."""
    progress_args_clean(by=by)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= SHARE_MAX_DAYS:
        raise ValidationError(f"days must be a whole number from 1 to {SHARE_MAX_DAYS}")
    token = signing.TimestampSigner(salt=SHARE_SALT).sign_object(
        {"p": project.pk, "by": by, "days": days}
    )
    audit_record(verb="progress.share", actor=actor, project=project, data={"by": by, "days": days})
    return token


def share_link_open(*, token: str) -> tuple[Project, str]:
    """The project and `by` of a share token; signing.BadSignature (or SignatureExpired)
    for a forged, altered or expired one."""
    signer = signing.TimestampSigner(salt=SHARE_SALT)
    payload = signer.unsign_object(token)
    days = int(payload.get("days", 0))
    signer.unsign_object(token, max_age=days * 86400)
    project = Project.objects.filter(pk=payload.get("p")).first()
    if project is None or payload.get("by") not in BY_CHOICES:
        raise signing.BadSignature("unknown project")
    return project, payload["by"]


__all__ = [
    "BY_CHOICES",
    "PERIODS",
    "items_adjudication_send",
    "progress_args_clean",
    "progress_csv",
    "progress_report",
    "regressed_items",
    "share_link_create",
    "share_link_open",
]

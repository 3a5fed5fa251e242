"""The progress report: per language, the series by model version or period with changes
and gaps, agreement by guideline version and calibration round, breakdowns, Bradley–Terry
strengths for pairwise projects, and what to do next.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.db.models import Count, Q
from django.utils import timezone

from annotation.agreement.alpha import CONFIDENCE
from annotation.agreement.loading import (
    CALIBRATION_KINDS,
    _alpha_summary,
    _Judgments,
    _judgments_load,
    _Scheme,
)
from annotation.agreement.parity import _quality_measure, _quality_rows
from annotation.model_versions import model_versions_for
from annotation.models import FinalLabel, Item, ItemStatus, Language, Project, Selection, TaskType
from annotation.progress.actions import next_actions
from annotation.progress.breakdowns import quality_breakdowns
from annotation.progress.loading import headline_rows, item_attributes, item_periods, scored_rows
from annotation.progress.options import (
    GAP_VERDICTS,
    NONE_KEY,
    VERDICTS,
    ci_pair,
    finite_or_none,
    progress_args_clean,
)
from annotation.progress.stats import bradley_terry_bootstrap, progress_series


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


@dataclass
class _Loaded:
    """What the report is computed from: the judgments, final labels, the quality items'
    judgments, the measure and its focus model, and one scored row per (item, model)."""

    data: _Judgments
    finals: dict[int, Any]
    quality: pd.DataFrame
    measure: dict[str, Any]
    focus: str | None
    scored: pd.DataFrame


@dataclass
class _Report:
    """The figures every language's row is read from."""

    project: Project
    loaded: _Loaded
    scheme: _Scheme
    keys: list[dict[str, Any]]
    tags: list[str]
    series: Any  # stats.Series over languages × keys
    rounds: dict[str, list[dict[str, Any]]]
    breakdowns: dict[str, dict[str, Any]]
    counts: dict[str, dict[str, Any]]
    resamples: int
    seed: int


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
    loaded = _load(project, by=by, period=period)
    languages = list(project.languages.order_by("tag"))
    tags = [lang.tag for lang in languages]
    key_column = "model" if by == "model" else "period"
    scored = loaded.scored
    keys = _ordered_keys(project, by, scored[key_column].unique().tolist() if len(scored) else [])
    bootstrap = {"resamples": resamples, "seed": seed}
    report = _Report(
        project=project,
        loaded=loaded,
        scheme=scheme,
        keys=keys,
        tags=tags,
        series=_series(project, loaded, keys, tags, by=by, **bootstrap),
        rounds=_calibration_alpha(project, scheme, **bootstrap),
        breakdowns=quality_breakdowns(
            project,
            loaded.quality,
            headline_rows(project, scored, loaded.focus),
            loaded.finals,
            loaded.focus,
            tags,
            **bootstrap,
        ),
        counts=_item_counts(project),
        resamples=resamples,
        seed=seed,
    )
    quality = _quality_note(project, loaded.measure, by=by)
    lo_measure, hi_measure = quality["range"]
    rows = _language_rows(report, languages, by=by, measure_range=hi_measure - lo_measure)
    return {
        "project": project.slug,
        "task_type": project.task_type,
        "by": by,
        "period": period if by == "period" else None,
        "level": level,
        "agreement_threshold": project.agreement_threshold,
        "quality": quality,
        "keys": keys,
        "generated_at": timezone.now().isoformat(),
        "resamples": resamples,
        "seed": seed,
        "confidence": CONFIDENCE,
        "languages": rows,
    }


def _quality_note(project: Project, measure: dict[str, Any], *, by: str) -> dict[str, Any]:
    """What quality measures, its range, and which rows the series follow."""
    lo, hi = _measure_range(project)
    return {
        **measure,
        "range": [lo, hi],
        "series": "every model's win rate"
        if by == "model" and project.task_type == TaskType.PAIRWISE
        else "headline",
    }


def _load(project: Project, *, by: str, period: str) -> _Loaded:
    data = _judgments_load(project, item_fields=("model", "model_a", "model_b", "selection"))
    frame = data.frame
    finals = dict(FinalLabel.objects.filter(item__project=project).values_list("item_id", "value"))
    quality = frame[frame["selection"] != Selection.UNCERTAINTY] if len(frame) else frame
    measure, focus = _quality_measure(project, quality)
    scored = scored_rows(project, quality, finals)
    if len(scored):
        attributes = item_attributes(project, scored["item"].unique())
        scored = scored.join(attributes, on="item")
        if by == "period":
            scored["period"] = item_periods(project, period).reindex(scored["item"]).to_numpy()
    return _Loaded(data, finals, quality, measure, focus, scored)


def _series(
    project: Project,
    loaded: _Loaded,
    keys: list[dict[str, Any]],
    tags: list[str],
    *,
    by: str,
    resamples: int,
    seed: int,
) -> Any:
    """Quality per language and key, with changes and gaps. For pairwise projects "by
    model" compares every model's win rate; "by period" follows the headline (the focus
    model's win rate)."""
    key_column = "model" if by == "model" else "period"
    key_names = [k["key"] for k in keys]
    rows = loaded.scored if by == "model" else headline_rows(project, loaded.scored, loaded.focus)
    rows = rows[rows["language"].isin(tags)] if len(rows) else rows
    lang_code = pd.Index(tags).get_indexer(rows["language"]) if len(rows) else np.zeros(0, int)
    key_code = pd.Index(key_names).get_indexer(rows[key_column]) if len(rows) else np.zeros(0, int)
    return progress_series(
        lang_code,
        key_code,
        rows["score"].to_numpy(dtype=np.float64) if len(rows) else np.zeros(0),
        n_languages=len(tags),
        n_keys=len(keys),
        resamples=resamples,
        seed=seed,
        rank=_release_rank(keys) if by == "model" else None,
    )


def _release_rank(keys: list[dict[str, Any]]) -> np.ndarray:
    """Model versions follow each other by release date; versions released together (or
    undated) are not compared as if one followed the other."""
    return np.array(
        [
            datetime.date.fromisoformat(k["released_on"]).toordinal()
            if k.get("released_on")
            else np.nan
            for k in keys
        ],
        dtype=np.float64,
    )


def _item_counts(project: Project) -> dict[str, dict[str, Any]]:
    """Items in adjudication and in the pool, per language tag."""
    return {
        row["language__tag"]: dict(row)
        for row in Item.objects.filter(project=project, is_gold=False)
        .values("language__tag")
        .annotate(
            adjudication=Count("id", filter=Q(status=ItemStatus.ADJUDICATION)),
            pool=Count("id", filter=Q(status=ItemStatus.POOL)),
        )
    }


def _language_rows(
    report: _Report, languages: list[Language], *, by: str, measure_range: float
) -> list[dict[str, Any]]:
    rows = [_language_row(report, lang, li) for li, lang in enumerate(languages)]
    # Each (language, key)'s interval, for the budget of a difference between two of them.
    cis = {(row["language"], e["key"]): e["ci"] for row in rows for e in row["series"]}
    for row in rows:
        row["actions"] = next_actions(
            report.project, row, by=by, cis=cis, measure_range=measure_range
        )
    return rows


def _language_row(report: _Report, lang: Language, li: int) -> dict[str, Any]:
    tag = lang.tag
    counts = report.counts.get(tag, {})
    row: dict[str, Any] = {
        "language": tag,
        "name": lang.name,
        "direction": lang.direction,
        "series": _series_entries(report, li),
        "agreement": _language_agreement(report, tag),
        "breakdowns": report.breakdowns[tag],
        "items_in_adjudication": int(counts.get("adjudication", 0)),
        "items_in_pool": int(counts.get("pool", 0)),
    }
    if report.project.task_type == TaskType.PAIRWISE:
        quality = report.loaded.quality
        row["bradley_terry"] = _bradley_terry(
            quality[quality["language"] == tag] if len(quality) else quality,
            report.loaded.finals,
            report.project,
            resamples=report.resamples,
            seed=report.seed,
        )
    return row


def _series_entries(report: _Report, li: int) -> list[dict[str, Any]]:
    """One language's quality per key that has items: the change from the previous key
    and the gap to the best language, each with its interval and verdict."""
    series, keys = report.series, report.keys
    out = []
    for ki, key in enumerate(keys):
        if series.n[li, ki] == 0:
            continue
        prev = int(series.previous[li, ki])
        entry: dict[str, Any] = {
            "key": key["key"],
            "items": int(series.n[li, ki]),
            "value": finite_or_none(series.mean[li, ki]),
            "ci": ci_pair(series.ci[li, ki]),
            "change": None,
            "gap": None,
        }
        if prev >= 0:
            entry["change"] = {
                "from": keys[prev]["key"],
                "value": finite_or_none(series.change[li, ki]),
                "ci": ci_pair(series.change_ci[li, ki]),
                "verdict": VERDICTS[int(series.change_verdict[li, ki])],
            }
        best = int(series.best[ki])
        if best >= 0 and np.isfinite(series.gap[li, ki]):
            entry["gap"] = _gap_entry(report, li, ki, best=best, prev=prev)
        out.append(entry)
    return out


def _gap_entry(report: _Report, li: int, ki: int, *, best: int, prev: int) -> dict[str, Any]:
    series = report.series
    gap: dict[str, Any] = {
        "best": report.tags[best],
        "value": finite_or_none(series.gap[li, ki]),
        "ci": ci_pair(series.gap_ci[li, ki]),
        "change": None,
    }
    if prev >= 0 and np.isfinite(series.gap_change[li, ki]):
        gap["change"] = {
            "from": report.keys[prev]["key"],
            "value": finite_or_none(series.gap_change[li, ki]),
            "ci": ci_pair(series.gap_change_ci[li, ki]),
            "verdict": GAP_VERDICTS[int(series.gap_change_verdict[li, ki])],
        }
    return gap


def _language_agreement(report: _Report, tag: str) -> dict[str, Any]:
    """One language's alpha, and per guideline version and calibration round."""
    data = report.loaded.data
    sub = data.subset((data.frame["language"] == tag).to_numpy()) if len(data.frame) else data
    agreement = _alpha_summary(
        sub, report.scheme, resamples=report.resamples, seed=report.seed, package=False
    )
    by_guideline = []
    if len(sub):
        versions = sub.frame["guideline_version"].fillna("").replace("", NONE_KEY)
        distinct = sorted(versions.unique())
        for version in distinct:
            # One version: its alpha is the language's (same judgments, same seed).
            summary = (
                agreement
                if len(distinct) == 1
                else _alpha_summary(
                    sub.subset((versions == version).to_numpy()),
                    report.scheme,
                    resamples=report.resamples,
                    seed=report.seed,
                    package=False,
                )
            )
            by_guideline.append(_alpha_entry(version, summary))
    return {
        "alpha": agreement["alpha"],
        "ci": agreement["ci"],
        "units": agreement["units"],
        "by_guideline_version": by_guideline,
        "by_calibration_round": report.rounds.get(tag, []),
    }


def _alpha_entry(version: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "version": version,
        "alpha": summary["alpha"],
        "ci": summary["ci"],
        "units": summary["units"],
        "judgments": summary["judgments"],
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
        out.setdefault(tag, []).append(_alpha_entry(version, summary))
    return out


def _bradley_terry(
    frame: pd.DataFrame, finals: dict[int, Any], project: Project, *, resamples: int, seed: int
) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    rows = _quality_rows(frame, finals, project)
    half = len(rows) // 2  # side A rows first, then side B (same items, same order)
    a, b = rows.iloc[:half], rows.iloc[half:]
    names = sorted(set(rows["model"].replace("", NONE_KEY)))
    index = pd.Index(names)
    bt = bradley_terry_bootstrap(
        index.get_indexer(a["model"].replace("", NONE_KEY)),
        index.get_indexer(b["model"].replace("", NONE_KEY)),
        a["score"].to_numpy(),
        n_models=len(names),
        resamples=resamples,
        seed=seed,
        names=names,
    )
    out = [
        {
            "model": name,
            "strength": finite_or_none(bt.strength[k]),
            "ci": ci_pair(bt.ci[k]),
            "win_rate": finite_or_none(bt.win_rate[k]),
            "win_ci": ci_pair(bt.win_ci[k]),
            "comparisons": int(bt.comparisons[k]),
        }
        for k, name in enumerate(names)
    ]
    out.sort(
        key=lambda r: (-(r["strength"] if r["strength"] is not None else -math.inf), r["model"])
    )
    return out

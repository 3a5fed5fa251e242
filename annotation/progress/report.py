"""The progress report: per language, the series by model version or period with changes
and gaps, agreement by guideline version and calibration round, breakdowns, Bradley–Terry
strengths for pairwise projects, each language before and after the latest
active-learning round, and what to do next.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.utils import timezone

from annotation.agreement.alpha import CONFIDENCE
from annotation.agreement.loading import CALIBRATION_KINDS, _alpha_summary, _judgments_load, _Scheme
from annotation.agreement.parity import _quality_measure
from annotation.model_versions import model_versions_for
from annotation.models import Language, Project, TaskType
from annotation.progress.actions import next_actions
from annotation.progress.breakdowns import quality_breakdowns
from annotation.progress.loading import ProgressData, progress_data_load
from annotation.progress.options import (
    GAP_VERDICTS,
    NONE_KEY,
    VERDICTS,
    ci_pair,
    finite_or_none,
    progress_args_clean,
)
from annotation.progress.since_round import last_round, since_round
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
    """What the report is computed from: the data as arrays, the quality items (positions
    of items an uncertainty selector did not pick), the measure and its focus model (a
    code into data.models, −1 for none), every model's side of every quality item
    (item, model, score) and the headline's rows (item, score)."""

    data: ProgressData
    quality: np.ndarray
    measure: dict[str, Any]
    focus: int
    row_item: np.ndarray
    row_model: np.ndarray
    row_score: np.ndarray
    head_item: np.ndarray
    head_score: np.ndarray


@dataclass
class _Report:
    """The figures every language's row is read from."""

    project: Project
    loaded: _Loaded
    scheme: _Scheme
    keys: list[dict[str, Any]]
    series: Any  # stats.Series over languages × keys
    rounds: dict[str, list[dict[str, Any]]]
    breakdowns: dict[str, dict[str, Any]]
    j_language: np.ndarray  # each judgment's language code
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
    """The progress report (see the package docstring). `by` is "model" (model versions in
    release order) or "period" (`period` = week or month of judgment)."""
    args = progress_args_clean(by=by, period=period, resamples=resamples, seed=seed)
    by, period, resamples, seed = args["by"], args["period"], args["resamples"], args["seed"]
    level = project.agreement_level
    scheme = _Scheme.of(project, level)
    event = last_round(project)
    loaded = _load(project, with_created=by == "period" or event is not None)
    data = loaded.data
    languages = list(project.languages.order_by("tag"))
    keys, series_rows = _keyed_rows(project, loaded, by=by, period=period)
    bootstrap = {"resamples": resamples, "seed": seed}
    report = _Report(
        project=project,
        loaded=loaded,
        scheme=scheme,
        keys=keys,
        series=_series(data, keys, series_rows, by=by, **bootstrap),
        rounds=_calibration_alpha(project, scheme, **bootstrap),
        breakdowns=quality_breakdowns(
            data, loaded.quality, loaded.head_item, loaded.head_score, loaded.focus, **bootstrap
        ),
        j_language=data.language[data.j_item],
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
        "since_round": since_round(data, event, loaded.focus, languages, **bootstrap)
        if event is not None
        else None,
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


def _load(project: Project, *, with_created: bool) -> _Loaded:
    data = progress_data_load(project=project, with_created=with_created)
    # Quality from items an uncertainty selector did not pick (they over-represent hard
    # cases), as in the snapshot report.
    quality = np.flatnonzero(~data.uncertainty & np.isfinite(data.score))
    if project.task_type != TaskType.PAIRWISE:
        measure, _ = _quality_measure(project, {})
        score = data.score[quality]
        return _Loaded(
            data, quality, measure, -1, quality, data.model[quality], score, quality, score
        )
    appearances = np.bincount(data.model_a[quality], minlength=len(data.models))
    appearances += np.bincount(data.model_b[quality], minlength=len(data.models))
    measure, focus_name = _quality_measure(
        project, {m: int(n) for m, n in zip(data.models, appearances, strict=True) if n}
    )
    focus = data.models.index(focus_name) if focus_name is not None else -1
    head_item, head_score = _focus_rows(data, quality, focus)
    # Every model's side of every item: side A's score, and 1 − it for side B.
    return _Loaded(
        data,
        quality,
        measure,
        focus,
        np.concatenate([quality, quality]),
        np.concatenate([data.model_a[quality], data.model_b[quality]]),
        np.concatenate([data.score[quality], 1 - data.score[quality]]),
        head_item,
        head_score,
    )


def _focus_rows(data: ProgressData, items: np.ndarray, focus: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise: the rows of the focus model's side of `items` — (item, score) with the
    item's score where it is side A and 1 − score where it is side B."""
    a = items[data.model_a[items] == focus]
    b = items[data.model_b[items] == focus]
    return np.concatenate([a, b]), np.concatenate([data.score[a], 1 - data.score[b]])


def _keyed_rows(
    project: Project, loaded: _Loaded, *, by: str, period: str
) -> tuple[list[dict[str, Any]], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The keys (model versions in release order, or periods) and the series' rows as
    (item, score, key code). For pairwise projects "by model" compares every model's win
    rate; "by period" follows the headline (the focus model's win rate)."""
    data = loaded.data
    if by == "model":
        present = np.unique(loaded.row_model)
        keys = _ordered_keys(project, by, [data.models[k] for k in present])
        table = np.full(len(data.models), -1, dtype=np.int64)
        table[[data.models.index(k["key"]) for k in keys]] = np.arange(len(keys))
        return keys, (loaded.row_item, loaded.row_score, table[loaded.row_model])
    item_period, period_names = data.item_periods(period)
    row_item = loaded.row_item
    present = np.unique(item_period[row_item]) if len(row_item) else np.zeros(0, np.int64)
    keys = _ordered_keys(project, by, [period_names[k] for k in present])
    table = np.full(len(period_names), -1, dtype=np.int64)
    table[present] = np.arange(len(keys))
    return keys, (loaded.head_item, loaded.head_score, table[item_period[loaded.head_item]])


def _series(
    data: ProgressData,
    keys: list[dict[str, Any]],
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    by: str,
    resamples: int,
    seed: int,
) -> Any:
    """Quality per language and key, with changes and gaps."""
    item, score, key = rows
    language = data.language[item]
    mine = language >= 0
    return progress_series(
        language[mine],
        key[mine],
        score[mine],
        n_languages=len(data.tags),
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
    data = report.loaded.data
    counts = data.status_counts.get(tag, {})
    row: dict[str, Any] = {
        "language": tag,
        "name": lang.name,
        "direction": lang.direction,
        "series": _series_entries(report, li),
        "agreement": _language_agreement(report, tag, li),
        "breakdowns": report.breakdowns[tag],
        "items_in_adjudication": int(counts.get("adjudication", 0)),
        "items_in_pool": int(counts.get("pool", 0)),
    }
    if report.project.task_type == TaskType.PAIRWISE:
        quality = report.loaded.quality
        row["bradley_terry"] = _bradley_terry(
            data,
            quality[data.language[quality] == li],
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
        "best": report.loaded.data.tags[best],
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


def _language_agreement(report: _Report, tag: str, li: int) -> dict[str, Any]:
    """One language's alpha, and per guideline version and calibration round."""
    data = report.loaded.data
    in_language = report.j_language == li
    sub = data.judgments.subset(in_language)
    agreement = _alpha_summary(
        sub, report.scheme, resamples=report.resamples, seed=report.seed, package=False
    )
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
                    report.scheme,
                    resamples=report.resamples,
                    seed=report.seed,
                    package=False,
                )
            )
            by_guideline.append(_alpha_entry(data.guidelines[code], summary))
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

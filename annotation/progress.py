"""The parity report over time: per language, quality by model version or by period of
judgment with bootstrap CIs, the change from the previous version or period, the gap to
the best language and whether it narrowed; Bradley–Terry strengths for pairwise
projects; agreement per guideline version and calibration round; breakdowns by
evaluator dialect, item domain and task, and code-switching; and what to do next.

Quality is measured as in the snapshot report (`annotation.agreement.parity_report`):
one score per item (and model, for pairwise: the model's win share on that item), from
items not picked by an uncertainty selector, with a final label in place of its item's
judgments. An item belongs to the period of its latest counted judgment. The maths is in
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
from django.db.models import Count, Max, Q
from django.db.models.fields.json import KT
from django.db.models.functions import ExtractIsoYear, ExtractMonth, ExtractWeek, ExtractYear
from django.urls import reverse
from django.utils import timezone

from annotation.agreement.alpha import CONFIDENCE, MAX_RESAMPLES
from annotation.agreement.loading import CALIBRATION_KINDS, _alpha_summary, _judgments_load, _Scheme
from annotation.agreement.parity import _quality_measure, _quality_rows
from annotation.audit import audit_record
from annotation.model_versions import model_versions_for
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    EvaluatorLanguage,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Project,
    Selection,
    TaskType,
)
from annotation.progress_stats import (
    bootstrap_group_means,
    bradley_terry_bootstrap,
    needed_items,
    progress_series,
)
from annotation.types import Actor

BY_CHOICES = ("model", "period")
PERIODS = ("week", "month")
NONE_KEY = "(none)"
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
# Loading: one scored row per (item, model)
# ---------------------------------------------------------------------------------------


def _period_first_day(period: str, year: int, number: int) -> str:
    """ISO date of the first day of an ISO week (Monday) or of a month."""
    if period == "month":
        return datetime.date(year, number, 1).isoformat()
    return datetime.date.fromisocalendar(year, number, 1).isoformat()


def _item_periods(project: Project, period: str, *, language: str | None = None) -> pd.Series:
    """The period (its first day, ISO text) of each judged item's latest counted judgment,
    by item id. The database extracts year and week or month as integers: converting a
    timestamp per judgment in Python would cost more than the whole bootstrap."""
    judgments = Judgment.objects.filter(
        item__project=project, is_current=True, kind__in=COUNTED_JUDGMENT_KINDS
    )
    if language:
        judgments = judgments.filter(item__language__tag=language)
    latest = judgments.values("item_id").annotate(last=Max("created_at"))
    if period == "month":
        latest = latest.annotate(y=ExtractYear("last"), n=ExtractMonth("last"))
    else:
        latest = latest.annotate(y=ExtractIsoYear("last"), n=ExtractWeek("last"))
    frame = pd.DataFrame.from_records(
        list(latest.values_list("item_id", "y", "n")), columns=["item", "y", "n"]
    )
    if frame.empty:
        return pd.Series(dtype=str)
    # One label per distinct (year, week or month), spread to the items by a join.
    pairs = frame[["y", "n"]].drop_duplicates()
    pairs["label"] = [
        _period_first_day(period, int(y), int(n))
        for y, n in zip(pairs["y"], pairs["n"], strict=True)
    ]
    labelled = frame.merge(pairs, on=["y", "n"], how="left")
    return pd.Series(labelled["label"].to_numpy(), index=labelled["item"].to_numpy())


def _item_attributes(project: Project, item_ids: Sequence[int]) -> pd.DataFrame:
    rows = (
        Item.objects.filter(project=project, pk__in=list(item_ids))
        .annotate(
            domain=KT("metadata__domain"),
            task=KT("metadata__task"),
            mixed=KT("language_check__mixed"),
        )
        .values_list("pk", "domain", "task", "mixed", "language_check", "prompt_id")
    )
    frame = pd.DataFrame.from_records(
        list(rows), columns=["item", "domain", "task", "mixed", "checked", "prompt_id"]
    )
    frame["code_switched"] = np.where(
        frame["checked"].isna(),
        "unchecked",
        np.where(frame["mixed"].notna(), "code_switched", "single_language"),
    )
    for name in ("domain", "task"):
        frame[name] = frame[name].fillna("").replace("", NONE_KEY).astype(str)
    return frame.drop(columns=["mixed", "checked"]).set_index("item")


def _scored(project: Project, frame: pd.DataFrame, finals: dict[int, Any]) -> pd.DataFrame:
    """(item, model, score, language) rows of the quality items."""
    if frame.empty:
        return pd.DataFrame(columns=["item", "model", "score", "language"])
    rows = _quality_rows(frame, finals, project)
    language = frame.drop_duplicates("item").set_index("item")["language"]
    rows["language"] = language.loc[rows["item"]].to_numpy()
    rows["model"] = rows["model"].replace("", NONE_KEY)
    return rows


def _dialects(frame: pd.DataFrame) -> pd.Series:
    """Each judgment's evaluator dialect or region for the item's language ("(none)" for
    external raters and evaluators who gave none)."""
    users = set(frame["evaluator"].dropna().astype(int))
    lookup = pd.DataFrame.from_records(
        list(
            EvaluatorLanguage.objects.filter(profile__user_id__in=users)
            .exclude(dialect="")
            .values_list("profile__user_id", "language__tag", "dialect")
        ),
        columns=["evaluator", "language", "dialect"],
    )
    left = pd.DataFrame(
        {
            "evaluator": frame["evaluator"].astype("Int64").to_numpy(),
            "language": frame["language"].to_numpy(),
        }
    )
    lookup["evaluator"] = lookup["evaluator"].astype("Int64")
    merged = left.merge(lookup, on=["evaluator", "language"], how="left")
    return pd.Series(merged["dialect"].fillna(NONE_KEY).to_numpy(), index=frame.index)


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


def _headline(project: Project, scored: pd.DataFrame, focus: str | None) -> pd.DataFrame:
    """The rows the language's headline quality uses: every item; for pairwise, the focus
    model's side."""
    if project.task_type == TaskType.PAIRWISE:
        return scored[scored["model"] == focus]
    return scored


def _grouped(rows: pd.DataFrame, *, resamples: int, seed: int) -> pd.DataFrame:
    """Mean score with CI per (language, dimension, key) of `rows` — one bootstrap for
    every group of every breakdown of every language."""
    codes, groups = pd.factorize(
        pd.MultiIndex.from_frame(rows[["language", "dimension", "key"]]), sort=True
    )
    gm = bootstrap_group_means(
        codes,
        rows["score"].to_numpy(dtype=np.float64),
        n_groups=len(groups),
        resamples=resamples,
        seed=seed,
    )
    ci = gm.ci()
    out = pd.DataFrame(list(groups), columns=["language", "dimension", "key"])
    out["items"], out["value"], out["lo"], out["hi"] = gm.n, gm.mean, ci[:, 0], ci[:, 1]
    return out


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
    data = _judgments_load(project, item_fields=("model", "model_a", "model_b", "selection"))
    frame = data.frame
    finals = dict(FinalLabel.objects.filter(item__project=project).values_list("item_id", "value"))
    quality = frame[frame["selection"] != Selection.UNCERTAINTY] if len(frame) else frame
    measure, focus = _quality_measure(project, quality)
    scored = _scored(project, quality, finals)
    languages = list(project.languages.order_by("tag"))
    tags = [lang.tag for lang in languages]

    if len(scored):
        attributes = _item_attributes(project, scored["item"].unique())
        scored = scored.join(attributes, on="item")
        if by == "period":
            scored["period"] = _item_periods(project, period).reindex(scored["item"]).to_numpy()
    key_column = "model" if by == "model" else "period"
    keys = _ordered_keys(project, by, scored[key_column].unique().tolist() if len(scored) else [])
    key_names = [k["key"] for k in keys]

    # For pairwise projects "by model" compares every model's win rate; "by period" follows
    # the headline (the focus model's win rate).
    series_rows = scored if by == "model" else _headline(project, scored, focus)
    series_rows = (
        series_rows[series_rows["language"].isin(tags)] if len(series_rows) else series_rows
    )
    lang_code = (
        pd.Index(tags).get_indexer(series_rows["language"])
        if len(series_rows)
        else np.zeros(0, int)
    )
    key_code = (
        pd.Index(key_names).get_indexer(series_rows[key_column])
        if len(series_rows)
        else np.zeros(0, int)
    )
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
        lang_code,
        key_code,
        series_rows["score"].to_numpy(dtype=np.float64) if len(series_rows) else np.zeros(0),
        n_languages=len(tags),
        n_keys=len(keys),
        resamples=resamples,
        seed=seed,
        rank=rank,
    )

    counts: dict[str, dict[str, Any]] = {
        row["language__tag"]: dict(row)
        for row in Item.objects.filter(project=project, is_gold=False)
        .values("language__tag")
        .annotate(
            adjudication=Count("id", filter=Q(status=ItemStatus.ADJUDICATION)),
            pool=Count("id", filter=Q(status=ItemStatus.POOL)),
        )
    }
    rounds = _calibration_alpha(project, scheme, resamples=resamples, seed=seed)
    breakdowns = _breakdowns(
        project,
        quality,
        _headline(project, scored, focus),
        finals,
        focus,
        tags,
        resamples=resamples,
        seed=seed,
    )
    lo_measure, hi_measure = _measure_range(project)

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
        sub = data.subset((frame["language"] == tag).to_numpy()) if len(frame) else data
        agreement = _alpha_summary(sub, scheme, resamples=resamples, seed=seed, package=False)
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
                        scheme,
                        resamples=resamples,
                        seed=seed,
                        package=False,
                    )
                )
                by_guideline.append(
                    {
                        "version": version,
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
        if project.task_type == TaskType.PAIRWISE:
            row["bradley_terry"] = _bradley_terry(
                quality[quality["language"] == tag] if len(quality) else quality,
                finals,
                project,
                resamples=resamples,
                seed=seed,
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
            "series": "every model's win rate"
            if by == "model" and project.task_type == TaskType.PAIRWISE
            else "headline",
        },
        "keys": keys,
        "generated_at": timezone.now().isoformat(),
        "resamples": resamples,
        "seed": seed,
        "confidence": CONFIDENCE,
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
    project: Project,
    quality: pd.DataFrame,
    headline: pd.DataFrame,
    finals: dict[int, Any],
    focus: str | None,
    tags: list[str],
    *,
    resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Quality per evaluator dialect, item domain, task and code-switching, per language."""
    out: dict[str, dict[str, Any]] = {tag: {name: [] for name in BREAKDOWNS} for tag in tags}
    parts = (
        [
            headline[["language", name, "score"]]
            .rename(columns={name: "key"})
            .assign(dimension=name)
            for name in ("domain", "task", "code_switched")
        ]
        if len(headline)
        else []
    )
    if len(quality):
        # Dialect: each dialect's judgments scored per item on their own — one pass, with
        # (item, dialect) as the unit.
        dialect_codes, dialects = pd.factorize(_dialects(quality), sort=True)
        pseudo = quality.assign(item=quality["item"].to_numpy() * len(dialects) + dialect_codes)
        rows = _headline(project, _quality_rows(pseudo, {}, project), focus)
        language = quality.drop_duplicates("item").set_index("item")["language"]
        items = rows["item"].to_numpy() // len(dialects)
        parts.append(
            pd.DataFrame(
                {
                    "language": language.loc[items].to_numpy(),
                    "key": dialects[rows["item"].to_numpy() % len(dialects)],
                    "score": rows["score"].to_numpy(),
                    "dimension": "dialect",
                }
            )
        )
    if not parts:
        return out
    table = _grouped(pd.concat(parts, ignore_index=True), resamples=resamples, seed=seed)
    for r in table.itertuples(index=False):
        if r.language in out:
            out[r.language][r.dimension].append(
                {
                    "key": str(r.key),
                    "items": int(r.items),
                    "value": _opt(r.value),
                    "ci": [_opt(r.lo), _opt(r.hi)],
                }
            )
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
    data = _judgments_load(
        project, language=language, item_fields=("model", "model_a", "model_b", "selection")
    )
    frame = data.frame
    if frame.empty:
        return []
    finals = dict(
        FinalLabel.objects.filter(item__project=project, item__language__tag=language).values_list(
            "item_id", "value"
        )
    )
    scored = _scored(project, frame, finals)
    if args["by"] == "period":
        scored["key"] = (
            _item_periods(project, args["period"], language=language)
            .reindex(scored["item"])
            .to_numpy()
        )
    else:
        scored["key"] = scored["model"]
    attributes = _item_attributes(project, scored["item"].unique())
    scored = scored.join(attributes, on="item")
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


def items_adjudication_send(*, project: Project, item_ids: Sequence[int], actor: Actor) -> int:
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


def share_link_create(*, project: Project, by: str, days: int, actor: Actor) -> str:
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

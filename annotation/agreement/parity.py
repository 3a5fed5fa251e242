"""The per-language parity report: judgments, alpha with CI, model quality with CI,
honeypot accuracy, throughput and the gap to the best language."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from annotation.agreement.aggregation import bradley_terry
from annotation.agreement.alpha import CONFIDENCE, bootstrap_mean
from annotation.agreement.loading import _alpha_summary, _judgments_load, _Scheme
from annotation.agreement.types import ParityLanguage, ParityReport, Throughput
from annotation.gold import gold_matches
from annotation.labels import CHOICES, LabelRule, item_label, label_score, label_scores
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    AssignmentKind,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Project,
    Selection,
    TaskType,
)

# =======================================================================================
# The parity report
# =======================================================================================

QUALITY_SELECTIONS = tuple(s for s in Selection.values if s != Selection.UNCERTAINTY)


def _quality_rows(
    frame: pd.DataFrame, finals: dict[int, dict[str, Any]], project: Project
) -> pd.DataFrame:
    """One row per (item, model) with the item's quality score for that model: the label
    rule's score of the item (`annotation.labels.label_score`; a final label replaces its
    item's judgments) — rating: the mean score; pairwise: 1, 0 or ½ as the label favours
    side A, and its complement for side B; labels: whether the label holds the schema's
    first label."""
    rule = LabelRule.of(project)
    codes, items = pd.factorize(frame["item"].to_numpy(), sort=True)
    values = list(frame["value"])
    votes: dict[str, Any]
    if project.task_type == TaskType.RATING:
        votes = {"score": np.fromiter((float(v["score"]) for v in values), np.float64, len(values))}
    elif project.task_type == TaskType.PAIRWISE:
        index = {choice: k for k, choice in enumerate(CHOICES)}
        votes = {
            "choice": np.fromiter(
                (index.get(v.get("choice"), -1) for v in values), np.int64, len(values)
            )
        }
    else:
        votes = {"labels": [v.get("labels", ()) for v in values]}
    scores = label_scores(rule=rule, item=codes, n_items=len(items), **votes)
    for k, pk in enumerate(items):
        if int(pk) in finals:
            label = item_label(rule=rule, votes=[], final=finals[int(pk)])
            scores[k] = label_score(rule=rule, label=label) if label is not None else np.nan
    per_item = pd.Series(scores, index=items)
    firsts = frame.drop_duplicates("item").set_index("item").loc[per_item.index]
    if project.task_type == TaskType.PAIRWISE:
        side_a = pd.DataFrame(
            {
                "item": per_item.index,
                "model": firsts["model_a"].fillna("").replace("", "A").to_numpy(),
                "score": per_item.to_numpy(),
            }
        )
        side_b = pd.DataFrame(
            {
                "item": per_item.index,
                "model": firsts["model_b"].fillna("").replace("", "B").to_numpy(),
                "score": 1 - per_item.to_numpy(),
            }
        )
        return pd.concat([side_a, side_b], ignore_index=True)
    return pd.DataFrame(
        {
            "item": per_item.index,
            "model": firsts["model"].fillna("").to_numpy(),
            "score": per_item.to_numpy(),
        }
    )


def _item_counts(project: Project) -> dict[str, dict[str, Any]]:
    """Per language tag: items, those picked by an uncertainty selector, in adjudication
    and final."""
    return {
        row["language__tag"]: row
        for row in Item.objects.filter(project=project, is_gold=False)
        .values("language__tag")
        .annotate(
            n=Count("id"),
            uncertainty=Count("id", filter=Q(selection=Selection.UNCERTAINTY)),
            adjudication=Count("id", filter=Q(status=ItemStatus.ADJUDICATION)),
            final=Count("id", filter=Q(status=ItemStatus.FINAL)),
        )
    }


def _quality_note(
    measure: dict[str, Any], item_counts: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What model quality measures and which items it uses."""
    return {
        **measure,
        "items_used": "items not picked by an uncertainty selector (selection: "
        + ", ".join(QUALITY_SELECTIONS)
        + "); final labels replace their item's judgments",
        "selections": list(QUALITY_SELECTIONS),
        "items_excluded_uncertainty": int(
            sum(c.get("uncertainty", 0) for c in item_counts.values())
        ),
    }


def _language_counts(
    sub: Any, counts: dict[str, Any], scheme: _Scheme, *, level: str, resamples: int, seed: int
) -> dict[str, Any]:
    """A language's items, judgments and raters, and its alpha with CI."""
    agreement = _alpha_summary(sub, scheme, resamples=resamples, seed=seed, per_label=False)
    return {
        "items": int(counts.get("n", 0)),
        "items_judged": int(sub.frame["item"].nunique()) if len(sub) else 0,
        "items_in_adjudication": int(counts.get("adjudication", 0)),
        "items_final": int(counts.get("final", 0)),
        "judgments": agreement["judgments"],
        "raters": int(sub.frame["rater"].nunique()) if len(sub) else 0,
        "alpha": agreement["alpha"],
        "level": level,
        "ci": agreement["ci"],
        "units": agreement["units"],
        "excluded_units": agreement["excluded_units"],
    }


def parity_report(*, project: Project, seed: int = 0, resamples: int = 1000) -> ParityReport:
    """Per language: items, judgments, alpha with CI, model quality with CI, the ranking of
    models, honeypot accuracy, judgments per day, the gap to the best language, and flags.

    Model quality uses only items that were not picked by an uncertainty selector (those
    over-represent hard cases); the report says which items it used.
    """
    level = project.agreement_level
    scheme = _Scheme.of(project, level)
    data = _judgments_load(project, item_fields=("model", "model_a", "model_b", "selection"))
    frame = data.frame
    finals = dict(FinalLabel.objects.filter(item__project=project).values_list("item_id", "value"))
    item_counts = _item_counts(project)
    quality_frame = frame[frame["selection"] != Selection.UNCERTAINTY] if len(frame) else frame
    appearances: Counter[str] = Counter()
    if len(quality_frame):
        per_item = quality_frame.drop_duplicates("item")
        appearances.update(m or "A" for m in per_item["model_a"])
        appearances.update(m or "B" for m in per_item["model_b"])
    measure, focus = _quality_measure(project, appearances)
    honeypots = _honeypot_accuracy(project)
    throughput = _throughput(project, now=timezone.now())
    now = timezone.now()
    rows: list[ParityLanguage] = []
    for lang in project.languages.order_by("tag"):
        tag = lang.tag
        sub = data.subset((frame["language"] == tag).to_numpy()) if len(frame) else data
        qsub = (
            quality_frame[quality_frame["language"] == tag] if len(quality_frame) else quality_frame
        )
        quality, models = _language_quality(
            project, qsub, finals, focus=focus, resamples=resamples, seed=seed
        )
        row: ParityLanguage = {  # type: ignore[typeddict-item]  # the throughput keys come unpacked
            "language": tag,
            "name": lang.name,
            "direction": lang.direction,
            **_language_counts(
                sub, item_counts.get(tag, {}), scheme, level=level, resamples=resamples, seed=seed
            ),
            "quality": quality,
            "models": models,
            "ranking": _language_ranking(project, qsub, models),
            "honeypot": honeypots.get(tag, {"accuracy": None, "judged": 0}),
            **throughput.get(tag, _throughput_row(None, now=now)),
            "gap": None,
            "flags": [],
        }
        rows.append(row)
    best = _gaps_and_flags(project, rows)
    return {
        "project": project.slug,
        "task_type": project.task_type,
        "level": level,
        "agreement_threshold": project.agreement_threshold,
        "generated_at": now.isoformat(),
        "resamples": resamples,
        "seed": seed,
        "confidence": CONFIDENCE,
        "quality": _quality_note(measure, item_counts),
        "best_language": best,
        "languages": rows,
    }


def _quality_measure(
    project: Project, appearances: Mapping[str, int]
) -> tuple[dict[str, Any], str | None]:
    """The quality measure of the project's task; for pairwise, its headline is the win
    rate of the model compared most often (`appearances`: comparisons per model; ties by
    name)."""
    schema = project.schema or {}
    if project.task_type == TaskType.RATING:
        scale = schema.get("scale") or {}
        return {
            "measure": "mean_rating",
            "scale": [scale.get("min"), scale.get("max")],
            "focus_model": None,
        }, None
    if project.task_type == TaskType.LABELS:
        positive = LabelRule.of(project).labels[:1]
        return {
            "measure": "label_share",
            "label": positive[0] if positive else None,
            "focus_model": None,
        }, None
    counted = {m: n for m, n in appearances.items() if n}
    focus = min(counted, key=lambda m: (-counted[m], m)) if counted else None
    return {"measure": "win_rate", "focus_model": focus}, focus


def _language_quality(
    project: Project,
    frame: pd.DataFrame,
    finals: dict[int, dict[str, Any]],
    *,
    focus: str | None,
    resamples: int,
    seed: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    empty = {"value": None, "ci": [None, None], "items": 0}
    if frame.empty:
        return empty, []
    scores = _quality_rows(frame, finals, project)
    models = []
    for model, group in scores.groupby("model", sort=True):
        value, ci = bootstrap_mean(group["score"].to_numpy(), resamples=resamples, seed=seed)
        models.append(
            {"model": model or "(none)", "value": value, "ci": list(ci), "items": int(len(group))}
        )
    if project.task_type == TaskType.PAIRWISE:
        headline = scores[scores["model"] == focus]
    else:
        headline = scores
    if headline.empty:
        return empty, models
    value, ci = bootstrap_mean(headline["score"].to_numpy(), resamples=resamples, seed=seed)
    return {"value": value, "ci": list(ci), "items": int(headline["item"].nunique())}, models


def _language_ranking(
    project: Project, frame: pd.DataFrame, models: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if project.task_type != TaskType.PAIRWISE:
        ranked = sorted(
            (m for m in models if m["value"] is not None), key=lambda m: (-m["value"], m["model"])
        )
        return [
            {"model": m["model"], "score": m["value"], "rank": k}
            for k, m in enumerate(ranked, start=1)
        ]
    if frame.empty:
        return []
    decisive = [
        (rater, a or "A", b or "B", (a or "A") if v["choice"] == "a" else (b or "B"))
        for rater, a, b, v in zip(
            frame["rater"], frame["model_a"], frame["model_b"], frame["value"], strict=True
        )
        if v.get("choice") in ("a", "b")
    ]
    comparisons = pd.DataFrame.from_records(decisive, columns=["worker", "left", "right", "label"])
    return bradley_terry(comparisons)


def _honeypot_accuracy(project: Project) -> dict[str, dict[str, Any]]:
    rows = Judgment.objects.filter(
        item__project=project,
        kind=AssignmentKind.HONEYPOT,
        is_current=True,
        item__gold__isnull=False,
    ).values_list("item__language__tag", "value", "item__gold__value", "item__gold__tolerance")
    hits: Counter[str] = Counter()
    judged: Counter[str] = Counter()
    for tag, value, gold_value, tolerance in rows:
        judged[tag] += 1
        hits[tag] += bool(
            gold_matches(
                task_type=project.task_type,
                gold_value=gold_value,
                tolerance=tolerance or {},
                value=value,
            )
        )
    return {tag: {"accuracy": hits[tag] / n, "judged": n} for tag, n in judged.items()}


def _throughput_row(row: dict[str, Any] | None, *, now: Any) -> Throughput:
    if not row or not row["n"]:
        return {
            "judgments_per_day": None,
            "judgments_last_7_days": 0,
            "first_judgment_at": None,
            "last_judgment_at": None,
        }
    first, last = row["first"], row["last"]
    days = max(1.0, (last - first).total_seconds() / 86400)
    return {
        "judgments_per_day": row["n"] / days,
        "judgments_last_7_days": int(row["recent"]),
        "first_judgment_at": first.isoformat(),
        "last_judgment_at": last.isoformat(),
    }


def _throughput(project: Project, *, now: Any) -> dict[str, Throughput]:
    """Judgments per day over each language's active span, and in the last seven days."""
    rows = (
        Judgment.objects.filter(
            item__project=project, is_current=True, kind__in=list(COUNTED_JUDGMENT_KINDS)
        )
        .values("item__language__tag")
        .annotate(
            n=Count("id"),
            first=Min("created_at"),
            last=Max("created_at"),
            recent=Count("id", filter=Q(created_at__gte=now - timedelta(days=7))),
        )
    )
    return {row["item__language__tag"]: _throughput_row(row, now=now) for row in rows}


def _overlaps(a: list[float | None], b: list[float | None]) -> bool:
    if None in a or None in b:
        return True
    return a[0] <= b[1] and b[0] <= a[1]


def _gaps_and_flags(project: Project, rows: list[dict[str, Any]]) -> str | None:
    measured = [r for r in rows if r["quality"]["value"] is not None]
    best = max(measured, key=lambda r: (r["quality"]["value"], r["language"]), default=None)
    for row in rows:
        flags = row["flags"]
        if row["alpha"] is None:
            flags.append(
                {
                    "code": "no_agreement",
                    "message": "no item has two judgments yet; agreement unknown",
                }
            )
        elif row["alpha"] < project.agreement_threshold:
            flags.append(
                {
                    "code": "low_agreement",
                    "message": f"alpha {row['alpha']:.3f} is below the project threshold {project.agreement_threshold:.3f}",
                }
            )
        if best is None or row["quality"]["value"] is None:
            continue
        row["gap"] = best["quality"]["value"] - row["quality"]["value"]
        if row is not best and _overlaps(row["quality"]["ci"], best["quality"]["ci"]):
            flags.append(
                {
                    "code": "indistinct",
                    "message": f"its quality CI overlaps the best language's ({best['language']}): "
                    "too wide to tell the two apart yet",
                }
            )
    return best["language"] if best else None

"""Loading: one scored row per (item, model), with each item's period and attributes and
each judgment's evaluator dialect.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from django.db.models import Max
from django.db.models.fields.json import KT
from django.db.models.functions import ExtractIsoYear, ExtractMonth, ExtractWeek, ExtractYear

from annotation.agreement.parity import _quality_rows
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    EvaluatorLanguage,
    Item,
    Judgment,
    Project,
    TaskType,
)
from annotation.progress.options import NONE_KEY


def _period_first_day(period: str, year: int, number: int) -> str:
    """ISO date of the first day of an ISO week (Monday) or of a month."""
    if period == "month":
        return datetime.date(year, number, 1).isoformat()
    return datetime.date.fromisocalendar(year, number, 1).isoformat()


def item_periods(project: Project, period: str, *, language: str | None = None) -> pd.Series:
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


def item_attributes(project: Project, item_ids: Sequence[int]) -> pd.DataFrame:
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


def scored_rows(project: Project, frame: pd.DataFrame, finals: dict[int, Any]) -> pd.DataFrame:
    """(item, model, score, language) rows of the quality items."""
    if frame.empty:
        return pd.DataFrame(columns=["item", "model", "score", "language"])
    rows = _quality_rows(frame, finals, project)
    language = frame.drop_duplicates("item").set_index("item")["language"]
    rows["language"] = language.loc[rows["item"]].to_numpy()
    rows["model"] = rows["model"].replace("", NONE_KEY)
    return rows


def judgment_dialects(frame: pd.DataFrame) -> pd.Series:
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


def headline_rows(project: Project, scored: pd.DataFrame, focus: str | None) -> pd.DataFrame:
    """The rows the language's headline quality uses: every item; for pairwise, the focus
    model's side."""
    if project.task_type == TaskType.PAIRWISE:
        return scored[scored["model"] == focus]
    return scored

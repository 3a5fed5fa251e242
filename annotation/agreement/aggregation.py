"""Aggregating judgments into item labels: the label rule per item, Dawid–Skene over the
project (crowd-kit), Bradley–Terry strengths for pairwise comparisons."""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from annotation.agreement.alpha import _finite
from annotation.agreement.loading import _judgments_load, _language_resolve, _Scheme
from annotation.labels import ItemLabel, LabelRule, item_label, round_half_up, votes_of
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    AgreementLevel,
    FinalLabel,
    Project,
    TaskType,
)
from annotation.schema import PAIRWISE_CHOICES

# =======================================================================================
# Aggregation: one label per item
# =======================================================================================

AGGREGATION_METHODS = ("majority", "dawid_skene")


def item_labels(
    *,
    project: Project,
    method: str = "majority",
    language: str | None = None,
    item_ids: Iterable[int] | None = None,
) -> dict[int, ItemLabel]:
    """One label per judged (or adjudicated) item, keyed by item id.

    The label rule of annotation.labels (a FinalLabel always wins; majority, or
    crowd-kit's Dawid–Skene for labels and pairwise choices), over the counted judgments.
    """
    if method not in AGGREGATION_METHODS:
        raise ValidationError(
            f"method must be one of {', '.join(AGGREGATION_METHODS)}, not {method!r}"
        )
    if method == "dawid_skene" and project.task_type == TaskType.RATING:
        raise ValidationError(
            "dawid_skene aggregates labels and pairwise choices; ratings use method=majority (the median)"
        )
    language = _language_resolve(project, language)
    ids = None if item_ids is None else list(item_ids)
    scheme = _Scheme.of(project, AgreementLevel.NOMINAL)
    data = _judgments_load(project, language=language, item_ids=ids)
    finals_qs = FinalLabel.objects.filter(item__project=project)
    if language:
        finals_qs = finals_qs.filter(item__language__tag=language)
    if ids is not None:
        finals_qs = finals_qs.filter(item_id__in=ids)
    finals = dict(finals_qs.values_list("item_id", "value"))
    frame = data.frame
    by_item: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item_id, value in zip(frame["item"], frame["value"], strict=True):
        by_item[int(item_id)].append(value)

    rule = LabelRule.of(project)
    fitted: dict[int, dict[str, Any]] = {}
    if method == "dawid_skene" and by_item:
        fitted = _aggregate_categorical(frame, scheme, method=method)
    labels: dict[int, ItemLabel] = {}
    for item_id in sorted(set(by_item) | set(finals)):
        values = by_item.get(item_id, [])
        final = finals.get(item_id)
        if item_id in fitted and final is None and rule.task_type == TaskType.LABELS:
            # Dawid–Skene's label set: the rule's agreement, from its value.
            base = item_label(
                rule=rule, votes=votes_of(rule.task_type, values), final=fitted[item_id]
            )
            assert base is not None
            labels[item_id] = ItemLabel(
                value=fitted[item_id],
                agreement=base.agreement,
                n_judgments=len(values),
                source="dawid_skene",
            )
            continue
        choice = fitted[item_id].get("choice") if item_id in fitted else None
        label = item_label(
            rule=rule, votes=votes_of(rule.task_type, values), final=final, choice=choice
        )
        if label is not None:
            labels[item_id] = label
    return labels


@dataclass(frozen=True)
class FittedChoices:
    """Each judged item's pairwise choice as Dawid–Skene decided it, in two arrays (item
    ids ascending, codes into `names`): a million items take 9 MB, not a dict of labels."""

    ids: np.ndarray
    codes: np.ndarray
    names: tuple[str, ...]

    def get(self, item_id: int) -> str | None:
        at = int(self.ids.searchsorted(item_id))
        if at < len(self.ids) and self.ids[at] == item_id:
            return self.names[self.codes[at]]
        return None


# Judgments read per fetch while fitting (three integers each).
_FIT_CHUNK = 50_000


def dawid_skene_choices(*, project: Project) -> FittedChoices:
    """Dawid–Skene over every counted judgment of a pairwise project, for a streamed
    export: the judgments are read from a server-side cursor as three integers each (item,
    rater, choice code) into arrays, fitted with crowd-kit, and only the chosen choice per
    item is kept. `item_labels(method="dawid_skene")` gives the same choices; it builds
    a label object per item, which a million-item export cannot afford."""
    # Codes in sorted order: crowd-kit orders the labels it sees, so the tie-breaking
    # between equally likely choices is the one item_labels gets from the names.
    names = tuple(sorted(PAIRWISE_CHOICES))
    if connection.vendor == "postgresql":
        choice = "j.value ->> 'choice'"
    else:
        choice = "json_extract(j.value, '$.choice')"
    code = (
        "CASE "
        + choice
        + "".join(f" WHEN '{name}' THEN {n}" for n, name in enumerate(names))
        + " END"
    )
    kinds = ", ".join(f"'{kind}'" for kind in COUNTED_JUDGMENT_KINDS)
    sql = (
        # Raters: evaluators by id, external raters by minus theirs, one integer column.
        f"SELECT j.item_id, coalesce(j.evaluator_id, -j.external_rater_id), {code} "  # noqa: S608 - no values
        "FROM annotation_judgment j JOIN annotation_item i ON i.id = j.item_id "
        # A choice outside the schema (a row written around it) has no code: left out.
        f"WHERE i.project_id = %s AND j.is_current AND j.kind IN ({kinds}) AND {code} IS NOT NULL"
    )
    chunks = []
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        if connection.vendor == "postgresql":
            # A plain scan: compiling it with JIT costs more than it saves (as in the export).
            with connection.cursor() as settings_cursor:
                settings_cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, [project.pk])
        while rows := cursor.fetchmany(_FIT_CHUNK):
            chunks.append(np.array(rows, dtype=np.int64))
    if not chunks:
        return FittedChoices(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int8), names)
    judged = np.concatenate(chunks)
    del chunks
    tasks = pd.DataFrame({"task": judged[:, 0], "worker": judged[:, 1], "label": judged[:, 2]})
    del judged
    predicted = _crowdkit_predict(tasks, method="dawid_skene")
    ids = predicted.index.to_numpy(dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    return FittedChoices(ids[order], predicted.to_numpy(dtype=np.int8)[order], names)


def _crowdkit_predict(tasks: pd.DataFrame, *, method: str) -> pd.Series:
    """crowd-kit's label per task (columns task, worker, label) by majority or Dawid–Skene."""
    from crowdkit.aggregation import DawidSkene, MajorityVote

    # crowd-kit still uses pandas idioms that newer pandas warns about on every call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "majority":
            return MajorityVote().fit_predict(tasks)
        return DawidSkene(n_iter=100).fit_predict(tasks)


def _aggregate_categorical(
    frame: pd.DataFrame, scheme: _Scheme, *, method: str
) -> dict[int, dict[str, Any]]:
    items = frame["item"].astype(np.int64).to_numpy()
    values = list(frame["value"])
    out: dict[int, dict[str, Any]] = {}
    if scheme.multi:
        encoded = scheme.encode(values)
        n_labels = len(scheme.labels)
        tasks = pd.DataFrame(
            {
                "task": (items[:, None] * n_labels + np.arange(n_labels)[None, :]).ravel(),
                "worker": np.repeat(frame["rater"].to_numpy(), n_labels),
                "label": encoded.ravel(),
            }
        )
        predicted = _crowdkit_predict(tasks, method=method)
        chosen: dict[int, list[str]] = defaultdict(list)
        for task, label in predicted.items():
            if int(label) == 1:
                chosen[int(task) // n_labels].append(scheme.labels[int(task) % n_labels])
        share = pd.DataFrame(encoded).groupby(items).mean()
        for item_id in np.unique(items):
            picked = chosen.get(int(item_id)) or [
                scheme.labels[int(np.argmax(share.loc[item_id].to_numpy()))]
            ]
            out[int(item_id)] = {"labels": [label for label in scheme.labels if label in picked]}
        return out
    key = "choice" if scheme.task_type == TaskType.PAIRWISE else "label"
    raw = [v["choice"] if key == "choice" else v["labels"][0] for v in values]
    predicted = _crowdkit_predict(
        pd.DataFrame({"task": items, "worker": frame["rater"].to_numpy(), "label": raw}),
        method=method,
    )
    # Strengths of the judgments per (item, choice), gathered in one pass.
    strengths: dict[tuple[int, str], list[int]] = defaultdict(list)
    if key == "choice":
        for item_id, value in zip(items, values, strict=True):
            strengths[(int(item_id), value.get("choice"))].append(int(value.get("strength", 1)))
    for task, label in predicted.items():
        item_id = int(task)
        if key == "label":
            out[item_id] = {"labels": [label]}
            continue
        value: dict[str, Any] = {"choice": label}
        if label in ("a", "b"):
            same = strengths.get((item_id, label))
            value["strength"] = min(2, max(1, round_half_up(float(np.median(same))))) if same else 1
        out[item_id] = value
    return out


def bradley_terry(comparisons: pd.DataFrame) -> list[dict[str, Any]]:
    """Rank models from pairwise wins with crowd-kit's Bradley–Terry (ties left out).

    `comparisons` has columns worker, left, right, label (the winner: left or right).
    """
    from crowdkit.aggregation import BradleyTerry

    if comparisons.empty or len(set(comparisons["left"]) | set(comparisons["right"])) < 2:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = BradleyTerry(n_iter=100).fit_predict(comparisons)
    wins = Counter(comparisons["label"])
    appearances = Counter(comparisons["left"]) + Counter(comparisons["right"])
    ranking = [
        {
            "model": str(model),
            "score": _finite(float(score)),
            "wins": int(wins.get(model, 0)),
            "comparisons": int(appearances.get(model, 0)),
        }
        for model, score in scores.items()
    ]
    ranking.sort(key=lambda r: (-(r["score"] if r["score"] is not None else -math.inf), r["model"]))
    for rank, row in enumerate(ranking, start=1):
        row["rank"] = rank
    return ranking

"""An item's label: the one rule every part of Parity applies to an item's judgments.

The preference export, agreement's item labels, adjudication routing and active learning's
training labels all call `item_label`, so they can never disagree. It is pure: it takes
the item's counted votes (production and historical judgments; see
`annotation.models.COUNTED_JUDGMENT_KINDS`) and its final label, and touches no database.

The rule
--------
- A **final label** (adjudication, or promoted gold) always wins: `source="final"`.
- **Pairwise**: the choice more than half of the judgments made (a strict majority),
  with the median strength of the judgments that made it (rounded half up, 1 or 2). With
  no strict majority — an even split such as a/b, or a/b/tie — the label is
  `{"choice": "tie"}` and `decided` is False: the judgments state no preference, and the
  item goes to adjudication. (`choice=` hands in a choice another aggregate decided,
  Dawid–Skene: the label is that choice, `source="dawid_skene"`.)
- **Ratings**: the median score, rounded half up to a scale point, with the mean beside
  it. `decided` is False when the spread (max − min) is above the project's
  `adjudication_rating_spread`.
- **Labels**: the label set more than half chose; with several labels allowed (`multi`),
  each label is in when more than half chose it, and an even split on any label leaves
  the item undecided. Without a strict majority, the most frequent choice (ties broken in
  the schema's label order) stands as the label and `decided` is False.

`agreement` is how far the judgments agree with the label, in [0, 1], None with fewer
than two judgments: the share that made the label's choice (pairwise, labels, and ratings
at the nominal level); for ratings at the ordinal, interval or ratio level, one minus the
mean absolute difference between two judgments' scores over the scale's width, so that
4 and 5 on a 1–5 scale agree more than 1 and 5 (exact match would call both 0).

An item's quality score
-----------------------
What the parity and progress reports average per language, model version and period is
read off the label (`label_score`): ratings, the label's mean score (a final label: its
score) — the mean, not the rounded median, so a 3/4 split counts as 3.5; pairwise, how far
the label favours side A: 1 for "a", 0 for "b", ½ for a tie, both bad, or an even split
(which the rule labels a tie); labels, 1 when the label holds the schema's first label.
`label_scores` is the same rule over arrays of votes, for reports over a million
judgments; a test holds the two equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

# Task types and label sources by their stored names (annotation.models.TaskType values),
# so this module needs no Django.
RATING, PAIRWISE, LABELS = "rating", "pairwise", "labels"
FINAL, MAJORITY, DAWID_SKENE = "final", "majority", "dawid_skene"
NOMINAL = "nominal"
# The pairwise choices (annotation.schema.PAIRWISE_CHOICES).
CHOICES = ("a", "b", "tie", "both_bad")


@dataclass(frozen=True, slots=True)
class ItemLabel:
    """An item's label under the rule above."""

    value: dict[str, Any]
    agreement: float | None
    n_judgments: int
    source: str
    # False when the judgments split with no strict majority (or a rating spread beyond
    # the project's rule): such an item goes to adjudication.
    decided: bool = True
    # Ratings: the mean score of the judgments (the label itself is their median).
    mean: float | None = None


@dataclass(frozen=True, slots=True)
class LabelRule:
    """What the rule needs to know of a project."""

    task_type: str
    multi: bool = False
    labels: tuple[str, ...] = ()
    scale: tuple[float, float] | None = None
    level: str = NOMINAL
    rating_spread: float | None = None

    @classmethod
    def of(cls, project: Any) -> LabelRule:
        """The rule of a project (anything with task_type, schema and adjudication_rating_spread)."""
        schema = project.schema or {}
        scale = schema.get("scale") or {}
        bounds = None
        if isinstance(scale.get("min"), int | float) and isinstance(scale.get("max"), int | float):
            bounds = (float(scale["min"]), float(scale["max"]))
        labels = tuple(
            str(label["id"]) if isinstance(label, dict) else str(label)
            for label in schema.get("labels", ()) or ()
        )
        level = schema.get("level") or ("ordinal" if project.task_type == RATING else NOMINAL)
        return cls(
            task_type=str(project.task_type),
            multi=bool(schema.get("multi")),
            labels=labels,
            scale=bounds,
            level=str(level),
            rating_spread=getattr(project, "adjudication_rating_spread", None),
        )


def votes_of(task_type: str, values: Iterable[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """Judgment values as the votes `item_label` takes: (choice, strength), (score, None)
    or (label tuple, None)."""
    if task_type == PAIRWISE:
        return [(v.get("choice"), v.get("strength")) for v in values]
    if task_type == RATING:
        return [(v.get("score"), None) for v in values]
    return [(tuple(v.get("labels", ())), None) for v in values]


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def item_label(
    *,
    rule: LabelRule,
    votes: Sequence[Sequence[Any]],
    final: dict[str, Any] | None = None,
    choice: str | None = None,
) -> ItemLabel | None:
    """The item's label from its counted votes (see `votes_of`) and final label; None
    when it has neither. Votes may come as text (a streamed export's "a", "2", "4.5")."""
    n = len(votes)
    if final is None and not n:
        return None
    if rule.task_type == RATING:
        return _rating(rule, votes, final)
    if rule.task_type == PAIRWISE:
        return _pairwise(votes, final, choice)
    return _labels(rule, votes, final)


def _rating(
    rule: LabelRule, votes: Sequence[Sequence[Any]], final: dict[str, Any] | None
) -> ItemLabel:
    scores = [float(vote[0]) for vote in votes]
    n = len(scores)
    decided = True
    if final is not None:
        value, source = final, FINAL
    else:
        value, source = {"score": round_half_up(_median(scores))}, MAJORITY
        if rule.rating_spread is not None and n >= 2:
            decided = max(scores) - min(scores) <= rule.rating_spread
    agreement = None
    if n >= 2:
        width = (rule.scale[1] - rule.scale[0]) if rule.scale else 0.0
        if rule.level == NOMINAL or width <= 0:
            key = value.get("score")
            agreement = sum(1 for x in scores if x == key) / n
        else:
            pairs = n * (n - 1) / 2
            apart = sum(abs(x - y) for x, y in combinations(scores, 2)) / pairs
            agreement = max(0.0, 1.0 - apart / width)
    return ItemLabel(
        value=value,
        agreement=agreement,
        n_judgments=n,
        source=source,
        decided=decided,
        mean=sum(scores) / n if n else None,
    )


def _pairwise(
    votes: Sequence[Sequence[Any]], final: dict[str, Any] | None, fitted: str | None
) -> ItemLabel:
    n = len(votes)
    counts: dict[Any, int] = {}
    for vote in votes:
        counts[vote[0]] = counts.get(vote[0], 0) + 1
    decided = True
    if final is not None:
        value, source = final, FINAL
    else:
        if fitted is not None:
            choice, source = fitted, DAWID_SKENE
        else:
            choice, source = None, MAJORITY
            for candidate, count in counts.items():
                if count * 2 > n:
                    choice = candidate
            if choice is None:
                choice, decided = "tie", False
        if choice in ("a", "b"):
            value = {"choice": choice, "strength": _strength(votes, choice)}
        else:
            value = {"choice": choice}
    agreement = counts.get(value.get("choice"), 0) / n if n >= 2 else None
    return ItemLabel(
        value=value, agreement=agreement, n_judgments=n, source=source, decided=decided
    )


def _strength(votes: Sequence[Sequence[Any]], choice: str) -> int:
    """The median strength of the votes for `choice`, rounded half up, in 1–2; 1 when
    none made it (Dawid–Skene may still pick it)."""
    strengths = [
        int(vote[1]) if len(vote) > 1 and vote[1] not in (None, "") else 1
        for vote in votes
        if vote[0] == choice
    ]
    if not strengths:
        return 1
    return min(2, max(1, round_half_up(_median(strengths))))


class _LabelOrder:
    """Labels in the schema's order (unknown ones after, by name)."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.index = {label: i for i, label in enumerate(labels)}

    def rank(self, label: str) -> int:
        return self.index.get(label, len(self.index))

    def __call__(self, labels: Iterable[str]) -> list[str]:
        return sorted(set(labels), key=lambda label: (self.rank(label), label))


def _multi_majority(sets: list[tuple[str, ...]], ordered: _LabelOrder) -> tuple[list[str], bool]:
    """Every label more than half the votes carry (undecided when one has exactly half);
    with none, the most frequent one, first in the schema's order."""
    n = len(sets)
    counts: dict[str, int] = {}
    for labels in sets:
        for label in set(labels):
            counts[label] = counts.get(label, 0) + 1
    chosen = [label for label, count in counts.items() if count * 2 > n]
    decided = not any(count * 2 == n for count in counts.values())
    if not chosen and counts:
        top = max(counts.values())
        chosen = ordered(label for label, count in counts.items() if count == top)[:1]
    return ordered(chosen), decided


def _single_majority(sets: list[tuple[str, ...]], ordered: _LabelOrder) -> tuple[list[str], bool]:
    """The label set most votes chose (decided when more than half did); of equally
    frequent sets, the first in the schema's order."""
    tally: dict[tuple[str, ...], int] = {}
    for labels in sets:
        key = tuple(ordered(labels))
        tally[key] = tally.get(key, 0) + 1
    top = max(tally.values())
    first = min(
        (key for key, count in tally.items() if count == top),
        key=lambda key: [ordered.rank(label) for label in key],
    )
    return list(first), top * 2 > len(sets)


def _labels(
    rule: LabelRule, votes: Sequence[Sequence[Any]], final: dict[str, Any] | None
) -> ItemLabel:
    n = len(votes)
    sets = [tuple(vote[0]) for vote in votes]
    ordered = _LabelOrder(rule.labels)
    decided = True
    if final is not None:
        value, source = final, FINAL
    else:
        majority = _multi_majority if rule.multi else _single_majority
        chosen, decided = majority(sets, ordered)
        value, source = {"labels": chosen}, MAJORITY
    want = tuple(ordered(value.get("labels", ())))
    agreement = sum(1 for labels in sets if tuple(ordered(labels)) == want) / n if n >= 2 else None
    return ItemLabel(
        value=value, agreement=agreement, n_judgments=n, source=source, decided=decided
    )


# =======================================================================================
# An item's quality score: the label as a number
# =======================================================================================


def label_score(*, rule: LabelRule, label: ItemLabel) -> float | None:
    """The item's quality score read off its label (see the module docstring)."""
    value = label.value
    if rule.task_type == RATING:
        if label.source == FINAL:
            return float(value["score"])
        return label.mean
    if rule.task_type == PAIRWISE:
        choice = value.get("choice")
        return 1.0 if choice == "a" else 0.0 if choice == "b" else 0.5
    positive = rule.labels[0] if rule.labels else None
    return 1.0 if positive is not None and positive in value.get("labels", ()) else 0.0


def label_scores(
    *,
    rule: LabelRule,
    item: np.ndarray,
    n_items: int,
    score: np.ndarray | None = None,
    choice: np.ndarray | None = None,
    labels: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    """`label_score` of every item at once, from its votes (no final labels: the caller
    puts those in). `item` (n,) holds each vote's item, 0..n_items-1; the votes are
    `score` (ratings), `choice` (pairwise: an index into CHOICES, anything else a vote for
    none of them) or `labels` (labels projects: each vote's label list). NaN for an item
    without votes."""
    item = np.asarray(item, dtype=np.int64)
    votes = np.bincount(item, minlength=n_items)
    out = np.full(n_items, np.nan)
    has = votes > 0
    if rule.task_type == RATING:
        if score is None:
            raise ValueError("ratings need score")
        total = np.bincount(item, weights=np.asarray(score, dtype=np.float64), minlength=n_items)
        out[has] = total[has] / votes[has]
        return out
    if rule.task_type == PAIRWISE:
        if choice is None:
            raise ValueError("pairwise needs choice")
        width = len(CHOICES) + 1  # the last column: a vote for none of CHOICES
        code = np.asarray(choice, dtype=np.int64)
        code = np.where((code >= 0) & (code < len(CHOICES)), code, len(CHOICES))
        counts = np.bincount(item * width + code, minlength=n_items * width).reshape(-1, width)
        top = counts.argmax(axis=1)
        # A strict majority names the label; without one the rule says tie.
        majority = counts[np.arange(n_items), top] * 2 > votes
        favour = np.full(width, 0.5)
        favour[CHOICES.index("a")], favour[CHOICES.index("b")] = 1.0, 0.0
        out[has] = np.where(majority, favour[top], 0.5)[has]
        return out
    if labels is None:
        raise ValueError("labels projects need labels")
    # Labels projects keep the rule's own code, item by item: their votes are sets.
    order = np.argsort(item, kind="stable")
    bounds = np.flatnonzero(np.diff(item[order])) + 1
    for group in np.split(order, bounds) if len(order) else []:
        label = item_label(rule=rule, votes=[(tuple(labels[k]), None) for k in group])
        if label is not None:
            out[item[group[0]]] = label_score(rule=rule, label=label)
    return out

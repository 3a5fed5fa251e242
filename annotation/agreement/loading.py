"""Reading a project's judgments for agreement: the value scheme, the resolved options,
the judgments as a frame, and the alpha summary of one group."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from django.core.exceptions import ValidationError
from django.db.models import IntegerField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from annotation.agreement.alpha import LEVELS, alpha_with_ci
from annotation.agreement.types import AlphaSummary
from annotation.languages import language_tag_normalize
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    AgreementLevel,
    AssignmentKind,
    EvaluatorProfile,
    ExternalRater,
    Judgment,
    Project,
    TaskType,
)
from annotation.schema import PAIRWISE_CHOICES

CALIBRATION_KINDS = (AssignmentKind.CALIBRATION.value,)
BREAKDOWNS = ("language", "evaluator", "model", "round")
METADATA_PREFIX = "metadata:"
# Graded preference of A over B: b much better … a much better (DESIGN.md, pairwise value).
GRADED_DOMAIN = (-2, -1, 0, 1, 2)


# =======================================================================================
# From judgments to numbers: the project's value scheme
# =======================================================================================


@dataclass(frozen=True)
class _Scheme:
    """How a project's judgment values become indices into an ordered value domain."""

    task_type: str
    level: str
    domain: tuple[Any, ...]
    labels: tuple[str, ...] = ()  # multi-label projects: one binary unit per label
    multi: bool = False

    @classmethod
    def of(cls, project: Project, level: str) -> _Scheme:
        schema = project.schema or {}
        if project.task_type == TaskType.RATING:
            scale = schema.get("scale") or {"min": 1, "max": 5}
            return cls(project.task_type, level, tuple(range(scale["min"], scale["max"] + 1)))
        if project.task_type == TaskType.PAIRWISE:
            if level == AgreementLevel.NOMINAL:
                return cls(project.task_type, level, PAIRWISE_CHOICES)
            # Graded preference: strength of A over B; tie and both-bad prefer neither.
            return cls(project.task_type, level, GRADED_DOMAIN)
        labels = tuple(schema.get("labels") or ())
        if schema.get("multi"):
            return cls(project.task_type, level, (0, 1), labels=labels, multi=True)
        return cls(project.task_type, level, labels)

    def index(self, value: dict[str, Any]) -> int:
        if self.task_type == TaskType.RATING:
            return int(value["score"]) - int(self.domain[0])
        if self.task_type == TaskType.PAIRWISE:
            choice = value["choice"]
            if self.level == AgreementLevel.NOMINAL:
                return PAIRWISE_CHOICES.index(choice)
            strength = int(value.get("strength", 1))
            graded = strength if choice == "a" else -strength if choice == "b" else 0
            return GRADED_DOMAIN.index(graded)
        return self.domain.index(value["labels"][0])

    def encode(self, values: Sequence[dict[str, Any]]) -> np.ndarray:
        """Value indices (n,) — or, for multi-label, a binary matrix (n, labels)."""
        if self.multi:
            out = np.zeros((len(values), len(self.labels)), dtype=np.int64)
            position = {label: k for k, label in enumerate(self.labels)}
            for row, value in enumerate(values):
                for label in value.get("labels", ()):
                    if label in position:
                        out[row, position[label]] = 1
            return out
        return np.fromiter((self.index(v) for v in values), dtype=np.int64, count=len(values))

    @property
    def kappa_weights(self) -> str | None:
        return None if self.level == AgreementLevel.NOMINAL else "quadratic"


def level_resolve(*, project: Project, level: str | None = None) -> str:
    """The level of measurement: the explicit argument, else the project's (schema or task)."""
    if level is None or level == "":
        return project.agreement_level
    if level not in LEVELS:
        raise ValidationError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    return level


def _language_resolve(project: Project, language: str | None) -> str | None:
    if language is None or language == "":
        return None
    tag = language_tag_normalize(language)
    if not project.languages.filter(tag=tag).exists():
        enabled = ", ".join(project.languages.values_list("tag", flat=True)) or "none"
        raise ValidationError(
            f"{tag!r} is not a language of project {project.slug} (its languages: {enabled})"
        )
    return tag


def _by_resolve(by: str | None) -> str | None:
    if by is None or by == "":
        return None
    if by in BREAKDOWNS:
        return by
    if by.startswith(METADATA_PREFIX) and by[len(METADATA_PREFIX) :].strip():
        return by
    raise ValidationError(
        f"by must be one of {', '.join(BREAKDOWNS)} or {METADATA_PREFIX}<key> (an item metadata key), not {by!r}"
    )


@dataclass
class _Judgments:
    """The judgments in scope, as parallel columns (one row per current judgment)."""

    frame: pd.DataFrame
    rater_labels: dict[str, str]
    # Encoded values per scheme, computed once and carried into subsets (a breakdown takes
    # many subsets of the same judgments).
    codes: dict[_Scheme, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, mask: Any) -> _Judgments:
        mask = np.asarray(mask)
        return _Judgments(
            self.frame[mask], self.rater_labels, {k: v[mask] for k, v in self.codes.items()}
        )

    def encoded(self, scheme: _Scheme) -> np.ndarray:
        if scheme not in self.codes:
            self.codes[scheme] = scheme.encode(list(self.frame["value"]))
        return self.codes[scheme]


def _values_rebuild(task_type: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Judgment values (the agreement-relevant part) from the columns the database extracted."""
    if task_type == TaskType.RATING:
        return [{"score": int(score)} for score in frame["_score"]]
    if task_type == TaskType.PAIRWISE:
        return [
            {"choice": choice, "strength": int(strength)}
            if strength == strength and strength is not None
            else {"choice": choice}
            for choice, strength in zip(frame["_choice"], frame["_strength"], strict=True)
        ]
    return [
        {"labels": json.loads(raw) if isinstance(raw, str) else list(raw or ())}
        for raw in frame["_labels"]
    ]


def _judgments_load(
    project: Project,
    *,
    language: str | None = None,
    kinds: Sequence[str] = COUNTED_JUDGMENT_KINDS,
    item_fields: Sequence[str] = (),
    item_ids: Iterable[int] | None = None,
    with_created: bool = False,
) -> _Judgments:
    qs = Judgment.objects.filter(item__project=project, is_current=True, kind__in=list(kinds))
    if language:
        qs = qs.filter(item__language__tag=language)
    if item_ids is not None:
        qs = qs.filter(item_id__in=list(item_ids))
    parts = _value_parts(project.task_type)
    extra = ["created_at"] if with_created else []
    columns = [
        "item_id",
        "evaluator_id",
        "external_rater_id",
        "item__language__tag",
        "guideline_version",
        "kind",
        *extra,
        *(f"item__{name}" for name in item_fields),
        *parts,
    ]
    rows = list(qs.annotate(**parts).order_by("item_id", "id").values_list(*columns))
    names = [
        "item",
        "evaluator",
        "external",
        "language",
        "guideline_version",
        "kind",
        *extra,
        *item_fields,
        *parts,
    ]
    frame = pd.DataFrame.from_records(rows, columns=names)
    frame["value"] = (
        _values_rebuild(project.task_type, frame) if len(frame) else pd.Series(dtype=object)
    )
    frame = frame.drop(columns=list(parts))
    if frame.empty:
        frame["rater"] = pd.Series(dtype=str)
        return _Judgments(frame, {})
    evaluator = frame["evaluator"].astype("Int64")
    external = frame["external"].astype("Int64")
    frame["rater"] = np.where(
        evaluator.notna(), "ev:" + evaluator.astype(str), "ext:" + external.astype(str)
    )
    return _Judgments(frame, _rater_labels(evaluator, external))


def _value_parts(task_type: str) -> dict[str, Any]:
    """Only the parts of the value agreement needs, extracted by the database: decoding
    every judgment's JSON (and converting every timestamp) in Python is most of the time
    a large report takes otherwise."""
    if task_type == TaskType.RATING:
        return {"_score": Cast(KT("value__score"), IntegerField())}
    if task_type == TaskType.PAIRWISE:
        return {
            "_choice": KT("value__choice"),
            "_strength": Cast(KT("value__strength"), IntegerField()),
        }
    return {"_labels": KT("value__labels")}


def _rater_labels(evaluator: pd.Series, external: pd.Series) -> dict[str, str]:
    """How reports name each rater: evaluators by pseudonym, external raters by their id."""
    labels: dict[str, str] = {}
    ev_ids = sorted({int(x) for x in evaluator.dropna()})
    if ev_ids:
        names_by_user = dict(
            EvaluatorProfile.objects.filter(user_id__in=ev_ids).values_list("user_id", "pseudonym")
        )
        labels.update({f"ev:{uid}": names_by_user.get(uid, f"evaluator-{uid}") for uid in ev_ids})
    ext_ids = sorted({int(x) for x in external.dropna()})
    if ext_ids:
        labels.update(
            {
                f"ext:{pk}": external_id
                for pk, external_id in ExternalRater.objects.filter(pk__in=ext_ids).values_list(
                    "pk", "external_id"
                )
            }
        )
    return labels


def _alpha_summary(
    data: _Judgments,
    scheme: _Scheme,
    *,
    resamples: int,
    seed: int,
    per_label: bool = False,
    package: bool = True,
) -> AlphaSummary:
    """alpha, level, ci, units, judgments, excluded_units for these judgments."""
    frame = data.frame
    out: AlphaSummary = {
        "alpha": None,
        "level": scheme.level,
        "ci": [None, None],
        "units": 0,
        "judgments": int(len(frame)),
        "excluded_units": 0,
    }
    if frame.empty:
        if scheme.multi and per_label:
            out["labels"] = [
                {"label": label, "alpha": None, "ci": [None, None], "units": 0}
                for label in scheme.labels
            ]
        return out
    items = frame["item"].to_numpy(dtype=np.int64)
    encoded = data.encoded(scheme)
    bootstrap = {"resamples": resamples, "seed": seed}
    if scheme.multi:
        n_labels = len(scheme.labels)
        unit = (items[:, None] * n_labels + np.arange(n_labels)[None, :]).ravel()
        result = alpha_with_ci(
            unit=unit,
            value=encoded.ravel(),
            cluster=np.repeat(items, n_labels),
            domain=scheme.domain,
            level=scheme.level,
            package=package,
            **bootstrap,
        )
        if per_label:
            out["labels"] = _per_label_alphas(items, encoded, scheme, **bootstrap)
    else:
        result = alpha_with_ci(
            unit=items,
            value=encoded,
            domain=scheme.domain,
            level=scheme.level,
            package=package,
            **bootstrap,
        )
    out.update(
        alpha=result.alpha,
        ci=list(result.ci),
        units=result.units,
        excluded_units=result.excluded_units,
    )
    return out


def _per_label_alphas(
    items: np.ndarray, encoded: np.ndarray, scheme: _Scheme, *, resamples: int, seed: int
) -> list[dict[str, Any]]:
    """A multi-label project's alpha of each label on its own (binary, per item)."""
    out = []
    for k, label in enumerate(scheme.labels):
        r = alpha_with_ci(
            unit=items,
            value=encoded[:, k],
            domain=scheme.domain,
            level=scheme.level,
            resamples=resamples,
            seed=seed,
        )
        out.append({"label": label, "alpha": r.alpha, "ci": list(r.ci), "units": r.units})
    return out

"""What a round is asked: its parameters with their defaults and checks, and the pool it
may pick from. Shared by the round (`rounds`), its training (`training`) and its workers
(`round_runs`)."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, QuerySet

from active_learning.allocation import (
    AUDIT_CI_HALFWIDTH,
)
from active_learning.features import (
    model_path_check,
)
from active_learning.scorers import (
    SCORERS,
)
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    Item,
    ItemStatus,
    Judgment,
    Project,
)

# Judgments that are human labels (never honeypot, calibration or adjudication).
NEUTRAL_SCORE = 0.5


DEFAULT_PARAMETERS: dict[str, Any] = {
    "features": "hashing",  # or "encoder" (settings.PARITY_ENCODER_PATH or encoder_path)
    "encoder_path": "",
    "causal_lm_path": "",  # rescore items without log-probs (settings.PARITY_CAUSAL_LM_PATH)
    "scorers": [],  # empty: every scorer the pool can feed
    "weights": {},  # scorer name -> weight in the combination (default 1)
    "floor": 0,  # at least this many items per language (within its caps)
    "evaluator_capacity": 200,  # judgments one qualified evaluator can take per round; None: no cap
    "audit_min_share": None,  # None: 10% for parity, 0 otherwise
    "audit_max_share": None,  # None: 15% for parity, 0 otherwise
    "audit_ci_halfwidth": AUDIT_CI_HALFWIDTH,
    "mix": 0.5,  # k-center: weight of uncertainty against spread
    "candidate_factor": 3.0,  # top-uncertainty candidates per batch slot
    "bad_below": None,  # rating projects: a label below this is "bad" (default: the scale's midpoint)
    "n_learners": 5,
    "min_labels": 10,
}


def _fail(field_name: str, message: str) -> ValidationError:
    return ValidationError({field_name: [message]})


def _labelled() -> Exists:
    return Exists(
        Judgment.objects.filter(
            item=OuterRef("pk"), is_current=True, kind__in=COUNTED_JUDGMENT_KINDS
        )
    )


def pool_queryset(*, project: Project) -> QuerySet[Item]:
    """Items a round may pick: in the pool, not gold, not labelled by a human already."""
    return Item.objects.filter(project=project, status=ItemStatus.POOL, is_gold=False).filter(
        ~_labelled()
    )


def _scale(project: Project) -> tuple[float, float]:
    scale = (project.schema or {}).get("scale") or {}
    return float(scale.get("min", 1)), float(scale.get("max", 5))


def _whole(value: Any, *, name: str, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise _fail(name, f"{name} must be a whole number")
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise _fail(name, f"{name} must be {bounds}, not {value}")
    return value


def _fraction(value: Any, *, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(name, f"{name} must be a number")
    if not low <= value <= high:
        raise _fail(name, f"{name} must be between {low} and {high}, not {value}")
    return float(value)


def round_parameters_clean(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The round's parameters with defaults filled in; ValidationError names the bad one
    (checked in this order, so the first bad one is the one reported)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail("parameters", "parameters must be a JSON object")
    unknown = sorted(set(raw) - set(DEFAULT_PARAMETERS))
    if unknown:
        raise _fail(
            unknown[0], f"unknown parameter {unknown[0]!r}; known: {', '.join(DEFAULT_PARAMETERS)}"
        )
    p = {**DEFAULT_PARAMETERS, **raw}
    _models_clean(p)
    _scorers_clean(p)
    _allocation_clean(p)
    p["mix"] = _fraction(p["mix"], name="mix", low=0.0, high=1.0)
    p["candidate_factor"] = _fraction(
        p["candidate_factor"], name="candidate_factor", low=1.0, high=100.0
    )
    if p["bad_below"] is not None:
        p["bad_below"] = _fraction(p["bad_below"], name="bad_below", low=-1e9, high=1e9)
    p["n_learners"] = _whole(p["n_learners"], name="n_learners", low=2, high=25)
    p["min_labels"] = _whole(p["min_labels"], name="min_labels", low=4)
    return p


def _models_clean(p: dict[str, Any]) -> None:
    """The features and the model folders (empty: the settings' default)."""
    if p["features"] not in ("hashing", "encoder"):
        raise _fail("features", f"features must be 'hashing' or 'encoder', not {p['features']!r}")
    for name in ("encoder_path", "causal_lm_path"):
        if p[name] is None:
            p[name] = ""
        if not isinstance(p[name], str):
            raise _fail(name, f"{name} must be a folder path")


def _scorers_clean(p: dict[str, Any]) -> None:
    """Scorer names, and their weights in the combination."""
    if not isinstance(p["scorers"], list) or not all(isinstance(s, str) for s in p["scorers"]):
        raise _fail("scorers", "scorers must be a list of scorer names")
    for name in p["scorers"]:
        if name not in SCORERS:
            raise _fail("scorers", f"unknown scorer {name!r}; known: {', '.join(SCORERS)}")
    if not isinstance(p["weights"], dict):
        raise _fail("weights", "weights must map scorer names to numbers")
    for name, weight in p["weights"].items():
        if name not in SCORERS:
            raise _fail("weights", f"unknown scorer {name!r}; known: {', '.join(SCORERS)}")
        _fraction(weight, name="weights", low=0.0, high=100.0)


def _allocation_clean(p: dict[str, Any]) -> None:
    """What splits the budget across languages: floors, capacity, the audit slice."""
    p["floor"] = _whole(p["floor"], name="floor", low=0)
    if p["evaluator_capacity"] is not None:
        p["evaluator_capacity"] = _whole(p["evaluator_capacity"], name="evaluator_capacity", low=1)
    for name in ("audit_min_share", "audit_max_share"):
        if p[name] is not None:
            p[name] = _fraction(p[name], name=name, low=0.0, high=0.5)
    if (
        p["audit_min_share"] is not None
        and p["audit_max_share"] is not None
        and p["audit_min_share"] > p["audit_max_share"]
    ):
        raise _fail("audit_min_share", "audit_min_share must not be above audit_max_share")
    p["audit_ci_halfwidth"] = _fraction(
        p["audit_ci_halfwidth"], name="audit_ci_halfwidth", low=0.01, high=0.5
    )


def _model_paths_check(*, parameters: dict[str, Any]) -> None:
    if parameters["features"] == "encoder":
        model_path_check(
            parameters["encoder_path"] or settings.PARITY_ENCODER_PATH,
            field="encoder_path",
            what="encoder",
        )
    lm_path = parameters["causal_lm_path"] or settings.PARITY_CAUSAL_LM_PATH
    if lm_path:
        model_path_check(lm_path, field="causal_lm_path", what="causal LM")

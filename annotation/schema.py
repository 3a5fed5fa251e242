"""The judgment schema of a project, and validation of judgment values against it.

Values have one shape everywhere (pages, API, imports, exports):
rating `{"score": 4}`; pairwise `{"choice": "a"|"b"|"tie"|"both_bad", "strength": 1|2}`;
labels `{"labels": [...]}`; any of them may add `"issues": [...]` and `"comment": "…"`.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from annotation.models import AgreementLevel, TaskType

PAIRWISE_CHOICES = ("a", "b", "tie", "both_bad")
MAX_COMMENT_CHARS = 5000
_SCALE_MAX_POINTS = 1001

DEFAULT_SCHEMAS: dict[str, dict[str, Any]] = {
    TaskType.RATING: {"scale": {"min": 1, "max": 5, "labels": {}}, "issues": []},
    TaskType.PAIRWISE: {"issues": []},
    TaskType.LABELS: {"labels": ["acceptable", "unacceptable"], "multi": False, "issues": []},
}


def _string_list(value: Any, *, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValidationError(f"schema.{field} must be a list of non-empty strings")
    if len(set(value)) != len(value):
        raise ValidationError(f"schema.{field} has duplicates")
    return [v.strip() for v in value]


def schema_validate(*, task_type: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """Return the normalised schema for the task type, or raise ValidationError."""
    if task_type not in TaskType.values:
        raise ValidationError(f"unknown task type {task_type!r}; use one of {', '.join(TaskType.values)}")
    if schema is None:
        schema = DEFAULT_SCHEMAS[task_type]
    if not isinstance(schema, dict):
        raise ValidationError("schema must be a JSON object")
    allowed = {"scale", "labels", "multi", "issues", "level"}
    unknown = sorted(set(schema) - allowed)
    if unknown:
        raise ValidationError(f"schema has unknown keys: {', '.join(unknown)}")
    out: dict[str, Any] = {"issues": _string_list(schema.get("issues", []), field="issues")}
    if task_type == TaskType.RATING:
        scale = schema.get("scale")
        if not isinstance(scale, dict):
            raise ValidationError("a rating project needs schema.scale with min and max")
        lo, hi = scale.get("min"), scale.get("max")
        if not (isinstance(lo, int) and isinstance(hi, int)) or isinstance(lo, bool) or isinstance(hi, bool):
            raise ValidationError("schema.scale.min and schema.scale.max must be whole numbers")
        if lo >= hi:
            raise ValidationError("schema.scale.min must be below schema.scale.max")
        if hi - lo + 1 > _SCALE_MAX_POINTS:
            raise ValidationError(f"schema.scale has more than {_SCALE_MAX_POINTS} points")
        labels = scale.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ValidationError("schema.scale.labels must map scale points to strings")
        clean_labels = {}
        for key, text in labels.items():
            try:
                point = int(key)
            except (TypeError, ValueError):
                raise ValidationError(f"schema.scale.labels key {key!r} is not a scale point") from None
            if not lo <= point <= hi:
                raise ValidationError(f"schema.scale.labels key {key!r} is outside {lo}–{hi}")
            clean_labels[str(point)] = text
        out["scale"] = {"min": lo, "max": hi, "labels": clean_labels}
    elif task_type == TaskType.LABELS:
        labels = _string_list(schema.get("labels", []), field="labels")
        if len(labels) < 2 and not schema.get("multi"):
            raise ValidationError("a single-label project needs at least two labels in schema.labels")
        if not labels:
            raise ValidationError("a labels project needs schema.labels")
        multi = schema.get("multi", False)
        if not isinstance(multi, bool):
            raise ValidationError("schema.multi must be true or false")
        out["labels"] = labels
        out["multi"] = multi
    else:
        for key in ("scale", "labels", "multi"):
            if key in schema:
                raise ValidationError(f"schema.{key} does not apply to a pairwise project")
    level = schema.get("level")
    if level is not None:
        if level not in AgreementLevel.values:
            raise ValidationError(f"schema.level must be one of {', '.join(AgreementLevel.values)}")
        out["level"] = level
    return out


def judgment_value_validate(*, task_type: str, schema: dict[str, Any], value: Any) -> dict[str, Any]:
    """Return the cleaned judgment value, or raise ValidationError naming the field at fault."""
    if not isinstance(value, dict):
        raise ValidationError(_("A judgment must be a JSON object."))
    clean: dict[str, Any] = {}
    if task_type == TaskType.RATING:
        allowed = {"score", "issues", "comment"}
        score = value.get("score")
        if isinstance(score, float) and math.isfinite(score) and score.is_integer():
            score = int(score)
        if not isinstance(score, int) or isinstance(score, bool):
            raise ValidationError(_("score: a whole number is required"))
        lo, hi = schema["scale"]["min"], schema["scale"]["max"]
        if not lo <= score <= hi:
            raise ValidationError(_("score: %(score)s is outside the scale %(lo)s–%(hi)s") % {"score": score, "lo": lo, "hi": hi})
        clean["score"] = score
    elif task_type == TaskType.PAIRWISE:
        allowed = {"choice", "strength", "issues", "comment"}
        choice = value.get("choice")
        if choice not in PAIRWISE_CHOICES:
            raise ValidationError(_("choice: must be one of %(choices)s") % {"choices": ", ".join(PAIRWISE_CHOICES)})
        clean["choice"] = choice
        strength = value.get("strength", 1)
        if choice in ("a", "b"):
            if strength not in (1, 2) or isinstance(strength, bool):
                raise ValidationError(_("strength: must be 1 (slightly better) or 2 (much better)"))
            clean["strength"] = strength
    elif task_type == TaskType.LABELS:
        allowed = {"labels", "issues", "comment"}
        labels = value.get("labels")
        if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
            raise ValidationError(_("labels: a list of labels is required"))
        unknown = [v for v in labels if v not in schema["labels"]]
        if unknown:
            raise ValidationError(_("labels: %(labels)s not in the project's labels") % {"labels": ", ".join(map(repr, unknown))})
        if len(set(labels)) != len(labels):
            raise ValidationError(_("labels: a label is given twice"))
        if schema.get("multi"):
            if not labels:
                raise ValidationError(_("labels: choose at least one label"))
        elif len(labels) != 1:
            raise ValidationError(_("labels: choose exactly one label"))
        # Keep the schema's order so equal sets compare equal.
        clean["labels"] = [v for v in schema["labels"] if v in labels]
    else:
        raise ValidationError(f"unknown task type {task_type!r}")
    unknown_keys = sorted(set(value) - allowed)
    if unknown_keys:
        raise ValidationError(_("%(field)s: not a field of a %(task)s judgment") % {"field": unknown_keys[0], "task": task_type})
    issues = value.get("issues", [])
    if not isinstance(issues, list) or not all(isinstance(v, str) for v in issues):
        raise ValidationError(_("issues: a list of issue tags is required"))
    bad = [v for v in issues if v not in schema.get("issues", [])]
    if bad:
        raise ValidationError(_("issues: %(issues)s not in the project's issue tags") % {"issues": ", ".join(map(repr, bad))})
    if issues:
        clean["issues"] = [v for v in schema["issues"] if v in issues]
    comment = value.get("comment", "")
    if not isinstance(comment, str):
        raise ValidationError(_("comment: must be text"))
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValidationError(_("comment: longer than %(n)s characters") % {"n": MAX_COMMENT_CHARS})
    if "\x00" in comment:
        raise ValidationError(_("comment: contains a NUL character"))
    if comment.strip():
        clean["comment"] = comment.strip()
    return clean

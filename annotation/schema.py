"""The judgment schema of a project, and validation of judgment values and gold answers
against it: one small validator per task type and concern, chosen from one table.

Values have one shape everywhere (pages, API, imports, exports):
rating `{"score": 4}`; pairwise `{"choice": "a"|"b"|"tie"|"both_bad", "strength": 1|2}`;
labels `{"labels": [...]}`; any of them may add `"issues": [...]` and `"comment": "…"`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from annotation.models import AgreementLevel, Project, TaskType
from annotation.validation import text_clean

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


def _named_list(value: Any, *, field: str) -> tuple[Any, dict[str, Any]]:
    """Labels or issue tags given as `[{"id": "minor_issues", "name": "Minor issues"}]`
    (name: text, or text per language `{"en": …, "de": …}`): the plain ids, which every
    judgment value and export uses, and the display names by id."""
    if not isinstance(value, list) or not any(isinstance(v, dict) for v in value):
        return value, {}
    ids: list[Any] = []
    names: dict[str, Any] = {}
    for entry in value:
        if isinstance(entry, str):
            ids.append(entry)
            continue
        if (
            not isinstance(entry, dict)
            or set(entry) - {"id", "name"}
            or not isinstance(entry.get("id"), str)
        ):
            raise ValidationError(
                f'schema.{field} entries must be ids or {{"id": …, "name": …}} objects'
            )
        ids.append(entry["id"].strip())
        if "name" in entry:
            names[entry["id"].strip()] = entry["name"]
    return ids, names


def _names_clean(names: Any, *, field: str, ids: list[str]) -> dict[str, Any]:
    if not isinstance(names, dict):
        raise ValidationError(f"schema.{field} must map ids to names")
    clean: dict[str, Any] = {}
    for key, name in names.items():
        if key not in ids:
            raise ValidationError(f"schema.{field}: {key!r} is not one of the ids")
        per_language = name if isinstance(name, dict) else {"": name}
        if not per_language or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in per_language.items()
        ):
            raise ValidationError(
                f"schema.{field}: the name of {key!r} must be text or text per language"
            )
        clean[key] = name
    return clean


def schema_display_name(*, schema: dict[str, Any], field: str, value: str, language: str) -> str:
    """What a person sees for a label or issue tag: the schema's name in the interface
    language (then its base language, then English, then any), else the id made readable
    (`minor_issues` → "Minor issues")."""
    name = (
        (schema or {}).get({"labels": "label_names", "issues": "issue_names"}[field], {}).get(value)
    )
    if isinstance(name, str):
        return name
    if isinstance(name, dict) and name:
        base = language.split("-")[0].split("_")[0].lower()
        for key in (language, base, "en", ""):
            if key in name:
                return name[key]
        return next(iter(name.values()))
    text = value.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:] if text else value


def _scale_labels_clean(labels: Any, *, lo: int, hi: int) -> dict[str, str]:
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ValidationError("schema.scale.labels must map scale points to strings")
    clean: dict[str, str] = {}
    for key, text in labels.items():
        try:
            point = int(key)
        except (TypeError, ValueError):
            raise ValidationError(f"schema.scale.labels key {key!r} is not a scale point") from None
        if not lo <= point <= hi:
            raise ValidationError(f"schema.scale.labels key {key!r} is outside {lo}–{hi}")
        clean[str(point)] = text
    return clean


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------
# One small validator per task type and concern; _TASK_TYPES below says which is which.
# ---------------------------------------------------------------------------------------


def _rating_schema(schema: dict[str, Any]) -> dict[str, Any]:
    scale = schema.get("scale")
    if not isinstance(scale, dict):
        raise ValidationError("a rating project needs schema.scale with min and max")
    lo, hi = scale.get("min"), scale.get("max")
    if (
        not (isinstance(lo, int) and isinstance(hi, int))
        or isinstance(lo, bool)
        or isinstance(hi, bool)
    ):
        raise ValidationError("schema.scale.min and schema.scale.max must be whole numbers")
    if lo >= hi:
        raise ValidationError("schema.scale.min must be below schema.scale.max")
    if hi - lo + 1 > _SCALE_MAX_POINTS:
        raise ValidationError(f"schema.scale has more than {_SCALE_MAX_POINTS} points")
    labels = _scale_labels_clean(scale.get("labels", {}), lo=lo, hi=hi)
    return {"scale": {"min": lo, "max": hi, "labels": labels}}


def _pairwise_schema(schema: dict[str, Any]) -> dict[str, Any]:
    for key in ("scale", "labels", "multi", "label_names"):
        if key in schema:
            raise ValidationError(f"schema.{key} does not apply to a pairwise project")
    return {}


def _labels_schema(schema: dict[str, Any]) -> dict[str, Any]:
    label_ids, label_names = _named_list(schema.get("labels", []), field="labels")
    labels = _string_list(label_ids, field="labels")
    out: dict[str, Any] = {}
    if label_names or "label_names" in schema:
        given = schema.get("label_names", {})
        merged = {**given, **label_names} if isinstance(given, dict) else given
        out["label_names"] = _names_clean(merged, field="label_names", ids=labels)
    if len(labels) < 2 and not schema.get("multi"):
        raise ValidationError("a single-label project needs at least two labels in schema.labels")
    if not labels:
        raise ValidationError("a labels project needs schema.labels")
    multi = schema.get("multi", False)
    if not isinstance(multi, bool):
        raise ValidationError("schema.multi must be true or false")
    return {**out, "labels": labels, "multi": multi}


def _rating_value(schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    score = value.get("score")
    if isinstance(score, float) and math.isfinite(score) and score.is_integer():
        score = int(score)
    if not _whole_number(score):
        raise ValidationError(_("score: a whole number is required"))
    lo, hi = schema["scale"]["min"], schema["scale"]["max"]
    if not lo <= score <= hi:
        raise ValidationError(
            _("score: %(score)s is outside the scale %(lo)s–%(hi)s")
            % {"score": score, "lo": lo, "hi": hi}
        )
    return {"score": score}


def _pairwise_value(schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    choice = value.get("choice")
    if choice not in PAIRWISE_CHOICES:
        raise ValidationError(
            _("choice: must be one of %(choices)s") % {"choices": ", ".join(PAIRWISE_CHOICES)}
        )
    if choice not in ("a", "b"):
        return {"choice": choice}
    strength = value.get("strength", 1)
    if strength not in (1, 2) or isinstance(strength, bool):
        raise ValidationError(_("strength: must be 1 (slightly better) or 2 (much better)"))
    return {"choice": choice, "strength": strength}


def _labels_value(schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    labels = value.get("labels")
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise ValidationError(_("labels: a list of labels is required"))
    unknown = [v for v in labels if v not in schema["labels"]]
    if unknown:
        raise ValidationError(
            _("labels: %(labels)s not in the project's labels")
            % {"labels": ", ".join(map(repr, unknown))}
        )
    if len(set(labels)) != len(labels):
        raise ValidationError(_("labels: a label is given twice"))
    if schema.get("multi"):
        if not labels:
            raise ValidationError(_("labels: choose at least one label"))
    elif len(labels) != 1:
        raise ValidationError(_("labels: choose exactly one label"))
    # Keep the schema's order so equal sets compare equal.
    return {"labels": [v for v in schema["labels"] if v in labels]}


def _number(raw: Any, *, key: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValidationError(f"tolerance.{key}: must be a number")
    return raw


def _rating_tolerance(schema: dict[str, Any], raw: Any) -> dict[str, Any]:
    raw = _number(raw, key="points")
    span = schema["scale"]["max"] - schema["scale"]["min"]
    if not 0 <= raw <= span:
        raise ValidationError(
            f"tolerance.points: must be between 0 and {span} (the width of the scale)"
        )
    return {"points": int(raw) if float(raw).is_integer() else float(raw)}


def _pairwise_tolerance(schema: dict[str, Any], raw: Any) -> dict[str, Any]:
    if not isinstance(raw, bool):
        raise ValidationError("tolerance.tie_ok: must be true or false")
    return {"tie_ok": True} if raw else {}


def _labels_tolerance(schema: dict[str, Any], raw: Any) -> dict[str, Any]:
    raw = _number(raw, key="jaccard")
    if not 0 < raw <= 1:
        raise ValidationError("tolerance.jaccard: must be above 0 and at most 1")
    return {"jaccard": float(raw)}


SchemaRule = Callable[[dict[str, Any]], dict[str, Any]]
ValueRule = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class _TaskTypeRules:
    """What a task type adds to the common schema and value (issue tags, comment, level)."""

    schema: SchemaRule  # the schema's task-specific keys, cleaned
    value_fields: frozenset[str]  # the fields of a judgment value besides issues and comment
    value: ValueRule  # (schema, value) → the cleaned task-specific fields of a value
    tolerance_key: str  # the one key of a gold answer's tolerance
    tolerance: ValueRule  # (schema, raw tolerance) → the cleaned tolerance


_TASK_TYPES: dict[str, _TaskTypeRules] = {
    TaskType.RATING: _TaskTypeRules(
        _rating_schema, frozenset({"score"}), _rating_value, "points", _rating_tolerance
    ),
    TaskType.PAIRWISE: _TaskTypeRules(
        _pairwise_schema,
        frozenset({"choice", "strength"}),
        _pairwise_value,
        "tie_ok",
        _pairwise_tolerance,
    ),
    TaskType.LABELS: _TaskTypeRules(
        _labels_schema, frozenset({"labels"}), _labels_value, "jaccard", _labels_tolerance
    ),
}
_SCHEMA_KEYS = frozenset(
    {"scale", "labels", "multi", "issues", "level", "label_names", "issue_names"}
)
_COMMON_VALUE_FIELDS = frozenset({"issues", "comment"})


# ---------------------------------------------------------------------------------------
# The validators callers use
# ---------------------------------------------------------------------------------------


def schema_validate(*, task_type: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """Return the normalised schema for the task type, or raise ValidationError."""
    rules = _TASK_TYPES.get(task_type)
    if rules is None:
        raise ValidationError(
            f"unknown task type {task_type!r}; use one of {', '.join(TaskType.values)}"
        )
    if schema is None:
        schema = DEFAULT_SCHEMAS[task_type]
    if not isinstance(schema, dict):
        raise ValidationError("schema must be a JSON object")
    unknown = sorted(set(schema) - _SCHEMA_KEYS)
    if unknown:
        raise ValidationError(f"schema has unknown keys: {', '.join(unknown)}")
    issue_ids, issue_names = _named_list(schema.get("issues", []), field="issues")
    out: dict[str, Any] = {"issues": _string_list(issue_ids, field="issues")}
    given = schema.get("issue_names", {})
    issue_names = {**given, **issue_names} if isinstance(given, dict) else given
    if issue_names:
        out["issue_names"] = _names_clean(issue_names, field="issue_names", ids=out["issues"])
    out.update(rules.schema(schema))
    level = schema.get("level")
    if level is not None:
        if level not in AgreementLevel.values:
            raise ValidationError(f"schema.level must be one of {', '.join(AgreementLevel.values)}")
        out["level"] = level
    return out


def judgment_value_validate(
    *, task_type: str, schema: dict[str, Any], value: Any
) -> dict[str, Any]:
    """Return the cleaned judgment value, or raise ValidationError naming the field at fault."""
    if not isinstance(value, dict):
        raise ValidationError(_("A judgment must be a JSON object."))
    rules = _TASK_TYPES.get(task_type)
    if rules is None:
        raise ValidationError(f"unknown task type {task_type!r}")
    clean = rules.value(schema, value)
    unknown_keys = sorted(set(value) - rules.value_fields - _COMMON_VALUE_FIELDS)
    if unknown_keys:
        raise ValidationError(
            _("%(field)s: not a field of a %(task)s judgment")
            % {"field": unknown_keys[0], "task": task_type}
        )
    clean.update(_issues_and_comment(schema, value))
    return clean


def _issues_and_comment(schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    issues = value.get("issues", [])
    if not isinstance(issues, list) or not all(isinstance(v, str) for v in issues):
        raise ValidationError(_("issues: a list of issue tags is required"))
    bad = [v for v in issues if v not in schema.get("issues", [])]
    if bad:
        raise ValidationError(
            _("issues: %(issues)s not in the project's issue tags")
            % {"issues": ", ".join(map(repr, bad))}
        )
    if issues:
        out["issues"] = [v for v in schema["issues"] if v in issues]
    comment = text_clean(value.get("comment"), field="comment", max_chars=MAX_COMMENT_CHARS)
    if comment:
        out["comment"] = comment
    return out


MAX_EXPLANATION_CHARS = 10_000


def gold_tolerance_validate(
    *, task_type: str, schema: dict[str, Any], tolerance: Any
) -> dict[str, Any]:
    """Return a gold answer's cleaned tolerance for the task type, or raise ValidationError saying why."""
    if tolerance in (None, ""):
        return {}
    if not isinstance(tolerance, dict):
        raise ValidationError("tolerance: must be a JSON object")
    rules = _TASK_TYPES.get(task_type)
    if rules is None:
        raise ValidationError(f"unknown task type {task_type!r}")
    key = rules.tolerance_key
    unknown = sorted(set(tolerance) - {key})
    if unknown:
        raise ValidationError(
            f"tolerance: {unknown[0]!r} does not apply to a {task_type} project (use {key!r})"
        )
    if tolerance.get(key) is None:
        return {}
    return rules.tolerance(schema, tolerance[key])


def gold_value_validate(*, project: Project, value: Any) -> dict[str, Any]:
    """A gold answer is a judgment the project's schema accepts (its comment is not kept:
    the explanation says why)."""
    try:
        clean = judgment_value_validate(
            task_type=project.task_type, schema=project.schema, value=value
        )
    except ValidationError as exc:
        raise ValidationError(
            f"The gold answer does not fit the project's schema: {exc.messages[0]}"
        ) from None
    clean.pop("comment", None)
    return clean

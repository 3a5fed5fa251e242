"""The judgment form every page with judgment inputs shares (the item card, revising,
adjudication, calibration answers, gold items, worked examples): what its inputs need
from the project's schema (`_judgment_fields.html`), and the value read back from a POST.
The queue service validates that value against the schema (annotation.schema)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from annotation.models import Project, SkipReason, TaskType
from annotation.schema import schema_display_name

# Scales with more points than this are a slider plus a number box instead of buttons.
MAX_BUTTON_POINTS = 11


def judgment_scale(project: Project) -> dict[str, Any] | None:
    """The rating scale as the judgment inputs draw it (buttons, or a slider for long scales)."""
    scale = (project.schema or {}).get("scale")
    if project.task_type != TaskType.RATING or not scale:
        return None
    lo, hi = scale["min"], scale["max"]
    labels = scale.get("labels", {})
    points = hi - lo + 1
    return {
        "min": lo,
        "max": hi,
        "points": [(p, labels.get(str(p), "")) for p in range(lo, hi + 1)]
        if points <= MAX_BUTTON_POINTS
        else [],
        "slider": points > MAX_BUTTON_POINTS,
        "labelled": [(int(k), v) for k, v in sorted(labels.items(), key=lambda kv: int(kv[0]))],
        "mid": (lo + hi) // 2,
    }


def judgment_fields_context(*, project: Project, value: dict[str, Any] | None) -> dict[str, Any]:
    """What the judgment inputs (_judgment_fields.html) need: the project's schema, and the
    value to prefill. The item card, the revise page and adjudication all use it."""
    schema = project.schema or {}
    value = value or {}
    interface = get_language() or "en"

    def named(field: str) -> list[tuple[str, str]]:
        return [
            (v, schema_display_name(schema=schema, field=field, value=v, language=interface))
            for v in schema.get(field, [])
        ]

    return {
        "task": project.task_type,
        "scale": judgment_scale(project),
        # (id, display name) pairs: the id is what the form sends, the name what people read.
        "issue_tags": named("issues"),
        "label_set": named("labels"),
        "multi": bool(schema.get("multi")),
        "value": value,
        "chosen_labels": value.get("labels", []),
        "chosen_issues": value.get("issues", []),
        "strength": value.get("strength", 1),
        "skip_reasons": SkipReason.choices,
    }


def _int_field(data: QueryDict, name: str, *, missing: str) -> int:
    raw = data.get(name, "").strip()
    if not raw:
        raise ValidationError(missing)
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(
            _("%(field)s: %(raw)r is not a whole number.") % {"field": name, "raw": raw}
        ) from None


def judgment_value_from_form(*, project: Project, data: QueryDict) -> dict[str, Any]:
    """The judgment value (DESIGN.md shape) from the card's form fields; the queue service
    validates it against the project schema."""
    value: dict[str, Any] = {}
    if project.task_type == TaskType.RATING:
        value["score"] = _int_field(data, "score", missing=_("Choose a score."))
    elif project.task_type == TaskType.PAIRWISE:
        choice = data.get("choice", "").strip()
        if not choice:
            raise ValidationError(_("Choose A, B, tie or both bad."))
        value["choice"] = choice
        if choice in ("a", "b"):
            value["strength"] = _int_field(
                data, "strength", missing=_("Choose how much better: slightly or much.")
            )
    else:
        value["labels"] = data.getlist("labels")
    issues = data.getlist("issues")
    if issues:
        value["issues"] = issues
    comment = data.get("comment", "")
    if comment.strip():
        value["comment"] = comment
    return value

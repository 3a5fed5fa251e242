"""Template helpers for the evaluator pages: a judgment value in words, language names."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from annotation.languages import language_display_name
from annotation.models import Language, Project, TaskType
from annotation.schema import schema_display_name

register = template.Library()


@register.simple_tag
def judgment_summary(value: dict[str, Any], project: Project) -> str:
    """The judgment in a few words, as the evaluator gave it ("4 — good", "A much better")."""
    if not isinstance(value, dict):
        return ""
    if project.task_type == TaskType.RATING:
        score = value.get("score")
        label = (project.schema or {}).get("scale", {}).get("labels", {}).get(str(score), "")
        return f"{score} — {label}" if label else str(score)
    if project.task_type == TaskType.PAIRWISE:
        choice = value.get("choice")
        much = value.get("strength") == 2
        if choice == "a":
            return _("A much better") if much else _("A slightly better")
        if choice == "b":
            return _("B much better") if much else _("B slightly better")
        if choice == "tie":
            return _("Tie")
        if choice == "both_bad":
            return _("Both bad")
        return ""
    schema, interface = project.schema or {}, get_language() or "en"
    return ", ".join(
        schema_display_name(schema=schema, field="labels", value=v, language=interface)
        for v in value.get("labels", [])
    )


@register.filter
def language_name(language: Language | str) -> str:
    """The language's name in the interface language ("الألمانية" for de in an Arabic interface);
    takes a Language or a tag."""
    if isinstance(language, Language):
        if (get_language() or "en").startswith("en"):
            return language.name
        return language_display_name(language.tag)
    return language_display_name(str(language))

"""Template helpers for the lead pages of every app (the shared lead sub-navigation)."""

from __future__ import annotations

from typing import Any

from django import template

from annotation.models import Project
from annotation.projects import project_is_lead

register = template.Library()


@register.simple_tag(takes_context=True)
def project_lead(context: template.Context, project: Project) -> bool:
    """Whether the signed-in user leads `project`: the sub-navigation shows a senior
    evaluator (who may adjudicate, nothing else) only the adjudication queue."""
    user: Any = context.get("user")
    if user is None or project is None:
        return False
    return project_is_lead(project=project, user=user)

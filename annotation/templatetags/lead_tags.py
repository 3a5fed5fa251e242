"""Template helpers for the lead pages of every app (the shared lead sub-navigation)."""

from __future__ import annotations

from django import template

from annotation.models import Project
from annotation.projects import project_is_lead
from annotation.types import RequestUser, User

register = template.Library()


@register.simple_tag(takes_context=True)
def project_lead(context: template.Context, project: Project) -> bool:
    """Whether the signed-in user leads `project`: the sub-navigation shows a senior
    evaluator (who may adjudicate, nothing else) only the adjudication queue."""
    user: RequestUser | None = context.get("user")
    if user is None or project is None:
        return False
    return project_is_lead(project=project, user=user)


@register.filter
def pseudonym(user: User | None) -> str:
    """How lead pages name an evaluator: the stable pseudonym, never the username (leads
    judge the work, not the person; the same name as in adjudication and raw exports).
    Someone who never evaluated (a lead) has no pseudonym and keeps their username.
    Callers select_related("…__evaluator_profile") to keep it one query."""
    if user is None:
        return ""
    profile = getattr(user, "evaluator_profile", None)
    return profile.pseudonym if profile is not None else user.get_username()

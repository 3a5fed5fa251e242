"""What the guidelines pages share: the access helper for a project's members, the
language parameter, a safe `next`, refusals as text, and the lead pages' frame.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from annotation.languages import language_tag_normalize
from annotation.models import Language, Project, Qualification
from annotation.projects import project_is_lead
from annotation.types import AuthenticatedRequest
from guidelines import selectors


def error_text(exc: ValidationError | PermissionDenied) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def project_for_member(request: AuthenticatedRequest, slug: str) -> tuple[Project, bool]:
    """The project, for its leads and the evaluators who work on it; (project, is_lead)."""
    project = get_object_or_404(Project, slug=slug)
    if project_is_lead(project=project, user=request.user):
        return project, True
    if not Qualification.objects.filter(project=project, evaluator=request.user).exists():
        raise PermissionDenied(_("You do not work on this project."))
    return project, False


def language_param(project: Project, tag: str) -> Language | None:
    """A language of the project (or the guideline's source language) by tag; 400 otherwise."""
    if not tag:
        return None
    try:
        normal = language_tag_normalize(tag)
    except ValidationError as exc:
        raise BadRequest(
            _("Unknown language tag %(tag)r: %(reason)s") % {"tag": tag, "reason": exc.messages[0]}
        ) from None
    language = selectors.project_language_get(project=project, tag=normal)
    if language is None:
        raise BadRequest(
            _("%(tag)s is not a language of %(project)s.")
            % {"tag": normal, "project": project.name}
        )
    return language


class BadRequest(Exception):
    pass


def safe_next(request: AuthenticatedRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def calibration_url(project: Project, language: Language) -> str:
    return reverse("guidelines:calibration", args=[project.slug, language.tag])


def lead_render(
    request: AuthenticatedRequest,
    template: str,
    project: Project,
    ctx: dict[str, Any],
    *,
    status: int = 200,
) -> HttpResponse:
    ctx.setdefault("project", project)
    return render(request, template, ctx, status=status)


def form_errors(form: Any) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


def int_or_none(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None

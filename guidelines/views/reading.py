"""Evaluators: the guideline page (read, acknowledge) and the guideline panel beside the
item card (an htmx fragment).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from annotation.models import Language, Project, Qualification
from annotation.types import AuthenticatedRequest
from guidelines import selectors, services
from guidelines.views.common import (
    BadRequest,
    calibration_url,
    error_text,
    language_param,
    project_for_member,
    safe_next,
)


@login_required
@require_GET
def guideline_panel(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """The current guideline in the evaluator's language: a fragment beside the item card."""
    project, _is_lead = project_for_member(request, slug)
    try:
        language = language_param(project, request.GET.get("language", "").strip())
    except BadRequest as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    version = selectors.guideline_current(project=project)
    ctx: dict[str, Any] = {"project": project, "version": version}
    if version is not None:
        ctx["text"] = selectors.guideline_text(version=version, language=language)
        ctx["acknowledged"] = (
            not Qualification.objects.filter(project=project, evaluator=request.user)
            .exclude(acknowledged_version=project.guideline_version)
            .exists()
        )
    return render(request, "guidelines/panel.html", ctx)


@login_required
@require_http_methods(["GET", "POST"])
def guideline_read(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """Read the current version (in one's language) and acknowledge it."""
    project, is_lead = project_for_member(request, slug)
    qualifications = selectors.evaluator_languages_in(evaluator=request.user, project=project)
    error = ""
    status = 200
    if request.method == "POST":
        try:
            return _acknowledge(request, project, qualifications)
        except ValidationError as exc:
            error, status = error_text(exc), 400
    try:
        language = language_param(project, request.GET.get("language", "").strip())
    except BadRequest as exc:
        error, status, language = str(exc), 400, None
    if language is None and qualifications:
        language = qualifications[0].language
    version = selectors.guideline_current(project=project)
    # One acknowledgement covers every language of the project; a language added since
    # starts unacknowledged, and then the page asks again.
    acknowledged = next(
        (
            q.acknowledged_version
            for q in qualifications
            if q.acknowledged_version != project.guideline_version
        ),
        project.guideline_version,
    )
    ctx: dict[str, Any] = {
        "project": project,
        "is_lead": is_lead,
        "version": version,
        "qualifications": qualifications,
        "error": error,
        "next": safe_next(request, ""),
        "acknowledged": acknowledged,
        "must_acknowledge": bool(
            version and qualifications and acknowledged != project.guideline_version
        ),
        "languages": _reading_languages(project, version),
        "language": language,
    }
    if version is not None:
        ctx["text"] = selectors.guideline_text(version=version, language=language)
        ctx["changes"] = selectors.versions_since(project=project, acknowledged=acknowledged)
        ctx["examples"] = selectors.worked_examples(project=project, language=language)
        ctx["history"] = selectors.guideline_versions(project=project)
    return render(request, "guidelines/guideline.html", ctx, status=status)


def _acknowledge(
    request: AuthenticatedRequest, project: Project, qualifications: list[Any]
) -> HttpResponse:
    """Acknowledge the version posted, then go on: to `next`, else to the calibration of a
    language still calibrating, else to the queue."""
    services.guideline_acknowledge(
        project=project,
        evaluator=request.user,
        version=request.POST.get("version", "").strip(),
    )
    messages.success(
        request,
        _("You acknowledged guideline %(version)s.") % {"version": project.guideline_version},
    )
    calibrating = [q for q in qualifications if q.status in services.CALIBRATING]
    fallback = (
        calibration_url(project, calibrating[0].language)
        if calibrating
        else reverse("annotation:queue_home")
    )
    return HttpResponseRedirect(safe_next(request, fallback))


def _reading_languages(project: Project, version: Any) -> list[Language]:
    """The languages this version can be read in: its source and its translations (not
    every language of the project: those would only show the source text again)."""
    if version is None:
        return []
    translated = [t.language for t in selectors.guideline_translations(version=version).values()]
    return [version.guideline.source_language, *sorted(translated, key=lambda lang: lang.tag)]

"""Leads: honeypot suspensions (reinstate, send to calibration) and too-fast judgments."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from annotation.access import project_for_lead
from annotation.languages import language_display_name
from annotation.models import Qualification, QualificationStatus
from annotation.qualification import qualification_reinstate, qualification_send_to_calibration
from annotation.templatetags.lead_tags import pseudonym
from annotation.types import AuthenticatedRequest
from guidelines import selectors
from guidelines.views.common import BadRequest, error_text, int_or_none, language_param, lead_render


@login_required
@require_http_methods(["GET", "POST"])
def lead_honeypots(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    error, status = "", 200
    if request.method == "POST":
        qualification = get_object_or_404(
            Qualification.objects.select_related("project", "evaluator", "language"),
            pk=int_or_none(request.POST.get("qualification")),
            project=project,
        )
        try:
            _suspension_act(
                request,
                qualification,
                action=request.POST.get("action", ""),
                reason=request.POST.get("reason", ""),
            )
        except ValidationError as exc:
            error, status = error_text(exc), 400
        else:
            return HttpResponseRedirect(reverse("guidelines:lead_honeypots", args=[project.slug]))
    return lead_render(
        request,
        "guidelines/lead/honeypots.html",
        project,
        {
            "suspended": selectors.honeypot_suspensions(project=project),
            "requalifying": selectors.requalifying(project=project),
            "qualified": Qualification.objects.filter(
                project=project,
                status=QualificationStatus.QUALIFIED,
                honeypot_accuracy__isnull=False,
            )
            .select_related("evaluator__evaluator_profile", "language")
            .order_by("honeypot_accuracy"),
            "error": error,
            "section": "honeypots",
        },
        status=status,
    )


def _suspension_act(
    request: AuthenticatedRequest, qualification: Qualification, *, action: str, reason: str
) -> None:
    """Reinstate the evaluator in the language, or send them back to calibration."""
    if action == "reinstate":
        qualification_reinstate(qualification=qualification, actor=request.user, reason=reason)
        message = _("%(user)s may work %(language)s again.")
    elif action == "calibrate":
        qualification_send_to_calibration(
            qualification=qualification, actor=request.user, reason=reason
        )
        message = _("%(user)s goes back to calibration for %(language)s.")
    else:
        raise ValidationError(_("Unknown action."))
    messages.success(
        request,
        message
        % {
            "user": pseudonym(qualification.evaluator),
            "language": language_display_name(qualification.language.tag),
        },
    )


@login_required
@require_GET
def lead_too_fast(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    try:
        language = language_param(project, request.GET.get("language", "").strip())
    except BadRequest as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    rows, latest = selectors.too_fast_report(project=project, language=language)
    return lead_render(
        request,
        "guidelines/lead/too_fast.html",
        project,
        {
            "rows": rows,
            "latest": latest,
            "language": language,
            "languages": project.languages.order_by("tag"),
            "section": "too_fast",
        },
    )

"""Lead pages of the pipeline side: API tokens (create, revoke) and the triage list of
user reports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from annotation.models import ApiToken, Item, ItemSource, ItemStatus, Project, TokenScope
from annotation.projects import project_is_lead
from annotation.tokens import (
    api_token_create,
    api_token_revoke,
    api_tokens_of_project,
    lifetime_parse,
)


def _project_for_lead(request: HttpRequest, slug: str) -> Project:
    project = get_object_or_404(Project, slug=slug)
    if not project_is_lead(project=project, user=request.user):
        raise PermissionDenied(_("Only a lead of this project may see this page."))
    return project


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for_lead(request, slug)
    created: tuple[ApiToken, str] | None = None
    error = ""
    status = 200
    if request.method == "POST":
        try:
            days = request.POST.get("expires_days", "").strip()
            created = api_token_create(
                project=project, scope=request.POST.get("scope", ""), name=request.POST.get("name", ""),
                actor=request.user, expires_in=lifetime_parse(days) if days else None,
            )
        except ValidationError as exc:
            error, status = exc.messages[0], 400
    context = {
        "project": project,
        "tokens": api_tokens_of_project(project=project),
        "scopes": TokenScope.choices,
        # The secret is rendered into this one response and never stored: reloading the
        # page does not show it again.
        "created": created,
        "error": error,
    }
    response = render(request, "annotation/tokens/tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, slug: str, token_id: int) -> HttpResponse:
    project = _project_for_lead(request, slug)
    token = get_object_or_404(ApiToken, pk=token_id, project=project)
    api_token_revoke(token=token, actor=request.user)
    messages.success(request, _("Token %(prefix)s… is revoked.") % {"prefix": token.prefix})
    return redirect("annotation:tokens", slug=project.slug)


@login_required
def report_triage(request: HttpRequest, slug: str) -> HttpResponse:
    """User reports, newest first, filterable by language and status."""
    project = _project_for_lead(request, slug)
    reports = (
        Item.objects.filter(project=project, source=ItemSource.USER_REPORT)
        .select_related("language")
        .order_by("-created_at", "-id")
    )
    language = request.GET.get("language", "")
    if language:
        reports = reports.filter(language__tag=language)
    status = request.GET.get("status", "")
    if status in ItemStatus.values:
        reports = reports.filter(status=status)
    else:
        status = ""
    page = Paginator(reports, 50).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "page": page,
        "languages": project.languages.order_by("tag"),
        "statuses": ItemStatus.choices,
        "language": language,
        "status": status,
    }
    return render(request, "annotation/tokens/reports.html", context)

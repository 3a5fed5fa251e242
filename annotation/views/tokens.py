"""Lead pages of the pipeline side: API tokens (create, revoke) and the triage list of
user reports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from annotation.access import project_for_lead
from annotation.models import PROJECT_TOKEN_SCOPES, ApiToken, Item, ItemSource, ItemStatus
from annotation.tokens import (
    api_token_create,
    api_token_revoke,
    api_tokens_of_project,
    lifetime_parse,
)

# The new token's secret waits here between the POST and the page that shows it: a
# reload of that page (or of the POST) must not create a second token, and the secret is
# shown once, then gone from the session.
_CREATED_KEY = "parity:created_token"


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    created: tuple[ApiToken, str] | None = None
    error = ""
    status = 200
    if request.method == "POST":
        try:
            days = request.POST.get("expires_days", "").strip()
            token, raw = api_token_create(
                project=project,
                scope=request.POST.get("scope", ""),
                name=request.POST.get("name", ""),
                actor=request.user,
                expires_in=lifetime_parse(days) if days else None,
            )
        except ValidationError as exc:
            error, status = exc.messages[0], 400
        else:
            request.session[_CREATED_KEY] = {"id": token.pk, "raw": raw}
            return redirect("annotation:tokens", slug=project.slug)
    else:
        waiting = request.session.pop(_CREATED_KEY, None)
        if waiting:
            shown = ApiToken.objects.filter(pk=waiting.get("id"), project=project).first()
            if shown is not None:
                created = (shown, waiting.get("raw", ""))
    context = {
        "project": project,
        "tokens": api_tokens_of_project(project=project),
        # A project's scopes only: a `projects` token (which creates projects) is made by an
        # operator on the command line, never by a lead (the service refuses it with a project).
        "scopes": [(scope.value, scope.label) for scope in PROJECT_TOKEN_SCOPES],
        "created": created,
        "error": error,
    }
    response = render(request, "annotation/tokens/tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, slug: str, token_id: int) -> HttpResponse:
    project = project_for_lead(request, slug)
    token = get_object_or_404(ApiToken, pk=token_id, project=project)
    api_token_revoke(token=token, actor=request.user)
    messages.success(request, _("Token %(prefix)s… is revoked.") % {"prefix": token.prefix})
    return redirect("annotation:tokens", slug=project.slug)


@login_required
def report_triage(request: HttpRequest, slug: str) -> HttpResponse:
    """User reports, newest first, filterable by language and status."""
    project = project_for_lead(request, slug)
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

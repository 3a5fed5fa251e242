"""The lead's progress dashboard (quality per language across model versions or periods,
with what to do next), the model registry, the items that got worse, and the signed,
read-only printable report a stakeholder opens without an account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.access import project_for_lead
from annotation.languages import language_tag_normalize
from annotation.model_versions import model_version_update, model_versions_for
from annotation.models import ModelVersion
from annotation.progress import (
    SHARE_MAX_DAYS,
    items_adjudication_send,
    progress_args_clean,
    progress_csv,
    progress_report,
    regressed_items,
    share_link_create,
    share_link_open,
)
from annotation.progress.charts import progress_chart
from annotation.views.lead import _lead_nav

# xgettext:no-python-format
QUALITY_TITLE = gettext_lazy("Quality per language, with 95% confidence intervals")
GAP_TITLE = gettext_lazy("Gap to the best language")
SHARED_CACHE_SECONDS = 300
BREAKDOWN_TITLES = (
    ("dialect", gettext_lazy("Evaluator dialect or region")),
    ("domain", gettext_lazy("Domain")),
    ("task", gettext_lazy("Task")),
    ("code_switched", gettext_lazy("Code-switching")),
)
CODE_SWITCH_LABELS = {
    "code_switched": gettext_lazy("code-switched"),
    "single_language": gettext_lazy("one language"),
    "unchecked": gettext_lazy("not checked"),
}


def _action_text(action: dict[str, Any]) -> str:
    """An action in the interface language (the report carries English for pipelines)."""
    if action["code"] == "calibrate":
        return _("Agreement is below the threshold: open a calibration round.")
    if action["code"] == "regression":
        return _("Quality fell significantly: review the items that got worse.")
    if action["code"] == "active_learning":
        return _(
            "The intervals are too wide to tell: run an active-learning round with the parity strategy "
            "(about %(n)s more items)."
        ) % {"n": action["budget"]}
    if action["code"] == "adjudicate":
        return _("%(n)s items wait for adjudication.") % {"n": action["count"]}
    return action["message"]


def _context(report: dict[str, Any]) -> dict[str, Any]:
    lo, hi = report["quality"]["range"]
    digits = 2
    for row in report["languages"]:
        row["action_texts"] = [(a, _action_text(a)) for a in row["actions"]]
        row["latest"] = row["series"][-1] if row["series"] else None
        breakdowns = row["breakdowns"]
        for group in breakdowns["code_switched"]:
            group["label"] = str(CODE_SWITCH_LABELS.get(group["key"], group["key"]))
        for name in ("dialect", "domain", "task"):
            for group in breakdowns[name]:
                group["label"] = group["key"]
        row["breakdown_list"] = [(title, breakdowns[name]) for name, title in BREAKDOWN_TITLES]
    since_round = report.get("since_round")
    if since_round:
        for row in since_round["languages"]:
            row["states"] = (row["before"], row["after"])
    return {
        "report": report,
        "since_round_at": datetime.fromisoformat(since_round["at"]) if since_round else None,
        "undated": report["by"] == "model"
        and any(not k.get("released_on") for k in report["keys"]),
        "digits": digits,
        "quality_chart": progress_chart(report=report, title=str(QUALITY_TITLE), lo=lo, hi=hi),
        "gap_chart": progress_chart(report=report, title=str(GAP_TITLE), field_name="gap", lo=0.0),
    }


def _args(request: HttpRequest) -> dict[str, Any]:
    return progress_args_clean(
        by=request.GET.get("by") or "model", period=request.GET.get("period") or "week"
    )


@login_required
@require_GET
def progress_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    try:
        args = _args(request)
    except ValidationError:
        return HttpResponse(_("Choose by model or by period, and a week or a month."), status=400)
    report = progress_report(project=project, by=args["by"], period=args["period"])
    if request.GET.get("format") == "csv":
        response = HttpResponse(progress_csv(report), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{project.slug}-progress-{args["by"]}.csv"'
        )
        return response
    return render(
        request,
        "annotation/lead/progress.html",
        {
            **_lead_nav(project, request.user),
            **_context(report),
            "max_days": SHARE_MAX_DAYS,
            "share_url": request.session.pop(f"share:{project.pk}", None),
        },
    )


@login_required
@require_POST
def progress_share(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    by = request.POST.get("by", "model")
    try:
        days = int(request.POST.get("days", "7"))
        token = share_link_create(project=project, by=by, days=days, actor=request.user)
    except (ValueError, ValidationError):
        messages.error(
            request, _("A share link lasts from 1 to %(n)s days.") % {"n": SHARE_MAX_DAYS}
        )
        return HttpResponseRedirect(
            reverse("annotation:progress", args=[project.slug]) + f"?by={by}"
        )
    # Shown once on the next page (a redirect keeps a reload from minting another).
    request.session[f"share:{project.pk}"] = request.build_absolute_uri(
        reverse("annotation:progress_shared", args=[token])
    )
    return HttpResponseRedirect(reverse("annotation:progress", args=[project.slug]) + f"?by={by}")


@require_GET
def progress_shared(request: HttpRequest, token: str) -> HttpResponse:
    """The printable report behind a share link: no account, read-only, until it expires."""
    try:
        project, by = share_link_open(token=token)
    except signing.SignatureExpired:
        return render(request, "annotation/progress_print.html", {"expired": True}, status=410)
    except signing.BadSignature:
        raise Http404 from None
    # Anyone holding the link may reload it: one computation per project and view every
    # few minutes, shared by all its readers.
    key = f"progress:shared:{project.pk}:{by}"
    report = cache.get(key)
    if report is None:
        report = progress_report(project=project, by=by)
        cache.set(key, report, SHARED_CACHE_SECONDS)
    response = render(
        request, "annotation/progress_print.html", {"project": project, **_context(report)}
    )
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def progress_regressed(request: HttpRequest, slug: str, tag: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    try:
        language = language_tag_normalize(tag)
    except ValidationError:
        raise Http404 from None
    lang = get_object_or_404(project.languages, tag=language)
    params = request.GET if request.method == "GET" else request.POST
    by, key, previous = params.get("by", "model"), params.get("key", ""), params.get("from", "")
    try:
        progress_args_clean(by=by)
    except ValidationError:
        raise Http404 from None
    if request.method == "POST":
        ids = [int(x) for x in request.POST.getlist("items") if x.isdigit()]
        if not ids:
            messages.error(request, _("Choose the items to send."))
        else:
            moved = items_adjudication_send(project=project, item_ids=ids, actor=request.user)
            messages.success(request, _("%(n)s items sent to adjudication.") % {"n": moved})
        return HttpResponseRedirect(request.get_full_path())
    rows = regressed_items(project=project, language=language, by=by, key=key, previous=previous)
    return render(
        request,
        "annotation/lead/progress_regressed.html",
        {
            **_lead_nav(project, request.user),
            "language": lang,
            "rows": rows,
            "key": key,
            "previous": previous,
            "by": by,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def model_versions_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    status, error, failed_pk = 200, "", None
    if request.method == "POST":
        model_version = get_object_or_404(
            ModelVersion, project=project, pk=request.POST.get("id", "0") or 0
        )
        try:
            model_version_update(
                model_version=model_version,
                version=request.POST.get("version", ""),
                released_on=request.POST.get("released_on", ""),
                notes=request.POST.get("notes", ""),
                actor=request.user,
            )
        except ValidationError as exc:
            status, error, failed_pk = 400, " ".join(exc.messages), model_version.pk
        else:
            messages.success(request, _("Saved %(name)s.") % {"name": model_version.name})
            return HttpResponseRedirect(reverse("annotation:model_versions", args=[project.slug]))
    return render(
        request,
        "annotation/lead/model_versions.html",
        {
            **_lead_nav(project, request.user),
            "versions": model_versions_for(project=project),
            "error": error,
            "failed_pk": failed_pk,
        },
        status=status,
    )

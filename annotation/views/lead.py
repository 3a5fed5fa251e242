"""Lead pages: the project dashboard, the parity report, agreement with its charts, and
the adjudication queue.

Parity and agreement are for the project's leads (and superusers) only; adjudication is
for leads and for senior evaluators of the item's language. Everyone else gets 403 — a
production evaluator never sees other evaluators' judgments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from annotation.access import project_for_lead
from annotation.adjudication import (
    adjudication_decide,
    adjudication_item_get,
    adjudication_judgments,
    adjudication_queue,
    adjudicator_language_ids,
)
from annotation.agreement import LEVELS, agreement_report, item_labels, parity_report
from annotation.browse import FLAGS, item_filter_parse, item_history, items_browse
from annotation.charts import CiRow, ci_chart, heat_map
from annotation.forms import judgment_fields_context, judgment_value_from_form
from annotation.languages import prompt_language
from annotation.models import Item, ItemStatus, Project, QualificationStatus, Selection
from annotation.overview import JUDGMENT_KINDS, project_overview
from annotation.projects import project_is_lead
from annotation.types import AuthenticatedRequest, RequestUser, User

# Chart titles. "95% c" is no format directive: the comments tell xgettext so, or the
# catalogue would demand one in every translation.
# xgettext:no-python-format
QUALITY_CI_TITLE = gettext_lazy("Model quality per language, with 95% confidence intervals")
# xgettext:no-python-format
ALPHA_CI_TITLE = gettext_lazy("Krippendorff's alpha per language, with 95% confidence intervals")


def _get_project_for_adjudicator(request: AuthenticatedRequest, slug: str) -> Project:
    project = get_object_or_404(Project, slug=slug)
    if not adjudicator_language_ids(project=project, user=request.user):
        raise PermissionDenied(_("Only the project's leads and senior evaluators adjudicate."))
    return project


def _lead_nav(project: Project, user: RequestUser) -> dict[str, Any]:
    return {"project": project, "is_lead": project_is_lead(project=project, user=user)}


# ---------------------------------------------------------------------------------------
# Dashboard
# ---------------------------------------------------------------------------------------


@login_required
@require_GET
def dashboard_page(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """The project at a glance, and a link to every lead page of every app."""
    project = project_for_lead(request, slug)
    return render(
        request,
        "annotation/lead/dashboard.html",
        {
            **_lead_nav(project, request.user),
            "overview": project_overview(project=project),
            "item_statuses": ItemStatus.choices,
            "judgment_kinds": JUDGMENT_KINDS,
            "qualification_statuses": QualificationStatus.choices,
        },
    )


# ---------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------


def _quality_bounds(report: Mapping[str, Any]) -> tuple[float, float, int]:
    quality = report["quality"]
    if quality["measure"] == "mean_rating":
        lo, hi = quality["scale"]
        return float(lo), float(hi), 1 if hi - lo > 10 else 2
    return 0.0, 1.0, 2


def _flag_text(
    flag: Mapping[str, Any], *, row: Mapping[str, Any], report: Mapping[str, Any]
) -> str:
    """A parity flag in the interface language. The report (and the API) carries each
    flag's code with an English message for pipelines; the page words it from the code."""
    if flag["code"] == "no_agreement":
        return _("No item has two judgments yet, so agreement is unknown.")
    if flag["code"] == "low_agreement":
        return _("Alpha %(alpha).3f is below the project threshold %(threshold).3f.") % {
            "alpha": row["alpha"],
            "threshold": report["agreement_threshold"],
        }
    if flag["code"] == "indistinct":
        return _(
            "Its quality interval overlaps the best language's (%(best)s): too wide to tell the two "
            "apart yet."
        ) % {"best": report["best_language"]}
    return flag["message"]


@login_required
@require_GET
def parity_page(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    report = parity_report(project=project)
    rows: list[dict[str, Any]] = [
        {
            **row,
            "flag_texts": [
                (flag["code"], _flag_text(flag, row=row, report=report)) for flag in row["flags"]
            ],
        }
        for row in report["languages"]
    ]
    lo, hi, digits = _quality_bounds(report)
    quality_chart = ci_chart(
        [
            CiRow(
                label=f"{r['name']} ({r['language']})",
                value=r["quality"]["value"],
                lo=r["quality"]["ci"][0],
                hi=r["quality"]["ci"][1],
                flagged=any(f["code"] == "indistinct" for f in r["flags"]),
            )
            for r in rows
        ],
        lo=lo,
        hi=hi,
        digits=digits,
        title=str(QUALITY_CI_TITLE),
    )
    alpha_chart = ci_chart(
        [
            CiRow(
                label=f"{r['name']} ({r['language']})",
                value=r["alpha"],
                lo=r["ci"][0],
                hi=r["ci"][1],
                flagged=any(f["code"] == "low_agreement" for f in r["flags"]),
            )
            for r in rows
        ],
        lo=0.0,
        hi=1.0,
        threshold=project.agreement_threshold,
        threshold_label=_("threshold"),
        title=str(ALPHA_CI_TITLE),
    )
    return render(
        request,
        "annotation/lead/parity.html",
        {
            **_lead_nav(project, request.user),
            "report": report,
            "rows": rows,
            "quality_chart": quality_chart,
            "alpha_chart": alpha_chart,
            "digits": digits,
        },
    )


# ---------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------


@login_required
@require_GET
def agreement_page(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    language = request.GET.get("language", "").strip() or None
    level = request.GET.get("level", "").strip() or None
    context: dict[str, Any] = {
        **_lead_nav(project, request.user),
        "levels": LEVELS,
        "languages": list(project.languages.order_by("tag")),
        "selected_language": language or "",
        "selected_level": level or "",
    }
    try:
        by_language = agreement_report(
            project=project, language=language, level=level, by="language"
        )
        by_evaluator = agreement_report(
            project=project, language=language, level=level, by="evaluator"
        )
    except ValidationError as exc:
        context["error"] = " ".join(exc.messages)
        return render(request, "annotation/lead/agreement.html", context, status=400)
    names = dict(project.languages.values_list("tag", "name"))
    language_chart = ci_chart(
        [
            CiRow(
                label=f"{names.get(g['key'], g['key'])} ({g['key']})",
                value=g["alpha"],
                lo=g["ci"][0],
                hi=g["ci"][1],
                flagged=g["alpha"] is not None and g["alpha"] < project.agreement_threshold,
            )
            for g in by_language["groups"]
        ],
        lo=0.0,
        hi=1.0,
        threshold=project.agreement_threshold,
        threshold_label=_("threshold"),
        title=str(ALPHA_CI_TITLE),
    )
    kappa = by_evaluator["kappa"]
    heat = heat_map(
        labels=[r["label"] for r in kappa["raters"]],
        values=kappa["kappa"],
        shared=kappa["shared"],
        title=_("Cohen's kappa between evaluators"),
    )
    reliability = sorted(
        by_evaluator["groups"], key=lambda g: (g["alpha"] is None, g["alpha"] or 0)
    )
    context.update(
        {
            "report": by_language,
            "evaluators": reliability,
            "kappa": kappa,
            "language_chart": language_chart,
            "heat": heat,
            "language_names": names,
        }
    )
    return render(request, "annotation/lead/agreement.html", context)


# ---------------------------------------------------------------------------------------
# Adjudication
# ---------------------------------------------------------------------------------------


@login_required
@require_GET
def adjudication_queue_page(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = _get_project_for_adjudicator(request, slug)
    items = list(adjudication_queue(project=project, user=request.user)[:200])
    labels = item_labels(project=project, item_ids=[i.pk for i in items]) if items else {}
    return render(
        request,
        "annotation/lead/adjudication_queue.html",
        {
            **_lead_nav(project, request.user),
            "rows": [(item, labels.get(item.pk)) for item in items],
        },
    )


def _item_context(
    project: Project, item: Item, value: dict[str, Any] | None, user: User
) -> dict[str, Any]:
    prompt_lang, prompt_dir = prompt_language(item)
    judgments = list(adjudication_judgments(item=item))
    return {
        **_lead_nav(project, user),
        "item": item,
        "prompt_lang": prompt_lang,
        "prompt_dir": prompt_dir,
        "judgments": judgments,
        **judgment_fields_context(project=project, value=value),
        "form_id": f"adjudicate-{item.pk}",
        "final": getattr(item, "final_label", None) if item.status == "final" else None,
    }


@login_required
@require_http_methods(["GET", "POST"])
def adjudication_item_page(request: AuthenticatedRequest, slug: str, item_id: int) -> HttpResponse:
    project = _get_project_for_adjudicator(request, slug)
    item = adjudication_item_get(project=project, user=request.user, item_id=item_id)
    if request.method == "GET":
        return render(
            request,
            "annotation/lead/adjudication_item.html",
            _item_context(project, item, None, request.user),
        )
    reason = request.POST.get("reason", "")
    try:
        value = judgment_value_from_form(project=project, data=request.POST)
        adjudication_decide(item=item, user=request.user, value=value, reason=reason)
    except ValidationError as exc:
        score = request.POST.get("score", "").strip()
        ctx = _item_context(
            project,
            item,
            {
                "score": int(score) if score.lstrip("-").isdigit() else None,
                "choice": request.POST.get("choice", ""),
                "labels": request.POST.getlist("labels"),
                "issues": request.POST.getlist("issues"),
                "comment": request.POST.get("comment", ""),
            },
            request.user,
        )
        ctx.update(error=" ".join(exc.messages), reason=reason)
        return render(request, "annotation/lead/adjudication_item.html", ctx, status=400)
    messages.success(request, _("Final label recorded for item %(id)s.") % {"id": item.external_id})
    return HttpResponseRedirect(reverse("annotation:adjudication_queue", args=[project.slug]))


# ---------------------------------------------------------------------------------------
# Item browser
# ---------------------------------------------------------------------------------------

FLAG_LABELS = {
    "language": gettext_lazy("language check flagged"),
    "gold": gettext_lazy("Gold items"),
    "report": gettext_lazy("User reports"),
}


@login_required
@require_GET
def items_page(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """Every item of the project: filter by language, status, selection and flag, search
    the texts, ?page_size= rows a page."""
    project = project_for_lead(request, slug)
    error, status = "", 200
    try:
        where = item_filter_parse(project=project, data=request.GET)
    except ValidationError as exc:
        error, status = " ".join(exc.messages), 400
        where = item_filter_parse(project=project, data={})
        page = None
    else:
        page = Paginator(items_browse(project=project, where=where), where.page_size).get_page(
            request.GET.get("page")
        )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "annotation/lead/items.html",
        {
            **_lead_nav(project, request.user),
            "page": page,
            "where": where,
            "error": error,
            "query": query.urlencode(),
            "languages": project.languages.order_by("tag"),
            "statuses": ItemStatus.choices,
            "selections": Selection.choices,
            "flags": [(flag, FLAG_LABELS[flag]) for flag in FLAGS],
        },
        status=status,
    )


@login_required
@require_GET
def item_page(request: AuthenticatedRequest, slug: str, item_id: int) -> HttpResponse:
    """One item in full, with its judgments (evaluators by pseudonym) and its history."""
    project = project_for_lead(request, slug)
    item = get_object_or_404(
        Item.objects.select_related("language", "project"), pk=item_id, project=project
    )
    prompt_lang, prompt_dir = prompt_language(item)
    return render(
        request,
        "annotation/lead/item.html",
        {
            **_lead_nav(project, request.user),
            "item": item,
            "prompt_lang": prompt_lang,
            "prompt_dir": prompt_dir,
            "history": item_history(item=item),
        },
    )

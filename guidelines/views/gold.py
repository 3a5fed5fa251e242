"""Leads: gold items (create, promote an item to gold)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from annotation.access import project_for_lead
from annotation.forms import judgment_fields_context, judgment_value_from_form
from annotation.gold import gold_create, gold_promote
from annotation.models import Item, Project
from annotation.types import AuthenticatedRequest
from guidelines import selectors
from guidelines.forms import GoldCreateForm, tolerance_from_post
from guidelines.views.common import error_text, form_errors, int_or_none, lead_render


@login_required
@require_http_methods(["GET", "POST"])
def lead_gold(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    error, status = "", 200
    form = GoldCreateForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                gold = gold_create(
                    project=project,
                    external_id=data["external_id"],
                    language=data["language"],
                    prompt=data["prompt"],
                    prompt_language=data["prompt_language"],
                    response=data["response"],
                    response_a=data["response_a"],
                    response_b=data["response_b"],
                    value=judgment_value_from_form(project=project, data=request.POST),
                    tolerance=tolerance_from_post(project=project, data=request.POST),
                    explanation=data["explanation"],
                    actor=request.user,
                )
            except ValidationError as exc:
                error, status = error_text(exc), 400
            else:
                messages.success(
                    request, _("Created gold item %(id)s.") % {"id": gold.item.external_id}
                )
                return HttpResponseRedirect(reverse("guidelines:lead_gold", args=[project.slug]))
        else:
            error, status = _("Check the form: %(errors)s") % {"errors": form_errors(form)}, 400
    return _render_gold(request, project, form=form, error=error, status=status)


def _render_gold(
    request: AuthenticatedRequest,
    project: Project,
    *,
    form: Any = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    items = [
        (
            item,
            selectors.value_label(project=project, value=item.gold.value),
            selectors.tolerance_label(project=project, tolerance=item.gold.tolerance),
        )
        for item in selectors.gold_items(project=project)
    ]
    promotable = [
        (item, selectors.value_label(project=project, value=item.final_label.value))
        for item in selectors.promotable_items(project=project)
    ]
    return lead_render(
        request,
        "guidelines/lead/gold.html",
        project,
        {
            "form": form or GoldCreateForm(),
            "items": items,
            "promotable": promotable,
            "error": error,
            "fields": judgment_fields_context(project=project, value=None),
            "section": "gold",
        },
        status=status,
    )


@login_required
@require_POST
def lead_gold_promote(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    item_id = int_or_none(request.POST.get("item"))
    item = Item.objects.filter(project=project, pk=item_id).first() if item_id is not None else None
    if item is None:
        return _render_gold(
            request, project, error=_("Pick an adjudicated item of this project."), status=400
        )
    try:
        gold_promote(
            item=item,
            explanation=request.POST.get("explanation", ""),
            tolerance=tolerance_from_post(project=project, data=request.POST),
            actor=request.user,
        )
    except ValidationError as exc:
        return _render_gold(request, project, error=error_text(exc), status=400)
    messages.success(request, _("Promoted %(id)s to gold.") % {"id": item.external_id})
    return HttpResponseRedirect(reverse("guidelines:lead_gold", args=[project.slug]))

"""Leads: calibration rounds and their reports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from annotation.access import project_for_lead
from annotation.types import AuthenticatedRequest
from guidelines import selectors, services
from guidelines.forms import RoundForm
from guidelines.models import CalibrationAttempt, CalibrationRound
from guidelines.views.common import error_text, form_errors, lead_render


@login_required
@require_http_methods(["GET", "POST"])
def lead_rounds(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    error, status = "", 200
    # The progress report links here with ?language= for a language whose agreement lags.
    form = RoundForm(request.POST or None, initial={"language": request.GET.get("language", "")})
    chosen: list[str] = request.POST.getlist("gold_items") if request.method == "POST" else []
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                calibration_round = services.calibration_round_create(
                    project=project,
                    language=data["language"],
                    pass_mark=data["pass_mark"],
                    cooldown_seconds=data["cooldown_seconds"],
                    gold_item_ids=chosen,
                    name=data["name"],
                    actor=request.user,
                )
                if request.POST.get("open_now"):
                    services.calibration_round_open(
                        calibration_round=calibration_round, actor=request.user
                    )
            except ValidationError as exc:
                error, status = error_text(exc), 400
            else:
                messages.success(request, _("Created the calibration round."))
                return HttpResponseRedirect(
                    reverse("guidelines:lead_round", args=[project.slug, calibration_round.pk])
                )
        else:
            error, status = _("Check the form: %(errors)s") % {"errors": form_errors(form)}, 400
    return lead_render(
        request,
        "guidelines/lead/rounds.html",
        project,
        {
            "form": form,
            "rounds": selectors.rounds_for_project(project=project),
            "gold": selectors.gold_items(project=project),
            "chosen": {str(c) for c in chosen},
            "languages": project.languages.order_by("tag"),
            "error": error,
            "section": "calibration",
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def lead_round(request: AuthenticatedRequest, slug: str, round_id: int) -> HttpResponse:
    project = project_for_lead(request, slug)
    calibration_round = get_object_or_404(
        CalibrationRound.objects.select_related("language", "project"), pk=round_id, project=project
    )
    error, status = "", 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "open":
                services.calibration_round_open(
                    calibration_round=calibration_round, actor=request.user
                )
                messages.success(request, _("The round is open."))
            elif action == "close":
                services.calibration_round_close(
                    calibration_round=calibration_round, actor=request.user
                )
                messages.success(request, _("The round is closed."))
            elif action == "items":
                services.calibration_round_items_set(
                    calibration_round=calibration_round,
                    gold_item_ids=request.POST.getlist("gold_items"),
                    actor=request.user,
                )
                messages.success(request, _("Saved the round's gold items."))
            else:
                raise ValidationError(_("Unknown action."))
        except ValidationError as exc:
            error, status = error_text(exc), 400
        else:
            return HttpResponseRedirect(
                reverse("guidelines:lead_round", args=[project.slug, calibration_round.pk])
            )
        calibration_round.refresh_from_db()
    rows, item_stats = selectors.round_report(calibration_round=calibration_round)
    chosen = set(calibration_round.gold_items.values_list("pk", flat=True))
    return lead_render(
        request,
        "guidelines/lead/round.html",
        project,
        {
            "round": calibration_round,
            "rows": rows,
            "item_stats": item_stats,
            "gold": selectors.gold_items(project=project, language=calibration_round.language),
            "chosen": chosen,
            "editable": not CalibrationAttempt.objects.filter(round=calibration_round).exists(),
            "error": error,
            "section": "calibration",
        },
        status=status,
    )

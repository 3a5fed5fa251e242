"""Lead pages: preview a round's allocation, launch it, look at past rounds and model versions.

Launching goes through `tasks.round_launch`: on a worker when a broker is configured (the
page shows the round waiting), inline without one — the documented exception for a
single-machine setup with no worker to hand the work to.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from active_learning.models import ModelVersion, RoundStatus, SelectionRound, Strategy
from active_learning.round_runs import validation_messages
from active_learning.rounds import (
    RoundRequest,
    round_preview,
    round_request_clean,
    round_selected,
    rounds_for_project,
)
from active_learning.tasks import broker_configured, round_launch
from annotation.access import project_for_lead
from annotation.models import Project

SHOWN_PER_LANGUAGE = 20


class RoundForm(forms.Form):
    budget = forms.IntegerField(
        label=gettext_lazy("Budget (items to send to evaluators)"), min_value=1
    )
    strategy = forms.ChoiceField(
        label=gettext_lazy("Strategy"), choices=Strategy.choices, initial=Strategy.PARITY
    )
    seed = forms.IntegerField(label=gettext_lazy("Seed"), min_value=0, initial=0)
    features = forms.ChoiceField(
        label=gettext_lazy("Features"),
        choices=[
            ("hashing", gettext_lazy("character n-grams (no model)")),
            ("encoder", gettext_lazy("local encoder")),
        ],
        initial="hashing",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Offer only what can work: the local encoder needs PARITY_ENCODER_PATH.
        if not settings.PARITY_ENCODER_PATH:
            field = self.fields["features"]
            field.choices = [c for c in field.choices if c[0] != "encoder"]


def _request_from(form: RoundForm, project: Project) -> RoundRequest | None:
    """The checked round request, or None with the reasons added to the form."""
    if not form.is_valid():
        return None
    data = form.cleaned_data
    try:
        return round_request_clean(
            project=project,
            budget=data["budget"],
            strategy=data["strategy"],
            seed=data["seed"],
            parameters={"features": data["features"]},
        )
    except ValidationError as exc:
        for name, message in validation_messages(exc):
            form.add_error(name if name in form.fields else None, message)
        return None


def _page(request: HttpRequest, project: Project, form: RoundForm, **extra: Any) -> dict[str, Any]:
    return {
        "project": project,
        "form": form,
        "rounds": rounds_for_project(project=project)[:50],
        "model_versions": ModelVersion.objects.filter(project=project).defer("blob")[:10],
        "background": broker_configured(),
        **extra,
    }


def _allocation_rows(
    allocation: Any, languages: dict[str, Any]
) -> tuple[list[dict[str, Any]], int]:
    rows = [a if isinstance(a, dict) else a.as_dict() for a in allocation]
    widest = max([r["total"] for r in rows] + [1])
    for row in rows:
        row["language"] = languages.get(row["tag"])
        row["bar"] = round(100 * row["total"] / widest, 1)
    return rows, sum(r["total"] for r in rows)


@login_required
def rounds_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    # The progress report links here with a suggested budget and strategy: prefill them.
    initial = {name: request.GET[name] for name in ("budget", "strategy") if request.GET.get(name)}
    return render(
        request, "active_learning/rounds.html", _page(request, project, RoundForm(initial=initial))
    )


@login_required
@require_POST
@vary_on_headers("HX-Request")
def round_preview_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    form = RoundForm(request.POST)
    round_request = _request_from(form, project)
    context = _page(request, project, form)
    status = 400
    if round_request is not None:
        languages = {lang.tag: lang for lang in project.languages.all()}
        rows, total = _allocation_rows(round_preview(request=round_request), languages)
        context.update(preview=rows, preview_total=total, round_request=round_request)
        status = 200
    template = (
        "active_learning/rounds.html#preview" if request.htmx else "active_learning/rounds.html"
    )
    return render(request, template, context, status=status)


@login_required
@require_POST
def round_run_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    form = RoundForm(request.POST)
    round_request = _request_from(form, project)
    if round_request is None:
        return render(
            request, "active_learning/rounds.html", _page(request, project, form), status=400
        )
    try:
        selection_round = round_launch(request=round_request, actor=request.user)
    except ValidationError as exc:
        for name, message in validation_messages(exc):
            form.add_error(name if name in form.fields else None, message)
        return render(
            request, "active_learning/rounds.html", _page(request, project, form), status=400
        )
    if selection_round.status == RoundStatus.DONE:
        messages.success(
            request,
            _("Round %(id)s queued %(n)s items.")
            % {"id": selection_round.pk, "n": selection_round.summary.get("selected")},
        )
    else:
        messages.info(
            request,
            _("Round %(id)s waits for a worker; this page shows the result when it is done.")
            % {"id": selection_round.pk},
        )
    return redirect("active_learning:round", slug=project.slug, round_id=selection_round.pk)


@login_required
def round_detail(request: HttpRequest, slug: str, round_id: int) -> HttpResponse:
    project = project_for_lead(request, slug)
    selection_round = get_object_or_404(
        SelectionRound.objects.select_related("model_version").defer("model_version__blob"),
        project=project,
        pk=round_id,
    )
    languages = {lang.tag: lang for lang in project.languages.all()}
    rows, total = _allocation_rows(selection_round.allocation.values(), languages)
    groups: dict[str, list[Any]] = {}
    counts: dict[str, int] = {}
    for picked in round_selected(selection_round=selection_round):
        tag = picked.language.tag
        counts[tag] = counts.get(tag, 0) + 1
        if len(groups.setdefault(tag, [])) < SHOWN_PER_LANGUAGE:
            groups[tag].append(picked)
    return render(
        request,
        "active_learning/round.html",
        {
            "project": project,
            "round": selection_round,
            "allocation": rows,
            "allocation_total": total,
            "groups": [
                (languages.get(tag), items, counts[tag]) for tag, items in sorted(groups.items())
            ],
            "shown_per_language": SHOWN_PER_LANGUAGE,
        },
    )

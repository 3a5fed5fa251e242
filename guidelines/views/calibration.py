"""Evaluators: calibration rounds, with feedback after each answer."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from annotation.forms import judgment_fields_context, judgment_value_from_form
from annotation.languages import language_tag_normalize, prompt_language
from annotation.models import Language, Project
from annotation.types import AuthenticatedRequest
from guidelines import selectors, services
from guidelines.views.common import calibration_url, error_text


def _calibration_context(
    request: AuthenticatedRequest, slug: str, tag: str, *, with_step: bool = True
) -> tuple[Project, Language, selectors.CalibrationState]:
    project = get_object_or_404(Project, slug=slug)
    try:
        normal = language_tag_normalize(tag)
    except ValidationError:
        raise Http404(_("Unknown language.")) from None
    language = project.languages.filter(tag=normal).first()
    if language is None:
        raise Http404(_("%(tag)s is not a language of this project.") % {"tag": normal})
    state = selectors.calibration_state(evaluator=request.user, project=project, language=language)
    if state.qualification is None:
        raise PermissionDenied(
            _("You are not invited to work on %(project)s in %(language)s. Ask the project's lead.")
            % {"project": project.name, "language": language.name}
        )
    if (
        with_step
        and state.attempt is not None
        and state.may_calibrate
        and not state.needs_acknowledgement
    ):
        state.step = services.calibration_step_next(attempt=state.attempt)
    return project, language, state


def _render_calibration(
    request: AuthenticatedRequest,
    project: Project,
    language: Language,
    state: selectors.CalibrationState,
    *,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    ctx: dict[str, Any] = {
        "project": project,
        "language": language,
        "state": state,
        "error": error,
        "work_url": reverse("annotation:work", args=[project.slug])
        + "?"
        + urlencode({"language": language.tag}),
    }
    step = state.step
    if step is not None:
        item = step.assignment.item
        ctx.update(judgment_fields_context(project=project, value=None))
        ctx["item"] = item
        ctx["prompt_lang"], ctx["prompt_dir"] = prompt_language(item)
    return render(request, "guidelines/calibration.html", ctx, status=status)


@login_required
@require_GET
def calibration(request: AuthenticatedRequest, slug: str, tag: str) -> HttpResponse:
    """The evaluator's calibration round for a language: intro, the next item, or the result."""
    project, language, state = _calibration_context(request, slug, tag)
    if state.needs_acknowledgement and state.may_calibrate:
        url = reverse("guidelines:guideline", args=[project.slug])
        return HttpResponseRedirect(
            f"{url}?{urlencode({'language': language.tag, 'next': request.get_full_path()})}"
        )
    return _render_calibration(request, project, language, state)


@login_required
@require_POST
def calibration_start(request: AuthenticatedRequest, slug: str, tag: str) -> HttpResponse:
    project, language, state = _calibration_context(request, slug, tag, with_step=False)
    if state.round is None:
        return _render_calibration(
            request,
            project,
            language,
            state,
            status=400,
            error=_("No calibration round is open for this language yet."),
        )
    try:
        services.calibration_attempt_start(calibration_round=state.round, evaluator=request.user)
    except (ValidationError, PermissionDenied) as exc:
        return _render_calibration(
            request, project, language, state, error=error_text(exc), status=400
        )
    return HttpResponseRedirect(calibration_url(project, language))


@login_required
@require_POST
def calibration_answer(
    request: AuthenticatedRequest, slug: str, tag: str, assignment_id: int
) -> HttpResponse:
    project, language, state = _calibration_context(request, slug, tag)
    attempt = state.attempt
    step = state.step
    feedback_url = reverse(
        "guidelines:calibration_feedback", args=[project.slug, language.tag, assignment_id]
    )
    if attempt is None or step is None or step.assignment.pk != assignment_id:
        # A second click on an item already answered: show its feedback rather than an error.
        if selectors.calibration_answered(evaluator=request.user, assignment_id=assignment_id):
            return HttpResponseRedirect(feedback_url)
        return _render_calibration(
            request,
            project,
            language,
            state,
            status=400,
            error=_("This item is not the next one of your calibration attempt."),
        )
    try:
        value = judgment_value_from_form(project=project, data=request.POST)
        services.calibration_answer(
            attempt=attempt, assignment=step.assignment, evaluator=request.user, value=value
        )
    except (ValidationError, PermissionDenied) as exc:
        return _render_calibration(
            request, project, language, state, error=error_text(exc), status=400
        )
    return HttpResponseRedirect(feedback_url)


@login_required
@require_GET
def calibration_feedback(
    request: AuthenticatedRequest, slug: str, tag: str, assignment_id: int
) -> HttpResponse:
    """Their answer, the gold answer and the explanation — only once they answered."""
    project, language, _state = _calibration_context(request, slug, tag, with_step=False)
    try:
        feedback = selectors.calibration_feedback(
            evaluator=request.user, assignment_id=assignment_id
        )
    except selectors.NotAnswered:
        return HttpResponseRedirect(calibration_url(project, language))
    if feedback.item.project_id != project.pk or feedback.item.language_id != language.pk:
        raise Http404(_("This calibration item belongs to another round."))
    item = feedback.item
    prompt_lang, prompt_dir = prompt_language(item)
    return render(
        request,
        "guidelines/calibration_feedback.html",
        {
            "project": project,
            "language": language,
            "feedback": feedback,
            "item": item,
            "prompt_lang": prompt_lang,
            "prompt_dir": prompt_dir,
        },
    )

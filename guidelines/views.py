"""Pages of the guidelines app.

Evaluators: read and acknowledge the guideline, the guideline panel beside the item card
(an htmx fragment), calibration rounds with feedback after each answer.
Leads: guideline editor (preview, publish, diff, translations, worked examples), gold
items, calibration rounds and their reports, honeypot suspensions, too-fast judgments.

Views stay thin: parse, fetch through one access helper, call a service, render. A
refused input re-renders the page with the service's message and HTTP 400.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.access import project_for_lead
from annotation.forms import judgment_fields_context, judgment_value_from_form
from annotation.gold import gold_create, gold_promote
from annotation.languages import language_display_name, language_tag_normalize, prompt_language
from annotation.models import Item, Language, Project, Qualification, QualificationStatus
from annotation.projects import project_is_lead
from annotation.qualification import qualification_reinstate, qualification_send_to_calibration
from annotation.templatetags.evaluator_tags import language_name
from annotation.templatetags.lead_tags import pseudonym
from annotation.types import AuthenticatedRequest
from guidelines import selectors, services
from guidelines.forms import (
    ExampleForm,
    GoldCreateForm,
    PublishForm,
    RoundForm,
    TranslationForm,
    tolerance_from_post,
)
from guidelines.markdown import markdown_render
from guidelines.models import CalibrationAttempt, CalibrationRound, WorkedExample


def _message(exc: ValidationError | PermissionDenied) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def _project_for_member(request: AuthenticatedRequest, slug: str) -> tuple[Project, bool]:
    """The project, for its leads and the evaluators who work on it; (project, is_lead)."""
    project = get_object_or_404(Project, slug=slug)
    if project_is_lead(project=project, user=request.user):
        return project, True
    if not Qualification.objects.filter(project=project, evaluator=request.user).exists():
        raise PermissionDenied(_("You do not work on this project."))
    return project, False


def _language_param(project: Project, tag: str) -> Language | None:
    """A language of the project (or the guideline's source language) by tag; 400 otherwise."""
    if not tag:
        return None
    try:
        normal = language_tag_normalize(tag)
    except ValidationError as exc:
        raise _BadRequest(
            _("Unknown language tag %(tag)r: %(reason)s") % {"tag": tag, "reason": exc.messages[0]}
        ) from None
    language = selectors.project_language_get(project=project, tag=normal)
    if language is None:
        raise _BadRequest(
            _("%(tag)s is not a language of %(project)s.")
            % {"tag": normal, "project": project.name}
        )
    return language


class _BadRequest(Exception):
    pass


def _safe_next(request: AuthenticatedRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def _calibration_url(project: Project, language: Language) -> str:
    return reverse("guidelines:calibration", args=[project.slug, language.tag])


# ---------------------------------------------------------------------------------------
# Evaluator: guideline and panel
# ---------------------------------------------------------------------------------------


@login_required
@require_GET
def guideline_panel(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """The current guideline in the evaluator's language: a fragment beside the item card."""
    project, _is_lead = _project_for_member(request, slug)
    try:
        language = _language_param(project, request.GET.get("language", "").strip())
    except _BadRequest as exc:
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
    project, is_lead = _project_for_member(request, slug)
    qualifications = selectors.evaluator_languages_in(evaluator=request.user, project=project)
    error = ""
    status = 200
    if request.method == "POST":
        try:
            services.guideline_acknowledge(
                project=project,
                evaluator=request.user,
                version=request.POST.get("version", "").strip(),
            )
        except ValidationError as exc:
            error, status = _message(exc), 400
        else:
            messages.success(
                request,
                _("You acknowledged guideline %(version)s.")
                % {"version": project.guideline_version},
            )
            calibrating = [q for q in qualifications if q.status in services.CALIBRATING]
            fallback = (
                _calibration_url(project, calibrating[0].language)
                if calibrating
                else reverse("annotation:queue_home")
            )
            return HttpResponseRedirect(_safe_next(request, fallback))
    try:
        language = _language_param(project, request.GET.get("language", "").strip())
    except _BadRequest as exc:
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
        "next": _safe_next(request, ""),
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


def _reading_languages(project: Project, version: Any) -> list[Language]:
    """The languages this version can be read in: its source and its translations (not
    every language of the project: those would only show the source text again)."""
    if version is None:
        return []
    translated = [t.language for t in selectors.guideline_translations(version=version).values()]
    return [version.guideline.source_language, *sorted(translated, key=lambda lang: lang.tag)]


# ---------------------------------------------------------------------------------------
# Evaluator: calibration
# ---------------------------------------------------------------------------------------


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
            request, project, language, state, error=_message(exc), status=400
        )
    return HttpResponseRedirect(_calibration_url(project, language))


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
            request, project, language, state, error=_message(exc), status=400
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
        return HttpResponseRedirect(_calibration_url(project, language))
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


# ---------------------------------------------------------------------------------------
# Lead: guideline editor
# ---------------------------------------------------------------------------------------


def _lead_render(
    request: AuthenticatedRequest,
    template: str,
    project: Project,
    ctx: dict[str, Any],
    *,
    status: int = 200,
) -> HttpResponse:
    ctx.setdefault("project", project)
    return render(request, template, ctx, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def lead_guideline(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    current = selectors.guideline_current(project=project)
    error, status = "", 200
    if request.method == "POST":
        form = PublishForm(request.POST)
        if (
            form.is_valid()
            and form.cleaned_data["bump"] == "major"
            and current is not None
            and request.POST.get("confirm_major") != "1"
        ):
            # A major version sends every qualified evaluator back to calibration: show the
            # lead whom it blocks, per language, and whether a round can take them back,
            # before anything is published.
            impact = selectors.major_bump_impact(project=project)
            return _render_lead_guideline(request, project, current, form, impact=impact)
        if form.is_valid():
            try:
                version = services.guideline_publish(
                    project=project,
                    body=form.cleaned_data["body"],
                    changelog=form.cleaned_data["changelog"],
                    bump=form.cleaned_data["bump"],
                    source_language=form.cleaned_data["source_language"] or None,
                    actor=request.user,
                )
            except ValidationError as exc:
                error, status = _message(exc), 400
            else:
                messages.success(
                    request, _("Published version %(version)s.") % {"version": version.version}
                )
                if form.cleaned_data["bump"] == "major" and current is not None:
                    _after_major(request, project)
                return HttpResponseRedirect(
                    reverse("guidelines:lead_guideline", args=[project.slug])
                )
        else:
            error, status = _("Check the form: %(errors)s") % {"errors": _form_errors(form)}, 400
    else:
        form = PublishForm(
            initial={
                "body": current.body if current else "",
                "bump": "minor",
                "source_language": current.guideline.source_language.tag if current else "en",
            }
        )
    return _render_lead_guideline(request, project, current, form, error=error, status=status)


def _after_major(request: AuthenticatedRequest, project: Project) -> None:
    """Renew the calibration rounds when the lead asked to, and say which languages still
    have none (their evaluators wait until the lead opens one)."""
    renewed = (
        services.calibration_rounds_renew(project=project, actor=request.user)
        if request.POST.get("renew_rounds") == "1"
        else []
    )
    if renewed:
        messages.success(
            request,
            _("Opened a calibration round for %(languages)s with the earlier gold items.")
            % {"languages": ", ".join(language_name(r.language) for r in renewed)},
        )
    covered = {r.language_id for r in renewed} | {
        r.language_id
        for r in selectors.rounds_for_project(project=project).filter(status="open")
        if services.same_major(r.guideline_version, project.guideline_version)
    }
    waiting = [lang for lang in project.languages.order_by("tag") if lang.pk not in covered]
    if waiting:
        messages.warning(
            request,
            _(
                "No calibration round is open for %(languages)s: its evaluators wait until "
                "you open one."
            )
            % {"languages": ", ".join(map(language_name, waiting))},
        )


def _render_lead_guideline(
    request: AuthenticatedRequest,
    project: Project,
    current: Any,
    form: Any,
    *,
    error: str = "",
    status: int = 200,
    impact: list[Any] | None = None,
) -> HttpResponse:
    translations = selectors.guideline_translations(version=current) if current else {}
    languages = [(lang, translations.get(lang.pk)) for lang in project.languages.order_by("tag")]
    return _lead_render(
        request,
        "guidelines/lead/guideline.html",
        project,
        {
            "form": form,
            "current": current,
            "versions": selectors.guideline_versions(project=project),
            "preview": markdown_render(form["body"].value() or "")
            if (form["body"].value() or "")
            else "",
            "error": error,
            "languages": languages,
            "examples": selectors.worked_examples(project=project),
            "example_form": ExampleForm(),
            "fields": judgment_fields_context(project=project, value=None),
            "section": "guideline",
            "impact": impact,
            "blocked_total": sum(len(row.blocked) for row in impact or []),
            "renewable": any(row.renewable for row in impact or []),
        },
        status=status,
    )


def _form_errors(form: Any) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


@login_required
@require_POST
def lead_guideline_preview(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """The Markdown as evaluators will see it (htmx, as the lead types)."""
    project_for_lead(request, slug)
    return render(
        request,
        "guidelines/lead/preview.html",
        {"preview": markdown_render(request.POST.get("body", ""))},
    )


@login_required
@require_GET
def lead_guideline_diff(request: AuthenticatedRequest, slug: str, version: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    found = selectors.guideline_version_get(project=project, version=version)
    if found is None:
        raise Http404(_("No such guideline version."))
    previous, lines = selectors.version_diff(version=found)
    return _lead_render(
        request,
        "guidelines/lead/diff.html",
        project,
        {
            "version": found,
            "previous": previous,
            "lines": lines,
            "section": "guideline",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def lead_guideline_translation(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    current = selectors.guideline_current(project=project)
    if current is None:
        messages.error(
            request, _("Publish a first version of the guideline before translating it.")
        )
        return HttpResponseRedirect(reverse("guidelines:lead_guideline", args=[project.slug]))
    error, status = "", 200
    if request.method == "POST":
        form = TranslationForm(request.POST)
        if form.is_valid():
            try:
                translation = services.guideline_translation_save(
                    project=project,
                    version=current,
                    language=form.cleaned_data["language"],
                    body=form.cleaned_data["body"],
                    actor=request.user,
                )
            except ValidationError as exc:
                error, status = _message(exc), 400
            else:
                messages.success(
                    request,
                    _("Saved the %(language)s translation of version %(version)s.")
                    % {
                        "language": language_display_name(translation.language.tag),
                        "version": current.version,
                    },
                )
                return HttpResponseRedirect(
                    reverse("guidelines:lead_guideline", args=[project.slug])
                )
        else:
            error, status = _("Check the form: %(errors)s") % {"errors": _form_errors(form)}, 400
    else:
        tag = request.GET.get("language", "")
        existing = None
        language = project.languages.filter(tag=tag).first() if tag else None
        if language is not None:
            existing = selectors.guideline_translations(version=current).get(language.pk)
        form = TranslationForm(
            initial={"language": tag, "body": existing.body if existing else current.body}
        )
    tag = form["language"].value() or ""
    language = project.languages.filter(tag=tag).first()
    return _lead_render(
        request,
        "guidelines/lead/translation.html",
        project,
        {
            "form": form,
            "current": current,
            "error": error,
            "section": "guideline",
            "target_lang": language.tag if language else "",
            "target_dir": language.direction if language else "auto",
        },
        status=status,
    )


@login_required
@require_POST
def lead_example_add(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    try:
        services.worked_example_add(
            project=project,
            external_id=request.POST.get("external_id", ""),
            value=judgment_value_from_form(project=project, data=request.POST),
            explanation=request.POST.get("explanation", ""),
            actor=request.user,
        )
    except ValidationError as exc:
        messages.error(request, _message(exc))
    else:
        messages.success(request, _("Added the worked example."))
    return HttpResponseRedirect(
        reverse("guidelines:lead_guideline", args=[project.slug]) + "#examples"
    )


@login_required
@require_POST
def lead_example_remove(request: AuthenticatedRequest, slug: str, example_id: int) -> HttpResponse:
    project = project_for_lead(request, slug)
    example = get_object_or_404(WorkedExample, pk=example_id, guideline__project=project)
    services.worked_example_remove(example=example, actor=request.user)
    messages.success(request, _("Removed the worked example."))
    return HttpResponseRedirect(
        reverse("guidelines:lead_guideline", args=[project.slug]) + "#examples"
    )


# ---------------------------------------------------------------------------------------
# Lead: gold items
# ---------------------------------------------------------------------------------------


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
                error, status = _message(exc), 400
            else:
                messages.success(
                    request, _("Created gold item %(id)s.") % {"id": gold.item.external_id}
                )
                return HttpResponseRedirect(reverse("guidelines:lead_gold", args=[project.slug]))
        else:
            error, status = _("Check the form: %(errors)s") % {"errors": _form_errors(form)}, 400
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
    return _lead_render(
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
    item_id = _int_or_none(request.POST.get("item"))
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
        return _render_gold(request, project, error=_message(exc), status=400)
    messages.success(request, _("Promoted %(id)s to gold.") % {"id": item.external_id})
    return HttpResponseRedirect(reverse("guidelines:lead_gold", args=[project.slug]))


def _int_or_none(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------
# Lead: calibration rounds
# ---------------------------------------------------------------------------------------


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
                error, status = _message(exc), 400
            else:
                messages.success(request, _("Created the calibration round."))
                return HttpResponseRedirect(
                    reverse("guidelines:lead_round", args=[project.slug, calibration_round.pk])
                )
        else:
            error, status = _("Check the form: %(errors)s") % {"errors": _form_errors(form)}, 400
    return _lead_render(
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
            error, status = _message(exc), 400
        else:
            return HttpResponseRedirect(
                reverse("guidelines:lead_round", args=[project.slug, calibration_round.pk])
            )
        calibration_round.refresh_from_db()
    rows, item_stats = selectors.round_report(calibration_round=calibration_round)
    chosen = set(calibration_round.gold_items.values_list("pk", flat=True))
    return _lead_render(
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


# ---------------------------------------------------------------------------------------
# Lead: honeypot suspensions and too-fast judgments
# ---------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def lead_honeypots(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    error, status = "", 200
    if request.method == "POST":
        qualification = get_object_or_404(
            Qualification.objects.select_related("project", "evaluator", "language"),
            pk=_int_or_none(request.POST.get("qualification")),
            project=project,
        )
        action = request.POST.get("action", "")
        reason = request.POST.get("reason", "")
        try:
            if action == "reinstate":
                qualification_reinstate(
                    qualification=qualification, actor=request.user, reason=reason
                )
                messages.success(
                    request,
                    _("%(user)s may work %(language)s again.")
                    % {
                        "user": pseudonym(qualification.evaluator),
                        "language": language_display_name(qualification.language.tag),
                    },
                )
            elif action == "calibrate":
                qualification_send_to_calibration(
                    qualification=qualification, actor=request.user, reason=reason
                )
                messages.success(
                    request,
                    _("%(user)s goes back to calibration for %(language)s.")
                    % {
                        "user": pseudonym(qualification.evaluator),
                        "language": language_display_name(qualification.language.tag),
                    },
                )
            else:
                raise ValidationError(_("Unknown action."))
        except ValidationError as exc:
            error, status = _message(exc), 400
        else:
            return HttpResponseRedirect(reverse("guidelines:lead_honeypots", args=[project.slug]))
    return _lead_render(
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


@login_required
@require_GET
def lead_too_fast(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    project = project_for_lead(request, slug)
    try:
        language = _language_param(project, request.GET.get("language", "").strip())
    except _BadRequest as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    rows, latest = selectors.too_fast_report(project=project, language=language)
    return _lead_render(
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

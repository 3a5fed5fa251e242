"""Leads: the guideline editor (preview, publish, diff, translations, worked examples)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.access import project_for_lead
from annotation.forms import judgment_fields_context, judgment_value_from_form
from annotation.languages import language_display_name
from annotation.models import Project
from annotation.templatetags.evaluator_tags import language_name
from annotation.types import AuthenticatedRequest
from guidelines import selectors, services
from guidelines.forms import ExampleForm, PublishForm, TranslationForm
from guidelines.markdown import markdown_render
from guidelines.models import WorkedExample
from guidelines.views.common import error_text, form_errors, lead_render


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
                error, status = error_text(exc), 400
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
            error, status = _("Check the form: %(errors)s") % {"errors": form_errors(form)}, 400
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
    return lead_render(
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
    return lead_render(
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
                return _translation_save(request, project, current, form)
            except ValidationError as exc:
                error, status = error_text(exc), 400
        else:
            error, status = _("Check the form: %(errors)s") % {"errors": form_errors(form)}, 400
    else:
        form = _translation_form(project, current, tag=request.GET.get("language", ""))
    tag = form["language"].value() or ""
    language = project.languages.filter(tag=tag).first()
    return lead_render(
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


def _translation_save(
    request: AuthenticatedRequest, project: Project, current: Any, form: TranslationForm
) -> HttpResponse:
    translation = services.guideline_translation_save(
        project=project,
        version=current,
        language=form.cleaned_data["language"],
        body=form.cleaned_data["body"],
        actor=request.user,
    )
    messages.success(
        request,
        _("Saved the %(language)s translation of version %(version)s.")
        % {"language": language_display_name(translation.language.tag), "version": current.version},
    )
    return HttpResponseRedirect(reverse("guidelines:lead_guideline", args=[project.slug]))


def _translation_form(project: Project, current: Any, *, tag: str) -> TranslationForm:
    """The form for `tag`'s translation: its saved text, else the source to start from."""
    existing = None
    language = project.languages.filter(tag=tag).first() if tag else None
    if language is not None:
        existing = selectors.guideline_translations(version=current).get(language.pk)
    return TranslationForm(
        initial={"language": tag, "body": existing.body if existing else current.body}
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
        messages.error(request, error_text(exc))
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

"""Evaluator pages: the queue home, the item card (page and htmx fragment), my judgments.

Views stay thin: they parse the form, fetch through the queue selectors, call the queue
services and render. The work and submit views are on the hot path (many evaluators
submitting at once through gunicorn), so each renders from objects already fetched with
their related rows and never walks relations per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from annotation.forms import judgment_fields_context, judgment_value_from_form
from annotation.languages import language_tag_normalize, prompt_language
from annotation.models import (
    Assignment,
    AssignmentStatus,
    Judgment,
    Language,
    Project,
    Qualification,
    QualificationStatus,
)
from annotation.overview import projects_led
from annotation.projects import project_by_slug, project_language
from annotation.queue import (
    UNDO_SECONDS,
    NotQualified,
    assignment_for_evaluator,
    assignment_skip,
    evaluator_progress,
    item_claim_next,
    judgment_history,
    judgment_revise,
    judgment_submit,
    judgment_undo,
    judgments_of_evaluator,
    queue_counts,
)
from annotation.types import AuthenticatedRequest, User

WORK_TEMPLATE = "annotation/work.html"
JUDGMENTS_PER_PAGE = 25


# ---------------------------------------------------------------------------------------
# Queue home
# ---------------------------------------------------------------------------------------


@dataclass
class QueueRow:
    """One language of one project on the queue home."""

    language: Language
    qualification: Qualification
    waiting: int | None = None  # None: not workable now (see needs_*)
    needs_guideline: bool = False
    needs_calibration: bool = False


@login_required
@require_GET
def queue_home(request: AuthenticatedRequest) -> HttpResponse:
    qualifications = (
        Qualification.objects.filter(evaluator=request.user)
        .select_related("project", "language")
        .order_by("project__name", "project__slug", "language__tag")
    )
    projects: dict[int, tuple[Project, list[QueueRow]]] = {}
    for qualification in qualifications:
        project = qualification.project
        rows = projects.setdefault(project.pk, (project, []))[1]
        needs_guideline = bool(
            project.guideline_version
            and qualification.acknowledged_version != project.guideline_version
        )
        rows.append(
            QueueRow(
                language=qualification.language,
                qualification=qualification,
                needs_guideline=needs_guideline,
                needs_calibration=qualification.status != QualificationStatus.QUALIFIED,
            )
        )
    for project, rows in projects.values():
        # One grouped count per project, only over the languages the evaluator may work.
        if any(not (r.needs_guideline or r.needs_calibration) for r in rows):
            waiting = {
                c.language.pk: c.waiting
                for c in queue_counts(evaluator=request.user, project=project)
            }
            for row in rows:
                if not (row.needs_guideline or row.needs_calibration):
                    row.waiting = waiting.get(row.language.pk, 0)
    led = projects_led(user=request.user)
    return render(
        request,
        "annotation/queue_home.html",
        {
            "projects": list(projects.values()),
            "led_projects": led,
            "led_ids": {project.pk for project in led},
        },
    )


# ---------------------------------------------------------------------------------------
# The item card
# ---------------------------------------------------------------------------------------


class UnknownQueueLanguage(Exception):
    """The ?language= of a queue is no language of the project; shown in the card with HTTP 400."""


def _queue_language(*, project: Project, tag: str) -> Language | None:
    """The language the evaluator chose to work in, or None for all their languages."""
    if not tag:
        return None
    try:
        normal = language_tag_normalize(tag)
    except ValidationError as exc:
        raise UnknownQueueLanguage(
            _("Unknown language: %(reason)s.") % {"reason": exc.messages[0]}
        ) from None
    language = project_language(project=project, tag=normal)
    if language is None:
        raise UnknownQueueLanguage(
            _("%(tag)s is not a language of %(project)s.")
            % {"tag": normal, "project": project.name}
        )
    return language


def _card_context(
    *,
    project: Project,
    assignment: Assignment | None,
    language: Language | None,
    error: str = "",
    value: dict[str, Any] | None = None,
    open_card: bool = True,
) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "project": project,
        "assignment": assignment if open_card else None,
        "queue_language": language,
        "queue_tag": language.tag if language else "",
        "error": error,
    }
    if assignment is not None and open_card:
        item = assignment.item
        ctx["item"] = item
        ctx["prompt_lang"], ctx["prompt_dir"] = prompt_language(item)
        ctx.update(judgment_fields_context(project=project, value=value))
        ctx["progress"] = evaluator_progress(
            evaluator=assignment.evaluator,
            project=project,
            language=item.language,
            showing=assignment,
        )
        if project.guideline_version:
            ctx["guideline_panel_url"] = (
                reverse("guidelines:guideline_panel", args=[project.slug])
                + "?"
                + urlencode({"language": item.language.tag})
            )
    return ctx


def _work_url(*, project: Project, language: Language | None) -> str:
    url = reverse("annotation:work", args=[project.slug])
    return f"{url}?{urlencode({'language': language.tag})}" if language else url


def _render_card(
    request: AuthenticatedRequest, ctx: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    template = f"{WORK_TEMPLATE}#card" if request.htmx else WORK_TEMPLATE
    response = render(request, template, ctx, status=status)
    # Never from the browser's cache: after Back, a judged item must not come back as a
    # fresh card (the server says which lease is live).
    add_never_cache_headers(response)
    return response


def _blocked_context(
    *, evaluator: User, project: Project, language: Language | None
) -> dict[str, Any]:
    """Why the evaluator may not claim here, and the way on: acknowledge the new guideline
    version in place, take the calibration round, or wait for the lead (suspended)."""
    qualifications = Qualification.objects.filter(
        evaluator=evaluator, project=project
    ).select_related("language")
    if language is not None:
        qualifications = qualifications.filter(language=language)
    rows = list(qualifications.order_by("language__tag"))
    needs_acknowledgement = bool(project.guideline_version) and any(
        q.status == QualificationStatus.QUALIFIED
        and q.acknowledged_version != project.guideline_version
        for q in rows
    )
    return {
        "blocked": True,
        "needs_acknowledgement": needs_acknowledgement,
        "calibrate": [
            q
            for q in rows
            if q.status in (QualificationStatus.PENDING, QualificationStatus.REQUALIFY)
        ],
        "suspended": [q for q in rows if q.status == QualificationStatus.SUSPENDED],
        "guideline_url": reverse("guidelines:guideline", args=[project.slug]),
        "return_url": _work_url(project=project, language=language),
    }


def _with_item(assignment: Assignment, project: Project) -> Assignment:
    """The assignment with its item and the item's language loaded, in one query at most."""
    if not Assignment.item.is_cached(assignment):
        assignment = Assignment.objects.select_related("item__language").get(pk=assignment.pk)
    assignment.item.project = project
    return assignment


def _claim_and_render(
    request: AuthenticatedRequest,
    *,
    project: Project,
    language: Language | None,
    saved: Assignment | None = None,
    notice: str = "",
) -> HttpResponse:
    """The next card. After a submit (`saved`), the card says so first, whatever comes next:
    the next item, an empty queue, or why the evaluator may not go on (with the way on)."""
    try:
        assignment = item_claim_next(evaluator=request.user, project=project, language=language)
    except NotQualified as exc:
        blocked = _blocked_context(evaluator=request.user, project=project, language=language)
        if saved is not None:
            # The judgment is stored: that comes first, then why no next item (a guideline
            # bump since the card was claimed), as guidance rather than an error.
            ctx = _card_context(project=project, assignment=None, language=language)
            ctx.update(blocked, notice=notice or _("Saved."), **_undo_context(saved))
            return _render_card(request, ctx)
        ctx = _card_context(project=project, assignment=None, language=language, error=str(exc))
        ctx.update(blocked)
        return _render_card(request, ctx, status=403)
    if assignment is not None:
        assignment = _with_item(assignment, project)
    ctx = _card_context(project=project, assignment=assignment, language=language)
    if saved is not None:
        ctx["notice"] = notice or (
            _("Saved. Here is the next item.") if assignment is not None else _("Saved.")
        )
        ctx.update(_undo_context(saved))
    else:
        ctx["notice"] = notice
    return _render_card(request, ctx)


def _undo_context(saved: Assignment) -> dict[str, Any]:
    if saved.status != AssignmentStatus.SUBMITTED or saved.submitted_at is None:
        return {}
    until = saved.submitted_at + timedelta(seconds=UNDO_SECONDS)
    return {
        "undo_url": reverse("annotation:assignment_undo", args=[saved.pk]),
        "undo_until_ms": int(until.timestamp() * 1000),
    }


@login_required
@require_GET
@never_cache
@vary_on_headers("HX-Request")
def work(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """Claim the next item (or resume the live lease) and show its card."""
    project = project_by_slug(slug)
    if project is None:
        raise Http404(_("No project %(slug)r.") % {"slug": slug})
    try:
        language = _queue_language(project=project, tag=request.GET.get("language", "").strip())
    except UnknownQueueLanguage as exc:
        ctx = _card_context(project=project, assignment=None, language=None, error=str(exc))
        return _render_card(request, ctx, status=400)
    return _claim_and_render(request, project=project, language=language)


def _seconds_from_form(data: QueryDict) -> float | None:
    """Visible time on task measured in the page; empty → the server uses the lease time."""
    raw = data.get("seconds", "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise ValidationError(_("seconds: %(raw)r is not a number.") % {"raw": raw}) from None
    if seconds != seconds:  # NaN
        raise ValidationError(_("seconds: %(raw)r is not a number.") % {"raw": raw})
    return seconds


def _form_value_for_prefill(data: QueryDict) -> dict[str, Any]:
    """What the evaluator entered, to put back into the card after a refused submit."""
    prefill: dict[str, Any] = {
        "labels": data.getlist("labels"),
        "issues": data.getlist("issues"),
        "comment": data.get("comment", ""),
        "choice": data.get("choice", ""),
    }
    for key in ("score", "strength"):
        try:
            prefill[key] = int(data.get(key, ""))
        except ValueError:
            pass
    return prefill


def _message(exc: ValidationError | PermissionDenied) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or _("You may not do this.")


def _fetch_own_assignment(request: AuthenticatedRequest, assignment_id: int) -> Assignment:
    assignment = assignment_for_evaluator(evaluator=request.user, assignment_id=assignment_id)
    # Assignment.project is the item's project, already fetched: saves a query per submit.
    assignment.project = assignment.item.project
    return assignment


def _next_language(request: AuthenticatedRequest, assignment: Assignment) -> Language | None:
    """The queue the evaluator works: the language field of the card (empty = all their
    languages); absent, the language of the item just done."""
    if "language" not in request.POST:
        return assignment.item.language
    tag = request.POST.get("language", "").strip()
    if tag == assignment.item.language.tag:
        return assignment.item.language
    return _queue_language(project=assignment.project, tag=tag)


def _refused(
    request: AuthenticatedRequest,
    *,
    assignment: Assignment | None,
    error: str,
    status: int,
    prefill: dict[str, Any] | None = None,
) -> HttpResponse:
    if assignment is None:
        ctx = {"project": None, "assignment": None, "error": error}
        return _render_card(request, ctx, status=status)
    project = assignment.project
    try:
        language = _next_language(request, assignment)
    except UnknownQueueLanguage:
        language = assignment.item.language
    assignment.refresh_from_db(fields=["status"])
    still_open = assignment.status == AssignmentStatus.LEASED
    if not still_open and status == 400:
        # A stale card (submitted in another tab, after Back, skipped, lease gone): a
        # conflict with what the server holds, not bad input.
        status = 409
    ctx = _card_context(
        project=project,
        assignment=assignment,
        language=language,
        error=error,
        value=prefill,
        open_card=still_open,
    )
    if not still_open:
        # Already submitted, skipped or gone: the way on is the next item.
        ctx["next_url"] = _work_url(project=project, language=language)
    return _render_card(request, ctx, status=status)


def _after_done(
    request: AuthenticatedRequest, assignment: Assignment, *, notice: str = ""
) -> HttpResponse:
    try:
        language = _next_language(request, assignment)
    except UnknownQueueLanguage:
        language = assignment.item.language
    if not request.htmx:
        messages.success(request, notice or _("Saved."))
        return HttpResponseRedirect(_work_url(project=assignment.project, language=language))
    return _claim_and_render(
        request, project=assignment.project, language=language, saved=assignment, notice=notice
    )


@login_required
@require_POST
@vary_on_headers("HX-Request")
def assignment_submit(request: AuthenticatedRequest, assignment_id: int) -> HttpResponse:
    """Store the judgment; htmx gets the next card, a plain form a redirect to the queue."""
    try:
        assignment = _fetch_own_assignment(request, assignment_id)
    except PermissionDenied as exc:
        return _refused(request, assignment=None, error=_message(exc), status=403)
    try:
        value = judgment_value_from_form(project=assignment.project, data=request.POST)
        seconds = _seconds_from_form(request.POST)
        judgment_submit(assignment=assignment, evaluator=request.user, value=value, seconds=seconds)
    except PermissionDenied as exc:
        return _refused(request, assignment=None, error=_message(exc), status=403)
    except ValidationError as exc:
        return _refused(
            request,
            assignment=assignment,
            error=_message(exc),
            status=400,
            prefill=_form_value_for_prefill(request.POST),
        )
    return _after_done(request, assignment)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def assignment_skip_view(request: AuthenticatedRequest, assignment_id: int) -> HttpResponse:
    """Give the item back with a reason and move on."""
    try:
        assignment = _fetch_own_assignment(request, assignment_id)
    except PermissionDenied as exc:
        return _refused(request, assignment=None, error=_message(exc), status=403)
    try:
        assignment_skip(
            assignment=assignment, evaluator=request.user, reason=request.POST.get("reason", "")
        )
    except PermissionDenied as exc:
        return _refused(request, assignment=None, error=_message(exc), status=403)
    except ValidationError as exc:
        return _refused(request, assignment=assignment, error=_message(exc), status=400)
    return _after_done(request, assignment, notice=_("Skipped. Here is the next item."))


@login_required
@require_POST
@vary_on_headers("HX-Request")
def assignment_undo(request: AuthenticatedRequest, assignment_id: int) -> HttpResponse:
    """Take back the submission just made (within UNDO_SECONDS): the same card comes back
    with the judgment in it, to change and submit again."""
    try:
        assignment = _fetch_own_assignment(request, assignment_id)
    except PermissionDenied as exc:
        return _refused(request, assignment=None, error=_message(exc), status=403)
    previous = (
        Judgment.objects.filter(assignment=assignment, is_current=True)
        .values_list("value", flat=True)
        .first()
    )
    try:
        judgment_undo(assignment=assignment, evaluator=request.user)
    except PermissionDenied as exc:
        return _refused(request, assignment=None, error=_message(exc), status=403)
    except ValidationError as exc:
        return _refused(request, assignment=assignment, error=_message(exc), status=409)
    language = assignment.item.language
    if not request.htmx:
        return HttpResponseRedirect(_work_url(project=assignment.project, language=language))
    assignment.status = AssignmentStatus.LEASED
    ctx = _card_context(
        project=assignment.project, assignment=assignment, language=language, value=previous
    )
    ctx["notice"] = _("Undone: change your judgment and submit it again.")
    return _render_card(request, ctx)


# ---------------------------------------------------------------------------------------
# My judgments
# ---------------------------------------------------------------------------------------


@login_required
@require_GET
def my_judgments(request: AuthenticatedRequest) -> HttpResponse:
    page = Paginator(judgments_of_evaluator(evaluator=request.user), JUDGMENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "annotation/my_judgments.html", {"page": page})


def _own_judgment(request: AuthenticatedRequest, judgment_id: int) -> Judgment:
    judgment = (
        Judgment.objects.select_related("item__language", "item__project", "assignment")
        .filter(pk=judgment_id, evaluator__isnull=False)
        .first()
    )
    if judgment is None or judgment.evaluator_id != request.user.pk:
        raise PermissionDenied(_("This judgment is not yours."))
    return judgment


@login_required
@require_http_methods(["GET", "POST"])
def judgment_revise_view(request: AuthenticatedRequest, judgment_id: int) -> HttpResponse:
    """Show an own judgment with its revisions; a POST adds a revision (nothing is overwritten)."""
    try:
        judgment = _own_judgment(request, judgment_id)
    except PermissionDenied as exc:
        return render(request, "annotation/refused.html", {"error": _message(exc)}, status=403)
    project = judgment.item.project
    history = list(judgment_history(judgment=judgment))
    current = next((j for j in history if j.is_current), judgment)
    error = ""
    prefill = current.value
    status = 200
    if request.method == "POST":
        try:
            value = judgment_value_from_form(project=project, data=request.POST)
            seconds = _seconds_from_form(request.POST)
            revised = judgment_revise(
                judgment=current, evaluator=request.user, value=value, seconds=seconds
            )
        except PermissionDenied as exc:
            return render(request, "annotation/refused.html", {"error": _message(exc)}, status=403)
        except ValidationError as exc:
            error, status, prefill = _message(exc), 400, _form_value_for_prefill(request.POST)
        else:
            if revised.pk == current.pk:
                messages.info(request, _("Nothing changed: the judgment is the same as before."))
            else:
                messages.success(request, _("Saved as revision %(n)s.") % {"n": revised.revision})
            return HttpResponseRedirect(reverse("annotation:judgment_revise", args=[revised.pk]))
    item = judgment.item
    prompt_lang, prompt_dir = prompt_language(item)
    ctx = {
        "judgment": current,
        "history": history,
        "project": project,
        "item": item,
        "prompt_lang": prompt_lang,
        "prompt_dir": prompt_dir,
        "error": error,
        **judgment_fields_context(project=project, value=prefill),
    }
    return render(request, "annotation/judgment_revise.html", ctx, status=status)

"""The review queue: claim, lease expiry, skip, submit, revise, honeypot mixing.

Correctness first. Claiming is one short transaction: the highest-priority queued item
in the evaluator's qualified languages that still has an open slot and that this
evaluator has not seen, taken with `SELECT … FOR UPDATE SKIP LOCKED LIMIT 1` on
PostgreSQL (SQLite serialises writers, so there the same code is correct, just not
concurrent). Locks are taken in one order — assignment, then item — everywhere a
transaction holds both, so claim, submit and lease expiry cannot deadlock.

Invariants (tested under real concurrency on PostgreSQL, tests/concurrency/):
an item never gets more than `overlap` production judgments; an evaluator never sees the
same item twice; an abandoned lease gives its slot back; nothing submitted is lost.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    Judgment,
    Language,
    Project,
    SkipReason,
)
from annotation.qualification import honeypot_accuracy_update, qualified_language_ids
from annotation.schema import judgment_value_validate

# Kinds whose judgments are "production data": they count towards overlap k.
SLOT_KINDS = (AssignmentKind.PRODUCTION,)
# Kinds an evaluator works from the production queue.
QUEUE_KINDS = (AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT)
MAX_SECONDS_ON_TASK = 24 * 3600

_rng = random.SystemRandom()


class NotQualified(PermissionDenied):
    """The evaluator may not work this project or language."""


@dataclass(frozen=True)
class QueueCount:
    language: Language
    waiting: int


# ---------------------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------------------


def _claimable_items(*, evaluator: Any, project: Project, language_ids: list[int]) -> QuerySet[Item]:
    seen = Assignment.objects.filter(item=OuterRef("pk"), evaluator=evaluator).exclude(
        kind=AssignmentKind.CALIBRATION
    )
    # Served by the partial index item_claimable (project, language, -priority, id).
    return (
        Item.objects.filter(
            project=project,
            language_id__in=language_ids,
            status=ItemStatus.QUEUED,
            open_slots__gt=0,
            is_gold=False,
        )
        .filter(~Exists(seen))
        .order_by("-priority", "id")
    )


def queue_counts(*, evaluator: Any, project: Project) -> list[QueueCount]:
    """Items waiting for this evaluator per qualified language (what the queue home shows)."""
    language_ids = qualified_language_ids(evaluator=evaluator, project=project)
    if not language_ids:
        return []
    rows = dict(
        _claimable_items(evaluator=evaluator, project=project, language_ids=language_ids)
        .order_by()
        .values_list("language_id")
        .annotate(n=Count("id"))
    )
    languages = Language.objects.filter(pk__in=language_ids).order_by("tag")
    return [QueueCount(language=lang, waiting=rows.get(lang.pk, 0)) for lang in languages]


def assignment_current(*, evaluator: Any, project: Project) -> Assignment | None:
    """The evaluator's live lease in this project, if any (a reload resumes it)."""
    return (
        Assignment.objects.select_related("item__language", "item__project")
        .filter(
            evaluator=evaluator,
            project=project,
            status=AssignmentStatus.LEASED,
            kind__in=QUEUE_KINDS,
            lease_expires_at__gt=timezone.now(),
        )
        .order_by("leased_at")
        .first()
    )


def assignment_for_evaluator(*, evaluator: Any, assignment_id: int) -> Assignment:
    """Fetch an assignment that belongs to this evaluator; anything else is refused."""
    assignment = (
        Assignment.objects.select_related("item__language", "item__project").filter(pk=assignment_id).first()
    )
    if assignment is None or assignment.evaluator_id != evaluator.pk:
        raise PermissionDenied(_("This assignment is not yours."))
    return assignment


# ---------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------


def queue_expire_leases(*, project: Project | None = None, now: datetime | None = None) -> int:
    """Expire leases past their time and give their production slots back. Returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        expired = Assignment.objects.filter(status=AssignmentStatus.LEASED, lease_expires_at__lte=now)
        if project is not None:
            expired = expired.filter(project=project)
        # Lock order: assignments first, then items (as in submit).
        rows = list(
            expired.select_for_update(skip_locked=True).order_by("id").values_list("id", "item_id", "kind")
        )
        if not rows:
            return 0
        Assignment.objects.filter(pk__in=[r[0] for r in rows], status=AssignmentStatus.LEASED).update(
            status=AssignmentStatus.EXPIRED
        )
        slots = Counter(item_id for _, item_id, kind in rows if kind in SLOT_KINDS)
        for item_id in sorted(slots):
            Item.objects.filter(pk=item_id).update(open_slots=F("open_slots") + slots[item_id])
    return len(rows)


def _lease_until(project: Project) -> datetime:
    return timezone.now() + timedelta(seconds=project.lease_seconds)


def _claim_honeypot(*, evaluator: Any, project: Project, language_ids: list[int]) -> Assignment | None:
    seen = Assignment.objects.filter(item=OuterRef("pk"), evaluator=evaluator)
    candidates = (
        Item.objects.filter(project=project, language_id__in=language_ids, is_gold=True)
        .filter(~Exists(seen))
        .values_list("pk", flat=True)
    )
    # Gold sets are small; a random pick keeps honeypots from arriving in a fixed order.
    ids = list(candidates[:500])
    if not ids:
        return None
    item_id = _rng.choice(ids)
    try:
        with transaction.atomic():
            return Assignment.objects.create(
                item_id=item_id,
                evaluator=evaluator,
                project=project,
                kind=AssignmentKind.HONEYPOT,
                lease_expires_at=_lease_until(project),
            )
    except IntegrityError:
        return None


def item_claim_next(
    *, evaluator: Any, project: Project, language: Language | None = None
) -> Assignment | None:
    """Lease the next item to this evaluator, or return their live lease; None when nothing waits.

    Raises NotQualified when the evaluator may not work the project (or that language).
    """
    language_ids = qualified_language_ids(evaluator=evaluator, project=project)
    if language is not None:
        if language.pk not in language_ids:
            raise NotQualified(
                _("You are not qualified for %(language)s in %(project)s.")
                % {"language": language.name, "project": project.name}
            )
        language_ids = [language.pk]
    if not language_ids:
        raise NotQualified(_("You are not qualified for any language in %(project)s.") % {"project": project.name})

    current = assignment_current(evaluator=evaluator, project=project)
    if current is not None and current.item.language_id in language_ids:
        return current

    queue_expire_leases(project=project)

    # Honeypots arrive at the project's rate, indistinguishable from production items.
    if project.honeypot_rate > 0 and _rng.random() < project.honeypot_rate:
        honeypot = _claim_honeypot(evaluator=evaluator, project=project, language_ids=language_ids)
        if honeypot is not None:
            return honeypot

    with transaction.atomic():
        item = (
            _claimable_items(evaluator=evaluator, project=project, language_ids=language_ids)
            .select_for_update(skip_locked=True, of=("self",))
            .only("pk")
            .first()
        )
        if item is None:
            return None
        Item.objects.filter(pk=item.pk).update(open_slots=F("open_slots") - 1)
        return Assignment.objects.create(
            item_id=item.pk,
            evaluator=evaluator,
            project=project,
            kind=AssignmentKind.PRODUCTION,
            lease_expires_at=_lease_until(project),
        )


def assignment_skip(*, assignment: Assignment, evaluator: Any, reason: str) -> Assignment:
    """Give the item back with a reason; this evaluator will not be offered it again."""
    if reason not in SkipReason.values:
        raise ValidationError(
            _("Choose a skip reason: %(reasons)s.") % {"reasons": ", ".join(str(c.label) for c in SkipReason)}
        )
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.evaluator_id != evaluator.pk:
            raise PermissionDenied(_("This assignment is not yours."))
        if locked.status != AssignmentStatus.LEASED:
            raise ValidationError(_("This item was already %(status)s.") % {"status": locked.get_status_display()})
        locked.status = AssignmentStatus.SKIPPED
        locked.skip_reason = reason
        locked.submitted_at = timezone.now()
        locked.save(update_fields=["status", "skip_reason", "submitted_at"])
        if locked.kind in SLOT_KINDS:
            Item.objects.filter(pk=locked.item_id).update(open_slots=F("open_slots") + 1)
    return locked


def _seconds_on_task(*, assignment: Assignment, seconds: float | None) -> float:
    if seconds is None:
        return (timezone.now() - assignment.leased_at).total_seconds()
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_SECONDS_ON_TASK:
        raise ValidationError(_("seconds: time on task must be between 0 and 86400."))
    return float(seconds)


def _is_too_fast(*, item: Item, project: Project, seconds: float) -> bool:
    if project.max_chars_per_second <= 0:
        return False
    return seconds * project.max_chars_per_second < len(item.shown_text)


def judgment_submit(
    *, assignment: Assignment, evaluator: Any, value: Any, seconds: float | None = None
) -> Judgment:
    """Store the evaluator's judgment on their assignment.

    A late submit (the lease expired) is still accepted when the item has a slot free,
    so work is not thrown away; otherwise it is refused with the reason.
    """
    project = assignment.project if assignment.project_id else assignment.item.project
    clean = judgment_value_validate(task_type=project.task_type, schema=project.schema, value=value)
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.evaluator_id != evaluator.pk:
            raise PermissionDenied(_("This assignment is not yours."))
        if locked.status == AssignmentStatus.SUBMITTED:
            raise ValidationError(_("You already submitted a judgment for this item; revise it from My judgments."))
        if locked.status == AssignmentStatus.SKIPPED:
            raise ValidationError(_("You skipped this item."))
        expired = locked.status == AssignmentStatus.EXPIRED or locked.lease_expires_at <= timezone.now()
        item = Item.objects.select_for_update().get(pk=locked.item_id)
        if expired and locked.kind in SLOT_KINDS:
            if locked.status == AssignmentStatus.EXPIRED:
                # The slot went back to the pool: take it again if nobody else has.
                if item.open_slots <= 0 or item.status != ItemStatus.QUEUED:
                    raise ValidationError(
                        _("Your time on this item ran out and it went to another evaluator.")
                    )
                item.open_slots -= 1
                Item.objects.filter(pk=item.pk).update(open_slots=F("open_slots") - 1)
        spent = _seconds_on_task(assignment=locked, seconds=seconds)
        judgment = Judgment.objects.create(
            item=item,
            assignment=locked,
            evaluator=evaluator,
            kind=locked.kind,
            value=clean,
            seconds=spent,
            guideline_version=project.guideline_version,
            too_fast=_is_too_fast(item=item, project=project, seconds=spent),
        )
        locked.status = AssignmentStatus.SUBMITTED
        locked.submitted_at = judgment.created_at
        locked.save(update_fields=["status", "submitted_at"])
        if locked.kind in SLOT_KINDS:
            done = Judgment.objects.filter(item=item, kind=AssignmentKind.PRODUCTION, is_current=True).count()
            if done >= project.overlap and item.status == ItemStatus.QUEUED:
                Item.objects.filter(pk=item.pk).update(status=ItemStatus.DONE, updated_at=timezone.now())
    if locked.kind == AssignmentKind.HONEYPOT:
        honeypot_accuracy_update(evaluator=evaluator, project=project, language=item.language)
    return judgment


def judgment_revise(*, judgment: Judgment, evaluator: Any, value: Any, seconds: float | None = None) -> Judgment:
    """Add a new revision of the evaluator's own judgment; the old one is kept, not current."""
    if judgment.evaluator_id != evaluator.pk:
        raise PermissionDenied(_("This judgment is not yours."))
    project = judgment.item.project
    clean = judgment_value_validate(task_type=project.task_type, schema=project.schema, value=value)
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=judgment.assignment_id)
        current = Judgment.objects.select_for_update().get(assignment=locked, is_current=True)
        if current.item.status == ItemStatus.FINAL:
            raise ValidationError(_("This item has a final label; it can no longer be revised."))
        if current.value == clean:
            return current
        Judgment.objects.filter(pk=current.pk).update(is_current=False)
        return Judgment.objects.create(
            item_id=current.item_id,
            assignment=locked,
            evaluator=evaluator,
            kind=current.kind,
            value=clean,
            seconds=float(seconds) if isinstance(seconds, int | float) and 0 <= seconds <= MAX_SECONDS_ON_TASK else current.seconds,
            guideline_version=project.guideline_version,
            revision=current.revision + 1,
            too_fast=current.too_fast,
        )


def judgments_of_evaluator(*, evaluator: Any, project: Project | None = None) -> QuerySet[Judgment]:
    """The evaluator's own current judgments, newest first ("My judgments")."""
    qs = Judgment.objects.filter(
        evaluator=evaluator, is_current=True, kind__in=[AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT]
    )
    if project is not None:
        qs = qs.filter(item__project=project)
    return qs.select_related("item__language", "item__project").order_by("-created_at", "-id")


def judgment_history(*, judgment: Judgment) -> QuerySet[Judgment]:
    """Every revision of the same assignment, oldest first."""
    return Judgment.objects.filter(assignment_id=judgment.assignment_id).order_by("revision")

"""Undo of the last submission, within UNDO_SECONDS of it."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation.label_changes import label_versions_bump
from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    ExportMark,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Project,
)
from annotation.qualification import honeypot_accuracy_update
from annotation.queue.db import retried_on_deadlock
from annotation.queue.sql import QUEUE_KINDS, SLOT_KINDS
from annotation.types import User

# How long after a submit the evaluator may take it back (a slip of Enter, a wrong key).
UNDO_SECONDS = 30


@retried_on_deadlock
def judgment_undo(
    *, assignment: Assignment, evaluator: User, now: datetime | None = None
) -> Assignment:
    """Take back a judgment submitted less than UNDO_SECONDS ago: the judgment is deleted
    (it was a slip, not data), the assignment is leased to the evaluator again with a fresh
    lease, an item the judgment completed goes back to the queue, and the lease the
    evaluator took since (the next card) is given back with its slot, so they never hold two.

    Refused once the window has passed, after a revision, or once the item has moved on
    (adjudicated, final, exported): then the judgment is data others may rely on.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked, released, judgment = _undo_locks(
            assignment=assignment, evaluator=evaluator, now=now
        )
        item_ids = sorted({locked.item_id, *(a.item_id for a in released)})
        items = {
            i.pk: i for i in Item.objects.select_for_update().filter(pk__in=item_ids).order_by("pk")
        }
        item = items[locked.item_id]
        if _moved_on(item, submitted_at=judgment.created_at):
            raise ValidationError(_("Too late to undo: revise it from My judgments instead."))
        judgment.delete()
        if item.status != ItemStatus.QUEUED:
            # This judgment completed the item; without it the item waits for it again.
            Item.objects.filter(pk=item.pk).update(status=ItemStatus.QUEUED, updated_at=now)
        # An export that marked the item while this ran must see it again (the mark check
        # above cannot see an export's uncommitted marks).
        label_versions_bump(items=[item.pk])
        for other in released:
            other.delete()
            if other.kind in SLOT_KINDS:
                Item.objects.filter(pk=other.item_id).update(open_slots=F("open_slots") + 1)
        locked.status = AssignmentStatus.LEASED
        locked.submitted_at = None
        locked.leased_at = now
        locked.lease_expires_at = now + timedelta(seconds=assignment.project.lease_seconds)
        locked.save(update_fields=["status", "submitted_at", "leased_at", "lease_expires_at"])
    if locked.kind == AssignmentKind.HONEYPOT:
        honeypot_accuracy_update(
            evaluator=evaluator, project=assignment.project, language=item.language
        )
    return locked


def _undo_locks(
    *, assignment: Assignment, evaluator: User, now: datetime
) -> tuple[Assignment, list[Assignment], Judgment]:
    """Lock this evaluator's assignment to undo and their live leases in the project (in
    the queue's order: assignments by id, before any item); refuse unless the assignment is
    theirs, submitted from the queue, with its one judgment inside the window. Returns the
    assignment, the leases to give back and the judgment."""
    mine = list(
        Assignment.objects.select_for_update()
        .filter(
            Q(pk=assignment.pk)
            | Q(
                evaluator=evaluator,
                project_id=assignment.project_id,
                status=AssignmentStatus.LEASED,
                kind__in=QUEUE_KINDS,
            )
        )
        .order_by("pk")
    )
    locked = next((a for a in mine if a.pk == assignment.pk), None)
    if locked is None or locked.evaluator_id != evaluator.pk:
        raise PermissionDenied(_("This assignment is not yours."))
    if locked.status != AssignmentStatus.SUBMITTED or locked.kind not in QUEUE_KINDS:
        raise ValidationError(_("There is no submission of yours on this item to undo."))
    judgments = list(Judgment.objects.filter(assignment=locked))
    if len(judgments) != 1 or (now - judgments[0].created_at).total_seconds() > UNDO_SECONDS:
        raise ValidationError(_("Too late to undo: revise it from My judgments instead."))
    released = [a for a in mine if a.pk != locked.pk and a.status == AssignmentStatus.LEASED]
    return locked, released, judgments[0]


def _moved_on(item: Item, *, submitted_at: datetime) -> bool:
    """Whether others may rely on the item's judgments by now: it was adjudicated, has a
    final label or was exported — it has a mark and a pull started handing out lines after
    the judgment was submitted (a mark the background sweep made with no pull since does
    not count)."""
    handed_at = Project.objects.filter(pk=item.project_id).values_list(
        "export_handed_at", flat=True
    )[0]
    return (
        item.status not in (ItemStatus.QUEUED, ItemStatus.DONE, ItemStatus.ADJUDICATION)
        or FinalLabel.objects.filter(item=item).exists()
        or (
            handed_at is not None
            and handed_at >= submitted_at
            and ExportMark.objects.filter(item=item).exists()
        )
        or Assignment.objects.filter(item=item, kind=AssignmentKind.ADJUDICATION).exists()
    )

"""Submitting a judgment on a lease (late submits included, while the item has a slot) and
revising one: a revision is a new row, the old one is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation import metrics
from annotation.adjudication import adjudication_route
from annotation.label_changes import label_versions_bump
from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    Judgment,
    Language,
    Project,
)
from annotation.qualification import honeypot_accuracy_update
from annotation.queue import db, sql
from annotation.queue.db import retried_on_deadlock
from annotation.queue.sql import SLOT_KINDS
from annotation.schema import judgment_value_validate
from annotation.types import User

MAX_SECONDS_ON_TASK = 24 * 3600


def _seconds_checked(seconds: Any) -> float | None:
    if seconds is None:
        return None
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not 0 <= seconds <= MAX_SECONDS_ON_TASK
    ):
        raise ValidationError(_("seconds: time on task must be between 0 and 86400."))
    return float(seconds)


def _is_too_fast(*, assignment: Assignment, item_id: int, project: Project, seconds: float) -> bool:
    if project.max_chars_per_second <= 0:
        return False
    if Assignment.item.is_cached(assignment):
        item = assignment.item
    else:
        item = Item.objects.only("prompt", "response", "response_a", "response_b").get(pk=item_id)
    return seconds * project.max_chars_per_second < len(item.shown_text)


def judgment_submit(
    *, assignment: Assignment, evaluator: User, value: Any, seconds: float | None = None
) -> Judgment:
    """Store the evaluator's judgment on their assignment.

    A late submit (the lease expired) is still accepted when the item has a slot free,
    so work is not thrown away; otherwise it is refused with the reason.
    """
    project = assignment.project if assignment.project_id else assignment.item.project
    clean = judgment_value_validate(task_type=project.task_type, schema=project.schema, value=value)
    spent = _seconds_checked(seconds)
    judgment, kind, language_id = _submit_in_transaction(
        assignment=assignment, evaluator=evaluator, project=project, value=clean, spent=spent
    )
    metrics.JUDGMENTS.labels(project=project.slug).inc()
    assignment.status = AssignmentStatus.SUBMITTED
    assignment.submitted_at = judgment.created_at
    if Assignment.item.is_cached(assignment):
        judgment.item = assignment.item
    if kind == AssignmentKind.HONEYPOT:
        honeypot_accuracy_update(
            evaluator=evaluator, project=project, language=Language.objects.get(pk=language_id)
        )
    return judgment


@retried_on_deadlock
def _submit_in_transaction(
    *,
    assignment: Assignment,
    evaluator: User,
    project: Project,
    value: dict[str, Any],
    spent: float | None,
) -> tuple[Judgment, str, int]:
    """The submit's one transaction: the stored judgment, its kind and the item's language."""
    with transaction.atomic(), connection.cursor() as cursor:
        read = _submit_read(cursor, assignment=assignment, evaluator=evaluator)
        now = timezone.now()
        if read.status == AssignmentStatus.EXPIRED and read.kind in SLOT_KINDS:
            # The slot went back to the pool: take it again if nobody else has.
            if read.open_slots <= 0 or read.item_status != ItemStatus.QUEUED:
                raise ValidationError(
                    _("Your time on this item ran out and it went to another evaluator.")
                )
            cursor.execute(sql.TAKE_SLOT, [read.item_id])
        if spent is None:
            spent = (now - db.aware(read.leased_at)).total_seconds()
        judgment = Judgment(
            item_id=read.item_id,
            assignment=assignment,
            evaluator=evaluator,
            kind=read.kind,
            value=value,
            seconds=spent,
            guideline_version=project.guideline_version,
            too_fast=_is_too_fast(
                assignment=assignment, item_id=read.item_id, project=project, seconds=spent
            ),
            created_at=now,
        )
        if _insert_and_settle(cursor, judgment, read=read, project=project, now=now):
            # Judgments that disagree beyond the project rule send the item to adjudication.
            adjudication_route(item_id=read.item_id, project=project)
    return judgment, read.kind, read.language_id


@dataclass(frozen=True)
class _SubmitRow:
    """The assignment and its item as the submit read them, locked."""

    status: str
    kind: str
    item_id: int
    leased_at: Any
    open_slots: int
    item_status: str
    language_id: int


def _submit_read(cursor: CursorWrapper, *, assignment: Assignment, evaluator: User) -> _SubmitRow:
    """Lock the assignment and its item (in that order) and refuse a submit that is not
    the evaluator's or comes after a submit or a skip."""
    cursor.execute(sql.SUBMIT_READ + sql.lock_clause(of="a, i"), {"assignment": assignment.pk})
    row = cursor.fetchone()
    if row is None:
        raise Assignment.DoesNotExist("This assignment no longer exists.")
    owner_id, status, kind, item_id, leased_at, open_slots, item_status, language_id = row
    if owner_id != evaluator.pk:
        raise PermissionDenied(_("This assignment is not yours."))
    if status == AssignmentStatus.SUBMITTED:
        raise ValidationError(
            _("You already submitted a judgment for this item; revise it from My judgments.")
        )
    if status == AssignmentStatus.SKIPPED:
        raise ValidationError(_("You skipped this item."))
    return _SubmitRow(status, kind, item_id, leased_at, open_slots, item_status, language_id)


def _insert_and_settle(
    cursor: CursorWrapper, judgment: Judgment, *, read: _SubmitRow, project: Project, now: Any
) -> bool:
    """Insert the judgment, mark its assignment submitted and, for a production judgment,
    mark the item done when this was its k-th (or move its label version when it settles
    the item otherwise); whether the item became done."""
    submitted = [AssignmentStatus.SUBMITTED.value, db.db_now(now), judgment.assignment_id]
    if read.kind in SLOT_KINDS and connection.vendor == "postgresql":
        (done,) = db.insert_row(
            judgment,
            with_sql=f"WITH change AS ({sql.MARK_SUBMITTED}), done AS ({sql.MARK_DONE_WITH_INSERT})",
            with_params=[
                *submitted,
                project.overlap,
                db.db_now(now),
                read.item_id,
                read.item_id,
                project.overlap,
            ],
            also_return=f"(SELECT count(*) FROM done WHERE status = '{ItemStatus.DONE.value}')",
        )
        return bool(done == 1 and read.item_status == ItemStatus.QUEUED)
    db.insert_with_change(judgment, sql.MARK_SUBMITTED, submitted)
    if read.kind not in SLOT_KINDS:
        return False
    params = {"now": db.db_now(now), "item": read.item_id, "overlap": project.overlap}
    cursor.execute(sql.MARK_DONE, params)
    became_done = cursor.rowcount == 1
    if not became_done:
        cursor.execute(sql.BUMP_IF_SETTLED, params)
    return became_done


def judgment_revise(
    *, judgment: Judgment, evaluator: User, value: Any, seconds: float | None = None
) -> Judgment:
    """Add a new revision of the evaluator's own judgment; the old one is kept, not current."""
    if judgment.evaluator_id != evaluator.pk:
        raise PermissionDenied(_("This judgment is not yours."))
    project = judgment.item.project
    clean = judgment_value_validate(task_type=project.task_type, schema=project.schema, value=value)
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=judgment.assignment_id or 0)
        current = Judgment.objects.select_for_update().get(assignment=locked, is_current=True)
        if current.item.status == ItemStatus.FINAL:
            raise ValidationError(_("This item has a final label; it can no longer be revised."))
        if current.value == clean:
            return current
        Judgment.objects.filter(pk=current.pk).update(is_current=False)
        label_versions_bump(items=[current.item_id])
        return Judgment.objects.create(
            item_id=current.item_id,
            assignment=locked,
            evaluator=evaluator,
            kind=current.kind,
            value=clean,
            seconds=float(seconds)
            if isinstance(seconds, int | float) and 0 <= seconds <= MAX_SECONDS_ON_TASK
            else current.seconds,
            guideline_version=project.guideline_version,
            revision=current.revision + 1,
            too_fast=current.too_fast,
        )

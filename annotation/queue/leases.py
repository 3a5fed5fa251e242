"""Leases that end without a judgment: expired ones give their slot back (the sweep every
claim runs first), and a skip gives the item back with a reason.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation import metrics
from annotation.models import Assignment, AssignmentStatus, Item, Project, SkipReason
from annotation.queue import db, sql
from annotation.queue.db import retried_on_deadlock
from annotation.queue.sql import SLOT_KINDS
from annotation.types import User


def expired_sql(*, project: Project | None, now: datetime) -> tuple[str, dict[str, Any]]:
    """`sql.EXPIRED` for one project (or all), and its parameters."""
    project_clause = "AND a.project_id = %(project)s" if project is not None else ""
    params = {"now": db.db_now(now), "project": project.pk if project is not None else None}
    return sql.EXPIRED.format(project=project_clause), params


def queue_expire_leases(*, project: Project | None = None, now: datetime | None = None) -> int:
    """Expire leases past their time and give their production slots back. Returns how many."""
    now = now or timezone.now()
    expired, params = expired_sql(project=project, now=now)
    # Every claim sweeps first, and almost always finds nothing: one unlocked probe, in
    # autocommit, costs one round trip instead of BEGIN, SELECT, COMMIT (a claim asks it
    # together with the evaluator's languages, claim._qualified_and_due). A lease it misses
    # (committed a moment later) is one the locked sweep would have missed then too.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM ({expired} LIMIT 1) AS due", params)
        if cursor.fetchone() is None:
            return 0
    return expire_sweep(project=project, now=now)


@retried_on_deadlock
def expire_sweep(*, project: Project | None, now: datetime) -> int:
    expired, params = expired_sql(project=project, now=now)
    with transaction.atomic(), connection.cursor() as cursor:
        # Lock order: assignments first, then items (as in submit). SKIP LOCKED: a lease
        # being submitted or swept by someone else right now is theirs to settle.
        cursor.execute(expired + sql.lock_clause(skip_locked=True), params)
        rows = cursor.fetchall()
        if not rows:
            return 0
        Assignment.objects.filter(
            pk__in=[r[0] for r in rows], status=AssignmentStatus.LEASED
        ).update(status=AssignmentStatus.EXPIRED)
        slots = Counter(item_id for _, item_id, kind in rows if kind in SLOT_KINDS)
        for item_id in sorted(slots):
            Item.objects.filter(pk=item_id).update(open_slots=F("open_slots") + slots[item_id])
    metrics.LEASE_EXPIRIES.inc(len(rows))
    return len(rows)


def lease_until(project: Project) -> datetime:
    return timezone.now() + timedelta(seconds=project.lease_seconds)


@retried_on_deadlock
def assignment_skip(*, assignment: Assignment, evaluator: User, reason: str) -> Assignment:
    """Give the item back with a reason; this evaluator will not be offered it again."""
    if reason not in SkipReason.values:
        raise ValidationError(
            _("Choose a skip reason: %(reasons)s.")
            % {"reasons": ", ".join(str(c.label) for c in SkipReason)}
        )
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.evaluator_id != evaluator.pk:
            raise PermissionDenied(_("This assignment is not yours."))
        if locked.status != AssignmentStatus.LEASED:
            raise ValidationError(
                _("This item was already %(status)s.") % {"status": locked.get_status_display()}
            )
        locked.status = AssignmentStatus.SKIPPED
        locked.skip_reason = reason
        locked.submitted_at = timezone.now()
        locked.save(update_fields=["status", "skip_reason", "submitted_at"])
        if locked.kind in SLOT_KINDS:
            Item.objects.filter(pk=locked.item_id).update(open_slots=F("open_slots") + 1)
    return locked

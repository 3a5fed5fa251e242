"""Claiming the next item: one short transaction that leases the best claimable item in the
evaluator's qualified languages (or resumes their live lease), mixing in honeypots at the
project's rate. Why it waits at the tail of a queue and never deadlocks:
`_claim_candidate`.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation import metrics
from annotation.languages import language_display_name
from annotation.models import Assignment, AssignmentKind, Item, Language, Project
from annotation.qualification import qualified_languages_sql
from annotation.queue import db, leases, sql
from annotation.queue.db import retried_on_deadlock
from annotation.rows import from_row
from annotation.types import User


class NotQualified(PermissionDenied):
    """The evaluator may not work this project or language."""


_rng = random.SystemRandom()


def _best_language(
    cursor: CursorWrapper, *, params: dict[str, Any], language_ids: list[int]
) -> int | None:
    """The language whose best claimable item ranks highest. The index is ordered inside
    one language, so each language is asked for its best item (an index probe each) and
    the answers are compared, instead of sorting every claimable item of all of them."""
    branches = " UNION ALL ".join(
        sql.BEST_OF_LANGUAGE.format(n=n) for n in range(len(language_ids))
    )
    cursor.execute(
        f"SELECT language_id FROM ({branches}) AS best ORDER BY priority DESC, id LIMIT 1",
        {**params, **{f"language_{n}": pk for n, pk in enumerate(language_ids)}},
    )
    row = cursor.fetchone()
    return row[0] if row else None


class _QueueTail(Exception):
    """Raised inside the claim's transaction when every claimable item left is locked."""


def _claim_candidate(
    cursor: CursorWrapper,
    *,
    evaluator: User,
    project: Project,
    language_ids: list[int],
    tail: bool = False,
) -> Item | None:
    """Lock the next item for this evaluator and return it with its language, or None when
    none waits.

    Concurrent claims skip each other's locked rows instead of queueing behind them. When
    every claimable item left is locked by a claim or submit in flight (the tail of a
    queue), some will still have a slot once those commit: the claim waits for them rather
    than report an empty queue. It must hold no item lock while it waits, and a scan can
    leave one behind: a row it locked whose new version (another claim just took the last
    slot) then no longer qualified stays locked, though not returned, and two claims
    holding such rows while each waits for the other's would deadlock. So the first
    attempt (`tail=False`) never waits: when no language has an unlocked item but some had
    locked ones, it raises _QueueTail, which rolls its transaction back, and the claim runs
    again with `tail=True`: each scan then runs in a savepoint, and rolling back to it
    releases whatever a fruitless scan locked before the waiting scan starts. (Within the
    waiting scan itself a row locked and then passed over can still be held while it waits
    for the next; such a wait against the lease sweep is the rare deadlock that
    `retried_on_deadlock` settles.) The hot path (an unlocked item found at once) pays
    nothing for this.
    """
    params: dict[str, Any] = {"project": project.pk, "evaluator": evaluator.pk}
    can_wait = connection.features.has_select_for_update_skip_locked
    may_wait = False  # a language had no unlocked item; some of its items may be locked
    remaining = list(language_ids)
    while remaining:
        language_id = (
            remaining[0]
            if len(remaining) == 1
            else _best_language(cursor, params=params, language_ids=remaining)
        )
        if language_id is None:
            break
        params["language"] = language_id
        if tail:
            cursor.execute("SAVEPOINT claim_scan")
        cursor.execute(sql.candidate_sql(skip_locked=True), params)
        row = cursor.fetchone()
        if row is None and can_wait:
            if not tail:
                # Another language may still have an unlocked item: try it before waiting.
                may_wait = True
                remaining.remove(language_id)
                continue
            cursor.execute("ROLLBACK TO SAVEPOINT claim_scan")
            cursor.execute(sql.candidate_sql(skip_locked=False), params)
            row = cursor.fetchone()
            if row is None:
                cursor.execute("ROLLBACK TO SAVEPOINT claim_scan")
        if row is not None:
            item, at = from_row(Item, row, 0)
            item.language = from_row(Language, row, at)[0]
            return item
        remaining.remove(language_id)
    if may_wait:
        raise _QueueTail
    return None


def _live_lease_id(
    cursor: CursorWrapper, *, evaluator: User, project: Project, language_ids: list[int]
) -> int | None:
    placeholders = ", ".join(f"%(language_{n})s" for n in range(len(language_ids)))
    cursor.execute(
        sql.LIVE_LEASE.format(languages=placeholders),
        {
            "evaluator": evaluator.pk,
            "project": project.pk,
            "now": db.db_now(timezone.now()),
            **{f"language_{n}": pk for n, pk in enumerate(language_ids)},
        },
    )
    row = cursor.fetchone()
    return row[0] if row else None


def _qualified_and_due(
    *, evaluator: User, project: Project, now: datetime
) -> tuple[list[int], bool]:
    """The languages the evaluator may work in the project, and whether a lease of the
    project is past its time: what every claim asks first, in one round trip (the EXISTS
    is an InitPlan, run once). Only this project's leases: the sweep that follows settles
    this project's only, and another project's would make every claim here start a sweep
    that finds nothing."""
    qualified, params = qualified_languages_sql(evaluator=evaluator, project=project)
    expired, expired_params = leases.expired_sql(project=project, now=now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT q.language_id, EXISTS ({expired}) FROM ({qualified}) AS q",
            {**params, **expired_params},
        )
        rows = cursor.fetchall()
    return [row[0] for row in rows], any(row[1] for row in rows)


def _claim_honeypot(
    *, evaluator: User, project: Project, language_ids: list[int]
) -> Assignment | None:
    seen = Assignment.objects.filter(item=OuterRef("pk"), evaluator=evaluator)
    candidates = (
        Item.objects.filter(
            project=project, language_id__in=language_ids, is_gold=True, gold__isnull=False
        )
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
                lease_expires_at=leases.lease_until(project),
            )
    except IntegrityError:
        return None


def item_claim_next(
    *, evaluator: User, project: Project, language: Language | None = None
) -> Assignment | None:
    """Lease the next item to this evaluator, or return their live lease; None when nothing waits.

    The returned assignment has its item and the item's language loaded.
    Raises NotQualified when the evaluator may not work the project (or that language).
    """
    now = timezone.now()
    language_ids, leases_due = _qualified_and_due(evaluator=evaluator, project=project, now=now)
    if language is not None:
        if language.pk not in language_ids:
            raise NotQualified(
                _("You are not qualified for %(language)s in %(project)s.")
                % {"language": language_display_name(language.tag), "project": project.name}
            )
        language_ids = [language.pk]
    if not language_ids:
        raise NotQualified(
            _("You are not qualified for any language in %(project)s.") % {"project": project.name}
        )

    # Its own short transaction, before the claim: the claim may wait for an item lock at
    # the tail of the queue and must hold none of its own then.
    if leases_due:
        leases.expire_sweep(project=project, now=now)

    try:
        assignment, live_id = _claim_in_transaction(
            evaluator=evaluator, project=project, language_ids=language_ids
        )
    except _QueueTail:
        # All that is left is locked by claims and submits in flight: wait for them.
        assignment, live_id = _claim_in_transaction(
            evaluator=evaluator, project=project, language_ids=language_ids, tail=True
        )
    # A resumed lease or a honeypot: read after the commit, outside the locks, for the card.
    if assignment is None:
        if live_id is None:
            return None
        assignment = Assignment.objects.get(pk=live_id)
    else:
        metrics.CLAIMS.labels(project=project.slug).inc()
    if not Assignment.item.is_cached(assignment):
        assignment.item = db.item_with_language(assignment.item_id)
    assignment.project = project
    assignment.item.project = project
    return assignment


@retried_on_deadlock
def _claim_in_transaction(
    *, evaluator: User, project: Project, language_ids: list[int], tail: bool = False
) -> tuple[Assignment | None, int | None]:
    """The claim's one transaction: (the new assignment, None), (None, the id of the live
    lease to resume) or (None, None) when nothing waits."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One evaluator's claims (two tabs, a double click) run one after the other, so
            # each sees the lease the other took: no second lease, no race into the
            # one-assignment-per-item constraint.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [sql.CLAIM_LOCK_SPACE, evaluator.pk % 2**31],
            )
        live_id = _live_lease_id(
            cursor, evaluator=evaluator, project=project, language_ids=language_ids
        )
        assignment = None
        if live_id is None:
            item = _claim_candidate(
                cursor, evaluator=evaluator, project=project, language_ids=language_ids, tail=tail
            )
            if item is None:
                # No honeypot into an empty queue either: an item that turns up where the
                # queue said "nothing waits" would give itself away as a check.
                return None, None
            # Honeypots arrive at the project's rate, indistinguishable from production items.
            if project.honeypot_rate > 0 and _rng.random() < project.honeypot_rate:
                assignment = _claim_honeypot(
                    evaluator=evaluator, project=project, language_ids=language_ids
                )
            if assignment is None:
                assignment = Assignment(
                    item=item,
                    evaluator=evaluator,
                    project=project,
                    kind=AssignmentKind.PRODUCTION,
                    lease_expires_at=leases.lease_until(project),
                )
                db.insert_with_change(assignment, sql.TAKE_SLOT, [item.pk])
                item.open_slots -= 1
    return assignment, live_id

"""The review queue: claim, lease expiry, skip, submit, revise, honeypot mixing.

Correctness first. Claiming is one short transaction: the highest-priority queued item
in the evaluator's qualified languages that still has an open slot and that this
evaluator has not seen, taken with `SELECT … FOR NO KEY UPDATE SKIP LOCKED LIMIT 1` on
PostgreSQL (SQLite serialises writers, so there the same code is correct, just not
concurrent). One evaluator's own claims run one at a time (a transaction-scoped advisory
lock), so two tabs never hold two leases. Locks are taken in one order — assignment, then
item — everywhere a transaction holds both, and a claim that must wait for an item holds
no other item lock while it waits (see `_claim_candidate`), so claim, submit and lease
expiry do not deadlock; should PostgreSQL still abort one as a deadlock victim, it is run
again (`retried_on_deadlock`). A claim reports an empty queue only when nothing is left:
items that other claims or submits hold locked at that instant are waited for, not
skipped, once nothing unlocked remains.

Invariants (tested under real concurrency on PostgreSQL, tests/concurrency/):
an item never gets more than `overlap` production judgments; an evaluator never sees the
same item twice; an abandoned lease gives its slot back; nothing submitted is lost.

Claim and submit run for every judgment, so their few statements are written in SQL, in
`annotation.queue_sql` (which says why and what they mirror); everything else uses the ORM.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    FloatField,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation import metrics, queue_sql
from annotation.adjudication import adjudication_route
from annotation.label_changes import label_versions_bump
from annotation.languages import language_display_name
from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    ExportMark,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Language,
    Project,
    Selection,
    SkipReason,
)
from annotation.qualification import (
    honeypot_accuracy_update,
    qualified_language_ids,
    qualified_languages_sql,
)
from annotation.queue_sql import QUEUE_KINDS, SLOT_KINDS
from annotation.rows import from_row
from annotation.schema import judgment_value_validate
from annotation.types import User

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


def _claimable_items(
    *, evaluator: User, project: Project, language_ids: list[int]
) -> QuerySet[Item]:
    """What a claim may take (the claim itself runs the same rule as SQL: queue_sql.CLAIMABLE;
    tests/annotation/test_queue_sql.py holds the two to the same answer)."""
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


def queue_counts(*, evaluator: User, project: Project) -> list[QueueCount]:
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


@dataclass
class Progress:
    done_today: int
    left: int  # items still waiting for this evaluator in the language


def evaluator_progress(
    *, evaluator: User, project: Project, language: Language, showing: Assignment | None = None
) -> Progress:
    """What the item card shows: items this evaluator finished today (server day) in the
    project, and how many more wait for them in this language.

    A honeypot card counts as if it had been taken from the pool like a production item
    (which it replaces): otherwise its "left" would be one above the production card's and
    give it away."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    done = Assignment.objects.filter(
        evaluator=evaluator,
        project=project,
        status=AssignmentStatus.SUBMITTED,
        kind__in=QUEUE_KINDS,
        submitted_at__gte=today,
    ).count()
    left = 0
    if language.pk in qualified_language_ids(evaluator=evaluator, project=project):
        left = _claimable_items(
            evaluator=evaluator, project=project, language_ids=[language.pk]
        ).count()
    if (
        showing is not None
        and showing.kind == AssignmentKind.HONEYPOT
        and showing.status == AssignmentStatus.LEASED
    ):
        left = max(left - 1, 0)
    return Progress(done_today=done, left=left)


def assignment_current(*, evaluator: User, project: Project) -> Assignment | None:
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


# Ids a primary key can hold: a larger one from a URL is no assignment (SQLite would fail
# to bind it rather than find nothing).
_MAX_ID = 2**63 - 1


def assignment_with_item(assignment_id: int) -> Assignment | None:
    """The assignment with its item, the item's language and project (one query), or None."""
    if not 0 < assignment_id <= _MAX_ID:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            queue_sql.assignment_with_item_sql(),
            [assignment_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    assignment, at = from_row(Assignment, row, 0)
    item, at = from_row(Item, row, at)
    item.language, at = from_row(Language, row, at)
    item.project = from_row(Project, row, at)[0]
    assignment.item = item
    if assignment.project_id == item.project_id:
        assignment.project = item.project
    return assignment


def assignment_for_evaluator(*, evaluator: User, assignment_id: int) -> Assignment:
    """Fetch an assignment that belongs to this evaluator, with its item, the item's language
    and project (one query); anything else, a missing one included, is refused."""
    assignment = assignment_with_item(assignment_id)
    if assignment is None or assignment.evaluator_id != evaluator.pk:
        raise PermissionDenied(_("This assignment is not yours."))
    return assignment


# ---------------------------------------------------------------------------------------
# The hot path: claim and submit run the statements of annotation.queue_sql
# ---------------------------------------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")

# PostgreSQL aborts one transaction of a lock cycle (deadlock_detected) or of a
# serialisation conflict; it did nothing, so running it again is safe and is what the
# PostgreSQL manual asks of applications. Lock order is kept the same everywhere
# (assignment, then item), so this is a last line of defence, not the plan.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
_ATTEMPTS = 3


def retried_on_deadlock(fn: Callable[P, R]) -> Callable[P, R]:
    """Run `fn` (one transaction of its own) again when the database aborted it as a
    deadlock victim or for a serialisation failure; at most `_ATTEMPTS` times. Inside an
    outer transaction nothing is retried: that transaction is aborted as a whole."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        attempt = 1
        while True:
            try:
                return fn(*args, **kwargs)
            except OperationalError as exc:
                sqlstate = getattr(exc.__cause__, "sqlstate", None)
                if (
                    sqlstate not in _RETRYABLE_SQLSTATES
                    or attempt >= _ATTEMPTS
                    or connection.in_atomic_block
                ):
                    raise
                attempt += 1

    return wrapper


def _db_now(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _aware(value: datetime | str) -> datetime:
    """A datetime read by raw SQL: SQLite gives it naive (in UTC) or as text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return timezone.make_aware(value, UTC) if timezone.is_naive(value) else value


def _best_language(
    cursor: CursorWrapper, *, params: dict[str, Any], language_ids: list[int]
) -> int | None:
    """The language whose best claimable item ranks highest. The index is ordered inside
    one language, so each language is asked for its best item (an index probe each) and
    the answers are compared, instead of sorting every claimable item of all of them."""
    branches = " UNION ALL ".join(
        queue_sql.BEST_OF_LANGUAGE.format(n=n) for n in range(len(language_ids))
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
        cursor.execute(queue_sql.candidate_sql(skip_locked=True), params)
        row = cursor.fetchone()
        if row is None and can_wait:
            if not tail:
                # Another language may still have an unlocked item: try it before waiting.
                may_wait = True
                remaining.remove(language_id)
                continue
            cursor.execute("ROLLBACK TO SAVEPOINT claim_scan")
            cursor.execute(queue_sql.candidate_sql(skip_locked=False), params)
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
        queue_sql.LIVE_LEASE.format(languages=placeholders),
        {
            "evaluator": evaluator.pk,
            "project": project.pk,
            "now": _db_now(timezone.now()),
            **{f"language_{n}": pk for n, pk in enumerate(language_ids)},
        },
    )
    row = cursor.fetchone()
    return row[0] if row else None


def _insert(
    obj: Model, *, with_sql: str = "", with_params: Sequence[Any] = (), also_return: str = ""
) -> tuple[Any, ...]:
    """INSERT one new row, each value prepared by the model's own field as `save()` would.
    `with_sql` (PostgreSQL: `WITH name AS (UPDATE …)`) runs other changes in the same
    statement, one round trip instead of several; `also_return` adds to its RETURNING,
    and those values are returned."""
    meta = obj._meta
    names, values = [], []
    for field in meta.concrete_fields:
        if field.primary_key:
            continue
        value = field.pre_save(obj, True)
        if hasattr(value, "resolve_expression"):
            continue  # a database default (db_default): the column takes it
        names.append(field.column)
        values.append(field.get_db_prep_save(value, connection))
    returning = connection.features.can_return_columns_from_insert
    with connection.cursor() as cursor:
        statement = queue_sql.insert_sql(type(obj), tuple(names), returning)
        if also_return:
            statement += f", {also_return}"
        cursor.execute(
            f"{with_sql} {statement}" if with_sql else statement, [*with_params, *values]
        )
        row = cursor.fetchone() if returning else None
        pk = row[0] if row is not None else cursor.lastrowid
    setattr(obj, meta.pk.attname, pk)
    obj._state.adding = False
    obj._state.db = connection.alias
    return tuple(row[1:]) if row is not None else ()


def _insert_with_change(obj: Model, change: str, params: Sequence[Any]) -> None:
    """`_insert(obj)` and the UPDATE `change`: one statement on PostgreSQL (a data-modifying
    WITH), two elsewhere."""
    if connection.vendor == "postgresql":
        _insert(obj, with_sql=f"WITH change AS ({change})", with_params=params)
        return
    with connection.cursor() as cursor:
        cursor.execute(change, params)
    _insert(obj)


def _item_with_language(item_id: int) -> Item:
    with connection.cursor() as cursor:
        cursor.execute(
            queue_sql.item_with_language_sql(),
            [item_id],
        )
        row = cursor.fetchone()
    item, at = from_row(Item, row, 0)
    item.language = from_row(Language, row, at)[0]
    return item


# ---------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------


def _expired_sql(*, project: Project | None, now: datetime) -> tuple[str, dict[str, Any]]:
    """_EXPIRED for one project (or all), and its parameters."""
    project_clause = "AND a.project_id = %(project)s" if project is not None else ""
    params = {"now": _db_now(now), "project": project.pk if project is not None else None}
    return queue_sql.EXPIRED.format(project=project_clause), params


def queue_expire_leases(*, project: Project | None = None, now: datetime | None = None) -> int:
    """Expire leases past their time and give their production slots back. Returns how many."""
    now = now or timezone.now()
    expired, params = _expired_sql(project=project, now=now)
    # Every claim sweeps first, and almost always finds nothing: one unlocked probe, in
    # autocommit, costs one round trip instead of BEGIN, SELECT, COMMIT (a claim asks it
    # together with the evaluator's languages, _qualified_and_due). A lease it misses
    # (committed a moment later) is one the locked sweep would have missed then too.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM ({expired} LIMIT 1) AS due", params)
        if cursor.fetchone() is None:
            return 0
    return _expire_sweep(project=project, now=now)


@retried_on_deadlock
def _expire_sweep(*, project: Project | None, now: datetime) -> int:
    expired, params = _expired_sql(project=project, now=now)
    with transaction.atomic(), connection.cursor() as cursor:
        # Lock order: assignments first, then items (as in submit). SKIP LOCKED: a lease
        # being submitted or swept by someone else right now is theirs to settle.
        cursor.execute(expired + queue_sql.lock_clause(skip_locked=True), params)
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


def _qualified_and_due(
    *, evaluator: User, project: Project, now: datetime
) -> tuple[list[int], bool]:
    """The languages the evaluator may work in the project, and whether a lease of the
    project is past its time: what every claim asks first, in one round trip (the EXISTS
    is an InitPlan, run once). Only this project's leases: the sweep that follows settles
    this project's only, and another project's would make every claim here start a sweep
    that finds nothing."""
    qualified, params = qualified_languages_sql(evaluator=evaluator, project=project)
    expired, expired_params = _expired_sql(project=project, now=now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT q.language_id, EXISTS ({expired}) FROM ({qualified}) AS q",
            {**params, **expired_params},
        )
        rows = cursor.fetchall()
    return [row[0] for row in rows], any(row[1] for row in rows)


def _lease_until(project: Project) -> datetime:
    return timezone.now() + timedelta(seconds=project.lease_seconds)


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
                lease_expires_at=_lease_until(project),
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
        _expire_sweep(project=project, now=now)

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
        assignment.item = _item_with_language(assignment.item_id)
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
                [queue_sql.CLAIM_LOCK_SPACE, evaluator.pk % 2**31],
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
                    lease_expires_at=_lease_until(project),
                )
                _insert_with_change(assignment, queue_sql.TAKE_SLOT, [item.pk])
                item.open_slots -= 1
    return assignment, live_id


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
        cursor.execute(
            queue_sql.SUBMIT_READ + queue_sql.lock_clause(of="a, i"), {"assignment": assignment.pk}
        )
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
        now = timezone.now()
        if status == AssignmentStatus.EXPIRED and kind in SLOT_KINDS:
            # The slot went back to the pool: take it again if nobody else has.
            if open_slots <= 0 or item_status != ItemStatus.QUEUED:
                raise ValidationError(
                    _("Your time on this item ran out and it went to another evaluator.")
                )
            cursor.execute(queue_sql.TAKE_SLOT, [item_id])
        if spent is None:
            spent = (now - _aware(leased_at)).total_seconds()
        judgment = Judgment(
            item_id=item_id,
            assignment=assignment,
            evaluator=evaluator,
            kind=kind,
            value=value,
            seconds=spent,
            guideline_version=project.guideline_version,
            too_fast=_is_too_fast(
                assignment=assignment, item_id=item_id, project=project, seconds=spent
            ),
            created_at=now,
        )
        submitted = [AssignmentStatus.SUBMITTED.value, _db_now(now), assignment.pk]
        became_done = False
        if kind in SLOT_KINDS and connection.vendor == "postgresql":
            (done,) = _insert(
                judgment,
                with_sql=f"WITH change AS ({queue_sql.MARK_SUBMITTED}), done AS ({queue_sql.MARK_DONE_WITH_INSERT})",
                with_params=[
                    *submitted,
                    project.overlap,
                    _db_now(now),
                    item_id,
                    item_id,
                    project.overlap,
                ],
                also_return=f"(SELECT count(*) FROM done WHERE status = '{ItemStatus.DONE.value}')",
            )
            became_done = done == 1 and item_status == ItemStatus.QUEUED
        else:
            _insert_with_change(judgment, queue_sql.MARK_SUBMITTED, submitted)
            if kind in SLOT_KINDS:
                params = {"now": _db_now(now), "item": item_id, "overlap": project.overlap}
                cursor.execute(queue_sql.MARK_DONE, params)
                became_done = cursor.rowcount == 1
                if not became_done:
                    cursor.execute(queue_sql.BUMP_IF_SETTLED, params)
        if became_done:
            # Judgments that disagree beyond the project rule send the item to adjudication.
            adjudication_route(item_id=item_id, project=project)
    return judgment, kind, language_id


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


def judgments_of_evaluator(
    *, evaluator: User, project: Project | None = None
) -> QuerySet[Judgment]:
    """The evaluator's own current judgments, newest first ("My judgments")."""
    qs = Judgment.objects.filter(
        evaluator=evaluator,
        is_current=True,
        kind__in=[AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT],
    )
    if project is not None:
        qs = qs.filter(item__project=project)
    return qs.select_related("item__language", "item__project").order_by("-created_at", "-id")


def judgment_history(*, judgment: Judgment) -> QuerySet[Judgment]:
    """Every revision of the same assignment, oldest first."""
    if judgment.assignment_id is None:  # a historical judgment has no revisions
        return Judgment.objects.filter(pk=judgment.pk)
    return Judgment.objects.filter(assignment_id=judgment.assignment_id).order_by("revision")


# SQLite: a CASE over the chunk sets each row's priority, so a statement's cost grows with
# rows × chunk; 1,000 per statement keeps that small and far below the 32,766 variables.
_ENQUEUE_SQLITE_CHUNK = 1000


def items_enqueue(
    *, project: Project, item_ids: Sequence[int], priorities: Sequence[float], selection: str
) -> int:
    """Move pool items of the project into the queue, each with its priority and
    `open_slots = project.overlap` (an active-learning round queues its batch here).

    One UPDATE for the whole batch on PostgreSQL (a few, chunked by SQLite's variable
    limit, on SQLite). Only items still in the pool move; if any item is no longer there
    the call raises and, inside the caller's transaction, nothing is queued — a round
    never queues half its batch.
    """
    if selection not in Selection.values:
        raise ValidationError(
            f"unknown selection {selection!r}; use one of {', '.join(Selection.values)}"
        )
    ids = [int(i) for i in item_ids]
    values = [float(p) for p in priorities]
    if len(ids) != len(values):
        raise ValueError("item_ids and priorities must have the same length")
    if len(set(ids)) != len(ids):
        raise ValidationError("an item appears twice in the batch to queue")
    if not ids:
        return 0
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""
                    UPDATE {queue_sql.ITEM} AS item
                    SET status = %s, selection = %s, open_slots = %s, priority = batch.priority, updated_at = %s
                    FROM unnest(%s::bigint[], %s::double precision[]) AS batch(id, priority)
                    WHERE item.id = batch.id AND item.project_id = %s AND item.status = %s AND NOT item.is_gold
                    """,
                    [
                        ItemStatus.QUEUED,
                        selection,
                        project.overlap,
                        now,
                        ids,
                        values,
                        project.pk,
                        ItemStatus.POOL,
                    ],
                )
                updated = cursor.rowcount
        else:
            updated = 0
            for start in range(0, len(ids), _ENQUEUE_SQLITE_CHUNK):
                chunk = list(
                    zip(
                        ids[start : start + _ENQUEUE_SQLITE_CHUNK],
                        values[start : start + _ENQUEUE_SQLITE_CHUNK],
                        strict=True,
                    )
                )
                updated += Item.objects.filter(
                    pk__in=[pk for pk, _ in chunk],
                    project=project,
                    status=ItemStatus.POOL,
                    is_gold=False,
                ).update(
                    status=ItemStatus.QUEUED,
                    selection=selection,
                    open_slots=project.overlap,
                    priority=Case(
                        *(When(pk=pk, then=Value(p)) for pk, p in chunk), output_field=FloatField()
                    ),
                    updated_at=now,
                )
        if updated != len(ids):
            raise ValidationError(
                f"{len(ids) - updated} of the {len(ids)} items are no longer in the pool of project "
                f"{project.slug}; nothing was queued"
            )
    return updated


# ---------------------------------------------------------------------------------------
# Undo of the last submission
# ---------------------------------------------------------------------------------------

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
        # Locks in the queue's order: this evaluator's assignments (by id), then items.
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
        item_ids = sorted({locked.item_id, *(a.item_id for a in released)})
        items = {
            i.pk: i for i in Item.objects.select_for_update().filter(pk__in=item_ids).order_by("pk")
        }
        item = items[locked.item_id]
        moved_on = (
            item.status not in (ItemStatus.QUEUED, ItemStatus.DONE, ItemStatus.ADJUDICATION)
            or FinalLabel.objects.filter(item=item).exists()
            or ExportMark.objects.filter(item=item).exists()
            or Assignment.objects.filter(item=item, kind=AssignmentKind.ADJUDICATION).exists()
        )
        if moved_on:
            raise ValidationError(_("Too late to undo: revise it from My judgments instead."))
        judgments[0].delete()
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

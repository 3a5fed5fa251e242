"""Moving pool items into the queue with their priorities (an active-learning round queues
its batch here).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, FloatField, Value, When
from django.utils import timezone

from annotation.models import Item, ItemStatus, Project, Selection
from annotation.queue import sql

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
        enqueue = _enqueue_postgresql if connection.vendor == "postgresql" else _enqueue_chunked
        updated = enqueue(project=project, ids=ids, values=values, selection=selection, now=now)
        if updated != len(ids):
            raise ValidationError(
                f"{len(ids) - updated} of the {len(ids)} items are no longer in the pool of project "
                f"{project.slug}; nothing was queued"
            )
    return updated


def _enqueue_postgresql(
    *, project: Project, ids: list[int], values: list[float], selection: str, now: datetime
) -> int:
    """One UPDATE for the whole batch, the ids and priorities as two arrays."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {sql.ITEM} AS item
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
        return cursor.rowcount


def _enqueue_chunked(
    *, project: Project, ids: list[int], values: list[float], selection: str, now: datetime
) -> int:
    """An UPDATE per chunk of _ENQUEUE_SQLITE_CHUNK items, a CASE setting each priority."""
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
    return updated

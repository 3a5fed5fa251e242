"""The queue's database plumbing: a transaction run again when PostgreSQL aborts it as a
deadlock victim, and the raw inserts and reads of the hot path (claim and submit), each
value prepared by the model's own fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from django.db import OperationalError, connection
from django.db.models import Model
from django.utils import timezone

from annotation.models import Item, Language
from annotation.queue import sql
from annotation.rows import from_row

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


def db_now(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def aware(value: datetime | str) -> datetime:
    """A datetime read by raw SQL: SQLite gives it naive (in UTC) or as text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return timezone.make_aware(value, UTC) if timezone.is_naive(value) else value


def insert_row(
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
        statement = sql.insert_sql(type(obj), tuple(names), returning)
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


def insert_with_change(obj: Model, change: str, params: Sequence[Any]) -> None:
    """`insert_row(obj)` and the UPDATE `change`: one statement on PostgreSQL (a data-modifying
    WITH), two elsewhere."""
    if connection.vendor == "postgresql":
        insert_row(obj, with_sql=f"WITH change AS ({change})", with_params=params)
        return
    with connection.cursor() as cursor:
        cursor.execute(change, params)
    insert_row(obj)


def item_with_language(item_id: int) -> Item:
    with connection.cursor() as cursor:
        cursor.execute(
            sql.item_with_language_sql(),
            [item_id],
        )
        row = cursor.fetchone()
    item, at = from_row(Item, row, 0)
    item.language = from_row(Language, row, at)[0]
    return item

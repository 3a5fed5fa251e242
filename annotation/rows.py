"""Model instances from hand-written SQL, for the few reads on every request's hot path.

Django's ORM spends most of a small query's cost in Python, compiling the query on every
call: several times what PostgreSQL spends running it (figures in bench/README.md). The handful of reads made on every evaluator request
(the session, the user, the queue's claim and submit) are written out in SQL instead, and
their rows become model instances here, through the models' own fields: `columns` names
them in the model's order, `from_row` converts them as the ORM would (JSON, SQLite's
datetimes). A new column needs no change in the SQL that uses them.

Parity uses one database (the "default" alias): the column lists and converters are
worked out once per model against it, and the SQL runs on `django.db.connection`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar, cast

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)


@cache
def columns(model: type[Model], alias: str) -> str:
    """The model's columns, qualified by `alias`, in the order `from_row` expects."""
    return ", ".join(
        f"{alias}.{connection.ops.quote_name(cast(str, f.column))}"
        for f in model._meta.concrete_fields
    )


def from_row(model: type[M], row: Sequence[Any], start: int = 0) -> tuple[M, int]:
    """The model instance whose columns (from `columns`) begin at row[start], converted as
    the ORM converts them; and where the next model's columns begin."""
    attnames, converters = _row_converters(model)
    values = list(row[start : start + len(attnames)])
    for n, column, convert in converters:
        values[n] = convert(values[n], column, connection)
    return model.from_db(connection.alias, attnames, values), start + len(attnames)


def fetch_one(model: type[M], where: str, params: Sequence[Any]) -> M | None:
    """`SELECT <model's columns> FROM <its table> t WHERE <where>`: the first row as an
    instance, or None. `where` refers to the table as `t`."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns(model, 't')} FROM {table} t WHERE {where}", params)
        row = cursor.fetchone()
    return None if row is None else from_row(model, row)[0]


@cache
def _row_converters(model: type[Model]) -> tuple[list[str], list[tuple[int, Any, Any]]]:
    """The model's field names, and the converters its columns need (asked once per model:
    most columns need none, and asking costs more than converting)."""
    fields = model._meta.concrete_fields
    converters = []
    for n, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        for convert in connection.ops.get_db_converters(column) + field.get_db_converters(
            connection
        ):
            converters.append((n, column, convert))
    return [f.attname for f in fields], converters

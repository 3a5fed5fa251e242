"""Bulk insert of new items with PostgreSQL's COPY, the text format rendered here."""

from __future__ import annotations

import json
from typing import Any, cast

import orjson
from django.db import connection

from annotation.models import Item, Project

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_COPY_ESCAPES)
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False).translate(_COPY_ESCAPES)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot COPY a {type(value).__name__}")


def _json_text(value: Any) -> str:
    # orjson is several times faster than the json module, which stays the fallback for
    # what orjson refuses (an integer beyond 64 bits); PostgreSQL parses either the same.
    try:
        return orjson.dumps(value).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False)


def _copy_converter(field: Any) -> Any:
    """The function that renders this field's values in COPY text format."""
    kind = field.get_internal_type()
    if field.is_relation:
        return lambda v: "\\N" if v is None else str(v.pk)
    if kind in ("CharField", "TextField", "SlugField"):
        return lambda v: (
            "\\N"
            if v is None
            else (
                v.translate(_COPY_ESCAPES)
                if ("\\" in v or "\t" in v or "\n" in v or "\r" in v)
                else v
            )
        )
    if kind == "JSONField":
        return lambda v: "\\N" if v is None else _json_text(v).translate(_COPY_ESCAPES)
    if kind in (
        "FloatField",
        "IntegerField",
        "BigIntegerField",
        "PositiveSmallIntegerField",
        "PositiveIntegerField",
        "SmallIntegerField",
    ):
        return lambda v: "\\N" if v is None else repr(v)
    return _copy_text


def copy_items(project: Project, rows: list[dict[str, Any]]) -> list[int]:
    """Insert items with COPY (PostgreSQL) and return their ids, in order.

    The COPY text is rendered here: building model instances and psycopg's per-value
    adaptation would cost more than the insert. Fields a row does not name get the model
    field's default, as Item(...) would. Ids are drawn from the table's sequence first (COPY
    returns nothing), so the caller has them without reading the rows back.
    """
    table = Item._meta.db_table
    fields = [f for f in Item._meta.concrete_fields if not f.primary_key]
    plan = []
    for f in fields:
        default = _copy_text(project.pk if f.name == "project" else f.get_default())
        plan.append((f.name, _copy_converter(f), default))
    pk = Item._meta.pk.column
    columns = ", ".join(
        connection.ops.quote_name(cast(str, c)) for c in [pk, *(f.column for f in fields)]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, pk, len(rows)],
        )
        ids = [r[0] for r in cursor.fetchall()]
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {connection.ops.quote_name(table)} ({columns}) FROM STDIN"
        ) as copy,
    ):
        lines = []
        for item_id, row in zip(ids, rows, strict=True):
            lines.append(
                str(item_id)
                + "\t"
                + "\t".join(
                    [
                        convert(row[name]) if name in row else default
                        for name, convert, default in plan
                    ]
                )
            )
            if len(lines) >= 500:
                copy.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            copy.write("\n".join(lines) + "\n")
    return ids

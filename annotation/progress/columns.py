"""Columns from a query: the rows of a values_list queryset read in bulk as a frame, and
text columns as integer codes with one sorted name list.

A report over a million judgments cannot afford a Python object per row: on PostgreSQL
the database writes the rows as CSV text (see `query_columns`) that pandas' C reader
parses; elsewhere (SQLite) one fetch.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.db.models.lookups import Exact


def query_columns(qs: QuerySet[Any], names: list[str], text: set[str]) -> pd.DataFrame:
    """The rows of a values_list queryset as a frame with columns `names`; columns in
    `text` are text ("" for NULL), the others numbers (NaN for NULL). The first column
    must be an integer (an id)."""
    sql, params = qs.query.sql_with_params()
    if connection.vendor == "postgresql":
        frame = _postgresql_csv(sql, params, names, text)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            frame = pd.DataFrame.from_records(cursor.fetchall(), columns=names)
    for name in names:
        if name in text:
            frame[name] = _text_category(frame[name])
        elif frame[name].dtype == object:
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def _postgresql_csv(
    sql: str, params: Sequence[Any], names: list[str], text: set[str]
) -> pd.DataFrame:
    """The database writes the rows as CSV text, a few long strings (string_agg over 32
    slices of the ids, each far below a text value's 1 GB limit), and pandas' C reader
    parses them. COPY ... TO STDOUT would write the same CSV but hand it over a row at a
    time, and psycopg's per-row cost is twice the parse. Text is always quoted (a model's
    name may hold a comma or a newline); NULL is an empty field. The slices are joined to
    a 32-row series rather than grouped by mod(id, 32) alone: the planner cannot tell that
    the latter has 32 values, and sorts a million rows to group them."""
    aliases = [f"c{k}" for k in range(len(names))]
    fields = [
        f"coalesce('\"' || replace(q.{alias}::text, '\"', '\"\"') || '\"', '')"
        if name in text
        else f"coalesce(q.{alias}::text, '')"
        for alias, name in zip(aliases, names, strict=True)
    ]
    statement = (
        f"SELECT string_agg(concat_ws(',', {', '.join(fields)}), E'\\n') "  # noqa: S608 - the ORM's query, wrapped
        f"FROM ({sql}) AS q ({', '.join(aliases)}) "
        "JOIN generate_series(0, 31) AS slice (n) ON slice.n = mod(q.c0, 32) GROUP BY slice.n"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        chunks = [row[0] for row in cursor.fetchall() if row[0]]
    if not chunks:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    return pd.read_csv(
        io.StringIO("\n".join(chunks)),
        names=names,
        header=None,
        # Only an empty field is missing: "NA" or "null" is a model's name.
        keep_default_na=False,
        na_values=[""],
        dtype={name: "category" if name in text else "float64" for name in names},
    )


def _text_category(column: pd.Series) -> pd.Series:
    """A text column as a category, "" for a missing value."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object).where(column.notna(), "").astype(str)
        return column.astype("category")
    if column.isna().any():
        if "" not in column.cat.categories:
            column = column.cat.add_categories("")
        column = column.fillna("")
    return column


def code_of(expression: Any, values: Sequence[str]) -> Case:
    """The index of `expression`'s value in `values` (−1 for any other), computed by the
    database: a number is cheaper to write and to read than the text."""
    return Case(
        *(When(Exact(expression, Value(value)), then=Value(k)) for k, value in enumerate(values)),
        default=Value(-1),
        output_field=IntegerField(),
    )


def text_codes(column: pd.Series, *, empty: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Integer codes of a text column and the names they stand for, sorted; "" becomes
    `empty` when given."""
    cat = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
    names = [str(c) for c in cat.cat.categories]
    if empty is not None:
        names = [empty if n == "" else n for n in names]
    codes = cat.cat.codes.to_numpy(dtype=np.int64)
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return (rank[codes] if len(names) else codes), [names[k] for k in order]


def recode(codes: np.ndarray, names: list[str], to: list[str]) -> np.ndarray:
    """Codes into `names` as codes into `to` (every name must be in `to`)."""
    index = {name: k for k, name in enumerate(to)}
    table = np.array([index[name] for name in names], dtype=np.int64)
    return table[codes] if len(table) else np.zeros(len(codes), dtype=np.int64)

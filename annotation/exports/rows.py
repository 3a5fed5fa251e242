"""Reading marked items for an export: one row per item, its votes gathered by the database.

Rows come from a server-side cursor in chunks; on PostgreSQL a helper thread fetches the
next chunk while this one turns the current one into lines, so the database (on one core)
and Python (on another) work at the same time instead of taking turns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, NamedTuple

import orjson
from django.db import connection, transaction

from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    ExportMark,
    FinalLabel,
    Item,
    Judgment,
    Language,
    Project,
)

CHUNK = 2000


class ExportRow(NamedTuple):
    """One marked item as an export reads it."""

    id: int
    external_id: str
    prompt: str
    response: str
    response_a: str
    response_b: str
    model: str
    model_a: str
    model_b: str
    prompt_id: str
    language: str
    status: str
    is_gold: bool
    metadata: Any  # JSON text or a dict; None unless asked for
    reward: float | None
    reward_a: float | None
    reward_b: float | None
    token_logprobs: Any  # JSON text or a list; None unless asked for
    votes: str | None  # "vote:strength" pairs joined by commas
    version: str | None  # the guideline version of the latest counted judgment
    final: Any  # the final label's value (JSON text or a dict), or None


_ITEM_COLUMNS = (
    "external_id",
    "prompt",
    "response",
    "response_a",
    "response_b",
    "model",
    "model_a",
    "model_b",
    "prompt_id",
)


@dataclass(frozen=True)
class Marked:
    """Which marked items a pull streams: the project's marks in (after, upto], of one language or all."""

    project: Project
    after: int
    upto: int
    language: Language | None


def _votes_sql(vote_key: str) -> tuple[str, str]:
    """(FROM-clause addition, its two columns): each marked item's counted judgments as
    one text of "vote:strength" pairs joined by commas (the votes and strengths are
    schema-checked values: choice names, small integers, scores), and the guideline
    version of its latest judgment (the one with the highest id). NULLs when it has none.

    One row per item instead of one per judgment: the votes arrive with their item, so
    nothing is merged in Python, and PostgreSQL builds them while Python writes lines.
    (Plain strings: building JSON per judgment costs PostgreSQL twice as much.)
    """
    kinds = ", ".join(f"'{kind}'" for kind in COUNTED_JUDGMENT_KINDS)
    judgments = connection.ops.quote_name(Judgment._meta.db_table)
    where = f"j.item_id = m.item_id AND j.is_current AND j.kind IN ({kinds})"
    if connection.vendor == "postgresql":
        vote = (
            f"coalesce(j.value ->> '{vote_key}', '') || ':' || coalesce(j.value ->> 'strength', '')"
        )
        # The latest judgment's version without sorting: the largest zero-padded id wins.
        latest = "substr(max(lpad(j.id::text, 19, '0') || j.guideline_version), 20)"
        return (
            f"LEFT JOIN LATERAL (SELECT string_agg({vote}, ',') AS votes, {latest} AS version "
            f"FROM {judgments} j WHERE {where}) v ON true",
            "v.votes, v.version",
        )
    # SQLite has no LATERAL: two correlated subqueries.
    vote = (
        f"coalesce(json_extract(j.value, '$.{vote_key}'), '') || ':' || "
        "coalesce(json_extract(j.value, '$.strength'), '')"
    )
    latest = "substr(max(printf('%%019d', j.id) || j.guideline_version), 20)"  # %% for the placeholder style
    return "", (
        f"(SELECT group_concat({vote}, ',') FROM {judgments} j WHERE {where}), "
        f"(SELECT {latest} FROM {judgments} j WHERE {where})"
    )


_TEXT_COLUMNS = frozenset({"prompt", "response", "response_a", "response_b"})


def marked_rows(
    marked: Marked,
    *,
    vote_key: str,
    order_by: str,
    metadata: bool = False,
    signals: bool = False,
    texts: bool = True,
    prompt: bool = True,
) -> Iterator[ExportRow]:
    """An ExportRow for each marked item, in `order_by` order (over `m` the marks and `i`
    the items), from one server-side cursor. `texts=False` leaves the responses empty (and
    the prompt too unless `prompt`): what decides whether an item has a line without
    writing it (retractions) reads no text."""
    q = connection.ops.quote_name
    selected = ", ".join(
        f"i.{q(c)}"
        if texts or c not in _TEXT_COLUMNS or (prompt and c == "prompt")
        else f"'' AS {q(c)}"
        for c in _ITEM_COLUMNS
    )
    join, votes = _votes_sql(vote_key)
    signal_columns = (
        "i.reward, i.reward_a, i.reward_b, i.token_logprobs"
        if signals
        else "NULL, NULL, NULL, NULL"
    )
    sql = (
        f"SELECT m.item_id, {selected}, l.tag, i.status, i.is_gold, "  # noqa: S608 - names, not values
        f"{'i.metadata' if metadata else 'NULL'}, {signal_columns}, {votes}, f.value "
        f"FROM {q(ExportMark._meta.db_table)} m "
        f"JOIN {q(Item._meta.db_table)} i ON i.id = m.item_id "
        f"JOIN {q(Language._meta.db_table)} l ON l.id = i.language_id "
        f"{join} "
        f"LEFT JOIN {q(FinalLabel._meta.db_table)} f ON f.item_id = m.item_id "
        "WHERE m.project_id = %s AND m.id > %s AND m.id <= %s"
    )
    params: list[Any] = [marked.project.pk, marked.after, marked.upto]
    if marked.language is not None:
        sql += " AND i.language_id = %s"
        params.append(marked.language.pk)
    return _as_rows(prefetched(f"{sql} ORDER BY {order_by}", params))


def _as_rows(rows: Iterator[tuple[Any, ...]]) -> Iterator[ExportRow]:
    make = ExportRow._make
    with closed_after(rows):
        for row in rows:
            yield make(row)


def export_cursor_plan() -> None:
    """Plan the server-side cursors of the current transaction as an export reads them
    (PostgreSQL; nothing elsewhere). Every export cursor is declared after this, inside
    the export's transaction (`in_transaction`)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        # No JIT compilation: it costs more than it saves on a walk of an index.
        cursor.execute("SET LOCAL jit = off")
        # Plan the cursor for its whole result, not a fast first row (PostgreSQL's default
        # plans a cursor for its first tenth): right after an import, stale statistics
        # made the fast-start plan (walk every judgment or mark in id order, filter by
        # project) many times slower than reading the project's rows and sorting them.
        cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")


def prefetched(sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql`, fetched CHUNK at a time from a server-side cursor.

    On PostgreSQL a helper thread fetches the next chunk while this one works on the
    current chunk. The helper is the only user of the connection until it stops, which it
    does at the end of the rows, on an error (raised here) or when the consumer stops early
    (a client that went away).
    """
    export_cursor_plan()
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        if connection.vendor != "postgresql":
            while rows := cursor.fetchmany(CHUNK):
                yield from rows
            return
        chunks: SimpleQueue[list[tuple[Any, ...]] | BaseException] = SimpleQueue()
        wanted = threading.Semaphore(2)  # chunks fetched ahead, at most
        stop = threading.Event()

        def fetch() -> None:
            try:
                while True:
                    wanted.acquire()
                    if stop.is_set():
                        return
                    rows = cursor.fetchmany(CHUNK)
                    chunks.put(rows)
                    if not rows:
                        return
            except BaseException as exc:  # handed to the consumer, which raises it
                chunks.put(exc)

        helper = threading.Thread(target=fetch, name="parity-export-fetch", daemon=True)
        helper.start()
        try:
            while True:
                rows = chunks.get()
                if isinstance(rows, BaseException):
                    raise rows
                if not rows:
                    return
                wanted.release()
                yield from rows
        finally:
            stop.set()
            wanted.release()
            helper.join()


def in_transaction(rows: Iterator[Any]) -> Iterator[Any]:
    """The rows, read inside one transaction.

    Outside a transaction Django declares its server-side cursors WITH HOLD, and
    PostgreSQL then materialises each whole result before handing over the first row.
    Inside one the rows stream as the query produces them, all from one snapshot. The rows
    are closed before the transaction ends, however it ends.
    """
    with transaction.atomic(), closed_after(rows):
        yield from rows


def closed_after(rows: Iterable[Any]) -> AbstractContextManager[Any]:
    """Close a generator of rows on leaving the block, however it is left. A generator that
    is only dropped is closed when the last reference to it goes, which an exception's
    traceback can delay: its cursor, its fetching thread and its transaction would wait."""
    return closing(rows) if hasattr(rows, "close") else nullcontext()


def chunks_of(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def json_value(value: Any) -> Any:
    """A JSON column read by raw SQL: text (PostgreSQL's jsonb, SQLite) or None."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value

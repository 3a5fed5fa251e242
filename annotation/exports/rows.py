"""Reading marked items for an export: one row per item, what decides its label read from
its mark (the votes gathered by the database when it was marked), its texts from the item.

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
    Item,
    Judgment,
    Language,
    Project,
    TaskType,
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
    """Which marked items a pull streams: the project's marks above `after`, of one
    language or all. `upto` is the pull's cursor, the last mark its own marking made; the
    rows are every mark above `after` when they start streaming (one statement, one
    snapshot: each item once), so an item the sweep or another pull marked again between
    this pull's marking and its rows comes with its newer line instead of missing from a
    full pull. A pull from `upto` delivers it again, which an upsert by item_id absorbs."""

    project: Project
    after: int
    upto: int
    language: Language | None


VOTE_KEYS = {TaskType.PAIRWISE: "choice", TaskType.RATING: "score"}


def votes_sql(task_type: str, *, item: str) -> tuple[str, str]:
    """(FROM-clause addition, its two columns) for the item whose id is the expression
    `item`: its counted judgments as one text of "vote:strength" pairs joined by commas
    (the votes and strengths are schema-checked values: choice names, small integers,
    scores), and the guideline version of its latest judgment (the one with the highest
    id). NULLs when it has none. The vote is the judgments' "choice" (pairwise) or "score"
    (rating); other task types have no preference lines and no votes here.

    One row per item instead of one per judgment: the votes arrive with their item, so
    nothing is merged in Python. (Plain strings: building JSON per judgment costs
    PostgreSQL twice as much.) The export's marking stores them in each mark (ExportMark.votes).
    """
    vote_key = VOTE_KEYS.get(task_type)
    if vote_key is None:
        return "", "NULL AS votes, NULL AS version"
    kinds = ", ".join(f"'{kind}'" for kind in COUNTED_JUDGMENT_KINDS)
    judgments = connection.ops.quote_name(Judgment._meta.db_table)
    where = f"j.item_id = {item} AND j.is_current AND j.kind IN ({kinds})"
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
        f"(SELECT group_concat({vote}, ',') FROM {judgments} j WHERE {where}) AS votes, "
        f"(SELECT {latest} FROM {judgments} j WHERE {where}) AS version"
    )


_TEXT_COLUMNS = frozenset({"prompt", "response", "response_a", "response_b"})
# Stored in the mark itself (see ExportMark): read from there, not from the item.
_MARKED_COLUMNS = frozenset({"external_id", "prompt_id"})


def marked_rows(
    marked: Marked,
    *,
    order_by: str,
    metadata: bool = False,
    signals: bool = False,
    texts: bool = True,
    prompt: bool = True,
) -> Iterator[ExportRow]:
    """An ExportRow for each marked item, in `order_by` order (over `m`, the marks), from
    one server-side cursor. What decides the item's label (status, gold, votes, final
    label) comes from its mark (ExportMark), as it was when marked.

    `texts=False` leaves the responses empty (and the prompt too unless `prompt`): what
    decides whether an item has a line without writing it (retractions) then reads the
    marks alone, not the items."""
    q = connection.ops.quote_name
    from_item = texts or metadata or signals or prompt

    def column(c: str) -> str:
        if c in _MARKED_COLUMNS:
            return f"m.{q(c)}"
        if texts or c not in _TEXT_COLUMNS or (prompt and c == "prompt"):
            return f"i.{q(c)}" if from_item else f"'' AS {q(c)}"
        return f"'' AS {q(c)}"

    selected = ", ".join(column(c) for c in _ITEM_COLUMNS)
    signal_columns = (
        "i.reward, i.reward_a, i.reward_b, i.token_logprobs"
        if signals
        else "NULL, NULL, NULL, NULL"
    )
    # Without the texts (retractions), a deleted item's tombstone has no item row and must
    # still come: its retraction. With them (lines), it has no line to come for.
    item_join = (
        f"{'' if texts else 'LEFT '}JOIN {q(Item._meta.db_table)} i ON i.id = m.item_id "
        if from_item
        else ""
    )
    sql = (
        f"SELECT m.item_id, {selected}, l.tag, m.status, m.is_gold, "  # noqa: S608 - names, not values
        f"{'i.metadata' if metadata else 'NULL'}, {signal_columns}, m.votes, m.version, m.final "
        f"FROM {q(ExportMark._meta.db_table)} m "
        f"{item_join}"
        f"JOIN {q(Language._meta.db_table)} l ON l.id = m.language_id "
        "WHERE m.project_id = %s AND m.id > %s"
    )
    params: list[Any] = [marked.project.pk, marked.after]
    if marked.language is not None:
        sql += " AND m.language_id = %s"
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

"""Preference and raw judgment exports, their streaming writers, and the data card.

Exports stream with constant memory: rows come from a server-side cursor in chunks, and
the writers yield bytes as they go (JSON Lines in blocks of lines, Parquet one row group
at a time, CSV in blocks). A preference export reads one row per item, its judgments'
votes already gathered by the database, and labels it in Python; on PostgreSQL a helper
thread fetches the next chunk meanwhile, so the database and Python work at the same time.

Which pairs a pull contains, and the `since` cursor
---------------------------------------------------
An item becomes exportable once its label is settled: it has a final label
(adjudication), or it is `done` (k production judgments), or it has at least k current
production/historical judgments — and it is not waiting for adjudication. Gold items
(honeypots, calibration) never are. Each export first *marks* the items that became
exportable since the last export (`ExportMark`, one row per item, assigned under a
per-project lock) and then streams the marks above `since` up to the new cursor. Mark ids
grow in commit order within a project, so successive pulls with the returned cursor see
every pair exactly once, however judgments and exports interleave. A pair is exported
when it first becomes final; an adjudication that changes it later shows in a full pull
(no `since`), not in an incremental one.

Rating projects export pairs, not items: responses to the same prompt (same `prompt_id`
and language) are paired best against worst by aggregated score, with the margin. A
prompt's responses are marked together once all of them are exportable.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from datetime import datetime
from queue import SimpleQueue
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from annotation.agreement import agreement_report, dawid_skene_choices
from annotation.audit import audit_record
from annotation.labels import ItemLabel, LabelRule, item_label
from annotation.languages import language_tag_normalize
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    ApiToken,
    ExportMark,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Language,
    Project,
    TaskType,
)

METHODS = ("majority", "dawid_skene")
STYLES = ("standard", "conversational")
PREFERENCE_FORMATS = ("jsonl", "parquet")
JUDGMENT_FORMATS = ("jsonl", "csv")
CHUNK = 2000
ROW_GROUP_ROWS = 20_000
LINES_PER_WRITE = 500
CURSOR_PREFIX = "c1."

# The preference line, in column order (both styles; `prompt`, `chosen`, `rejected` are
# strings in the standard style and role/content message lists in the conversational one).
PREFERENCE_COLUMNS = (
    "prompt", "chosen", "rejected", "language", "item_id", "n_judgments", "agreement",
    "guideline_version", "model_chosen", "model_rejected", "margin", "tie", "label_source",
    "chosen_item_id", "rejected_item_id",
)
JUDGMENT_COLUMNS = (
    "judgment_id", "item_id", "language", "rater", "rater_type", "kind", "value", "seconds",
    "guideline_version", "revision", "too_fast", "created_at",
)


# ---------------------------------------------------------------------------------------
# The `since` cursor
# ---------------------------------------------------------------------------------------


def export_cursor_encode(*, project: Project, seq: int) -> str:
    raw = f"{project.pk}:{seq}".encode("ascii")
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def export_cursor_decode(*, project: Project, cursor: str) -> int:
    """The mark id a cursor stands for; ValidationError for anything this project did not hand out."""
    bad = ValidationError({"since": ["is not a cursor from an earlier export of this project; omit it for a full export"]})
    if not isinstance(cursor, str) or not cursor.startswith(CURSOR_PREFIX) or len(cursor) > 100:
        raise bad
    body = cursor[len(CURSOR_PREFIX):]
    try:
        project_id, seq = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii").split(":")
        if int(project_id) != project.pk or int(seq) < 0:
            raise bad
        return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None


# ---------------------------------------------------------------------------------------
# Which items are exportable, and marking them
# ---------------------------------------------------------------------------------------


def _settled(qs: QuerySet[Item], *, project: Project, among: QuerySet[Item] | None = None) -> tuple[QuerySet[Item], Q]:
    """The queryset, and the condition for an item whose label is settled.

    The judgment counts come from one grouped pass over the project's judgments (a hashed
    IN list), not a count per item: the difference between seconds and minutes for a
    million items. `among`: only items of this queryset are asked about, so only their
    judgments are counted.
    """
    judgments = Judgment.objects.filter(is_current=True, kind__in=COUNTED_JUDGMENT_KINDS)
    judgments = judgments.filter(item__in=among) if among is not None else judgments.filter(item__project=project)
    counted = (
        judgments
        .order_by()
        .values("item_id")
        # COUNT(*), not COUNT(id): the partial index of current judgments answers it alone
        # (an index-only scan), without reading each judgment's row.
        .annotate(n=Count("*"))
        .filter(n__gte=project.overlap)
        .values("item_id")
    )
    finals = FinalLabel.objects.filter(item__project=project).values("item_id")
    settled = Q(pk__in=finals) | (
        ~Q(status=ItemStatus.ADJUDICATION)
        & (Q(status__in=[ItemStatus.DONE, ItemStatus.FINAL]) | Q(pk__in=counted))
    )
    return qs, settled


def exportable_items(*, project: Project) -> QuerySet[Item]:
    """Items of the project whose label is settled and that have no export mark yet."""
    unmarked = Item.objects.filter(project=project, is_gold=False).exclude(
        Exists(ExportMark.objects.filter(item=OuterRef("pk")))
    )
    # Only the unmarked items' judgments are counted: a pull with nothing new (every item
    # marked) then counts none, where counting all of them took 3.8 of its 5.5 s at a
    # million items.
    qs, settled = _settled(unmarked, project=project, among=unmarked.values("pk"))
    qs = qs.filter(settled)
    if project.task_type != TaskType.RATING:
        return qs
    # A prompt's responses are paired together: mark them once none of them is still open.
    siblings = Item.objects.filter(
        project=project, prompt_id=OuterRef("prompt_id"), language_id=OuterRef("language_id"), is_gold=False
    )
    open_siblings, sibling_settled = _settled(siblings, project=project)
    return (
        qs.exclude(prompt_id="")
        .filter(Exists(siblings.exclude(pk=OuterRef("pk"))))
        .exclude(Exists(open_siblings.exclude(sibling_settled)))
    )


def export_marks_advance(*, project: Project) -> int:
    """Mark what became exportable since the last export; returns the project's latest mark id.

    Under a lock on the project row two exports of one project never mark at the same
    time, so mark ids grow in commit order (see the module docstring). The candidates are
    collected before the insert: an INSERT that anti-joins the table it writes to makes
    PostgreSQL rescan the growing table for every row.
    """
    with transaction.atomic():
        # NO KEY: claims and submits insert rows that reference the project, and their
        # foreign-key checks (FOR KEY SHARE) must not wait for an export to finish marking.
        list(Project.objects.select_for_update(no_key=True).filter(pk=project.pk).values_list("pk"))
        candidates = exportable_items(project=project).order_by().values_list("id")
        sql, params = candidates.query.sql_with_params()
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        table = connection.ops.quote_name(ExportMark._meta.db_table)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # The judgment counts of a large project must fit in memory as a hash; with the
                # default 4 MB PostgreSQL falls back to re-running the grouped count per item
                # (minutes at a million items instead of seconds). Local to this transaction.
                cursor.execute("SET LOCAL work_mem = '256MB'")
                # A parallel plan has every worker build that hash again (one grouped count
                # per process): at 300,000 items 2.8 s against 1.7 s without workers.
                cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                # JIT compiling this plan took 0.7 s of a 7 s marking at a million items and
                # saved less: the work is index walks and hashing, not expressions.
                cursor.execute("SET LOCAL jit = off")
            cursor.execute("DROP TABLE IF EXISTS parity_export_candidates")
            cursor.execute(f"CREATE TEMPORARY TABLE parity_export_candidates AS {sql}", params)
            cursor.execute(
                f"INSERT INTO {table} (project_id, item_id, created_at) "  # noqa: S608 - names from the model, values bound
                "SELECT %s, id, %s FROM parity_export_candidates ORDER BY id",
                [project.pk, now],
            )
            marked = cursor.rowcount
            cursor.execute("DROP TABLE parity_export_candidates")
            if marked > 10_000 and connection.vendor == "postgresql":
                # Fresh statistics keep the next pull's anti-join on the index.
                cursor.execute(f"ANALYZE {table}")
        return ExportMark.objects.filter(project=project).aggregate(m=Max("id"))["m"] or 0


# ---------------------------------------------------------------------------------------
# Preference export
# ---------------------------------------------------------------------------------------


@dataclass
class PreferenceExport:
    """A started export: `cursor` goes into the next pull's `since`; `rows` streams the lines."""

    cursor: str
    rows: Iterator[dict[str, Any]]
    style: str


def _project_language(*, project: Project, tag: str | None, field: str = "language") -> Language | None:
    if tag in (None, ""):
        return None
    try:
        normal = language_tag_normalize(tag)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from None
    language = project.languages.filter(tag=normal).first()
    if language is None:
        raise ValidationError({field: [f"{normal!r} is not a language of project {project.slug}"]})
    return language


def preference_export(
    *,
    project: Project,
    method: str = "majority",
    language: str | None = None,
    min_agreement: float | None = None,
    since: str | None = None,
    exclude_ties: bool = True,
    style: str = "standard",
    actor: Any = None,
    token: ApiToken | None = None,
) -> PreferenceExport:
    """Start a preference export; ValidationError (by field) for bad options, before any write."""
    if method not in METHODS:
        raise ValidationError({"method": [f"must be one of {', '.join(METHODS)}"]})
    if style not in STYLES:
        raise ValidationError({"style": [f"must be one of {', '.join(STYLES)}"]})
    if min_agreement is not None and not 0.0 <= min_agreement <= 1.0:
        raise ValidationError({"min_agreement": ["must be between 0 and 1"]})
    if method == "dawid_skene" and project.task_type == TaskType.RATING:
        raise ValidationError({"method": ["ratings aggregate by the median (majority); dawid_skene is for pairwise choices"]})
    if project.task_type == TaskType.LABELS:
        raise ValidationError(
            "a labels project has no preference pairs; use the judgment export (export/judgments/)"
        )
    lang = _project_language(project=project, tag=language)
    after = export_cursor_decode(project=project, cursor=since) if since else 0
    upto = export_marks_advance(project=project)
    upto = max(upto, after)
    audit_record(
        verb="export.preferences",
        actor=actor,
        token=token,
        project=project,
        data={"method": method, "language": lang.tag if lang else None, "min_agreement": min_agreement,
              "since": after, "upto": upto, "style": style, "exclude_ties": exclude_ties},
    )
    marked = _Marked(project=project, after=after, upto=upto, language=lang)
    rows = _preference_lines(marked, method=method, min_agreement=min_agreement, exclude_ties=exclude_ties,
                             style=style)
    return PreferenceExport(
        cursor=export_cursor_encode(project=project, seq=upto), rows=_in_transaction(rows), style=style
    )


def _in_transaction(rows: Iterator[Any]) -> Iterator[Any]:
    """The rows, read inside one transaction.

    Outside a transaction Django declares its server-side cursors WITH HOLD, and
    PostgreSQL then materialises each whole result before handing over the first row
    (over a second at 300,000 items, and the copy on the server's disk). Inside one the
    rows stream as the query produces them, all from one snapshot. The rows are closed
    before the transaction ends, however it ends.
    """
    with transaction.atomic(), _closed_after(rows):
        yield from rows


def _closed_after(rows: Iterable[Any]) -> AbstractContextManager[Any]:
    """Close a generator of rows on leaving the block, however it is left. A generator that
    is only dropped is closed when the last reference to it goes, which an exception's
    traceback can delay: its cursor, its fetching thread and its transaction would wait."""
    return closing(rows) if hasattr(rows, "close") else nullcontext()


def _chunks(rows: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# The item columns each task type's pairs are built from, in the order rows carry them
# (after the item id; the metadata, the votes and the final label follow).
_PAIRWISE_COLUMNS = ("external_id", "prompt", "response_a", "response_b", "model_a", "model_b")
_RATING_COLUMNS = ("external_id", "prompt", "response", "model", "prompt_id")


@dataclass(frozen=True)
class _Marked:
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
    (Plain strings: building JSON per judgment cost PostgreSQL twice as much.)
    """
    kinds = ", ".join(f"'{kind}'" for kind in COUNTED_JUDGMENT_KINDS)
    where = f"j.item_id = m.item_id AND j.is_current AND j.kind IN ({kinds})"
    if connection.vendor == "postgresql":
        vote = f"coalesce(j.value ->> '{vote_key}', '') || ':' || coalesce(j.value ->> 'strength', '')"
        # The latest judgment's version without sorting: the largest zero-padded id wins.
        latest = "substr(max(lpad(j.id::text, 19, '0') || j.guideline_version), 20)"
        return (
            f"LEFT JOIN LATERAL (SELECT string_agg({vote}, ',') AS votes, {latest} AS version "
            f"FROM annotation_judgment j WHERE {where}) v ON true",
            "v.votes, v.version",
        )
    # SQLite has no LATERAL: two correlated subqueries.
    vote = (f"coalesce(json_extract(j.value, '$.{vote_key}'), '') || ':' || "
            "coalesce(json_extract(j.value, '$.strength'), '')")
    latest = "substr(max(printf('%%019d', j.id) || j.guideline_version), 20)"  # %% for the placeholder style
    return "", (
        f"(SELECT group_concat({vote}, ',') FROM annotation_judgment j WHERE {where}), "
        f"(SELECT {latest} FROM annotation_judgment j WHERE {where})"
    )


def _marked_rows(marked: _Marked, *, columns: tuple[str, ...], metadata: bool, vote_key: str,
                 order_by: str) -> Iterator[tuple[Any, ...]]:
    """(item id, *columns, language tag, metadata or None, votes, latest guideline
    version, final label) for each marked item, in `order_by` order, from one
    server-side cursor."""
    selected = ", ".join(f"i.{connection.ops.quote_name(c)}" for c in columns)
    join, votes = _votes_sql(vote_key)
    sql = (
        f"SELECT m.item_id, {selected}, l.tag, {'i.metadata' if metadata else 'NULL'}, "  # noqa: S608 - names, not values
        f"{votes}, f.value "
        "FROM annotation_exportmark m "
        "JOIN annotation_item i ON i.id = m.item_id "
        "JOIN annotation_language l ON l.id = i.language_id "
        f"{join} "
        "LEFT JOIN annotation_finallabel f ON f.item_id = m.item_id "
        "WHERE m.project_id = %s AND m.id > %s AND m.id <= %s"
    )
    params: list[Any] = [marked.project.pk, marked.after, marked.upto]
    if marked.language is not None:
        sql += " AND i.language_id = %s"
        params.append(marked.language.pk)
    return _prefetched(f"{sql} ORDER BY {order_by}", params)


def _prefetched(sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql`, fetched CHUNK at a time from a server-side cursor.

    On PostgreSQL a helper thread fetches the next chunk while this one turns the current
    chunk into lines, so the database's work (on one core) and Python's (on another)
    overlap instead of taking turns. The helper is the only user of the connection until
    it stops, which it does at the end of the rows, on an error (raised here) or when
    the consumer stops early (a client that went away).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # No JIT compilation: it costs more than it saves on a walk of an index.
            cursor.execute("SET LOCAL jit = off")
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


def _labelled(rows: Iterator[tuple[Any, ...]], *, project: Project,
              method: str) -> Iterator[tuple[tuple[Any, ...], ItemLabel | None, str]]:
    """(row, its item's label or None, its latest guideline version) for each row of
    `_marked_rows` (votes, version and final label last)."""
    fitted = None
    if method == "dawid_skene":
        # Dawid–Skene weighs each rater by their reliability over the whole project, so
        # it is fitted once, before the first row; only its choice per item stays in
        # memory (two arrays), and each line is built from its row's votes as below.
        fitted = dawid_skene_choices(project=project)
    rule = LabelRule.of(project)
    for row in rows:
        # "a:2,a:1,b:" → [["a", "2"], ["a", "1"], ["b", ""]]
        votes = [vote.split(":") for vote in row[-3].split(",")] if row[-3] else ()
        # An item judged after the fit has no fitted choice: its votes' majority labels it.
        choice = fitted.get(row[0]) if fitted is not None else None
        label = item_label(rule=rule, votes=votes, final=_json(row[-1]), choice=choice)
        yield row, label, row[-2] or ""


def _json(value: Any) -> Any:
    """A JSON column read by raw SQL: text (PostgreSQL's jsonb, SQLite) or None."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _messages(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def _prompt_messages(prompt: str, metadata: dict[str, Any] | None) -> list[dict[str, str]]:
    # User reports keep the whole conversation; its turns are the prompt.
    conversation = (metadata or {}).get("conversation")
    if isinstance(conversation, list) and conversation and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in conversation
    ):
        turns = [{"role": m["role"], "content": m["content"]} for m in conversation]
        if turns[-1]["role"] == "assistant":
            turns = turns[:-1]
        if turns:
            return turns
    return _messages("user", prompt)


def _line(*, style: str, prompt: str, chosen: str, rejected: str, metadata: dict[str, Any] | None = None,
          **rest: Any) -> dict[str, Any]:
    if style == "conversational":
        line = {
            "prompt": _prompt_messages(prompt, metadata),
            "chosen": _messages("assistant", chosen),
            "rejected": _messages("assistant", rejected),
        }
    else:
        line = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    line.update(rest)
    return line


def _passes(label: ItemLabel, min_agreement: float | None) -> bool:
    # Adjudicated labels settled the disagreement; min_agreement filters aggregates only.
    if min_agreement is None or label.source == "final":
        return True
    return label.agreement is not None and label.agreement >= min_agreement


def _preference_lines(marked: _Marked, *, method: str, min_agreement: float | None, exclude_ties: bool,
                      style: str) -> Iterator[dict[str, Any]]:
    """The marked items' preference lines, from one cursor that is closed here, whatever raised."""
    options = {"marked": marked, "method": method, "min_agreement": min_agreement, "exclude_ties": exclude_ties,
               "style": style}
    conversational = style == "conversational"
    if marked.project.task_type == TaskType.PAIRWISE:
        # In mark order: the marks' primary key streams the rows with no sort.
        rows = _marked_rows(marked, columns=_PAIRWISE_COLUMNS, metadata=conversational, vote_key="choice",
                            order_by="m.id")
        lines = _pairwise_lines(rows, **options)
    else:
        # A prompt's responses come together: sorted by language and prompt.
        rows = _marked_rows(marked, columns=_RATING_COLUMNS, metadata=conversational, vote_key="score",
                            order_by="i.language_id, i.prompt_id, m.item_id")
        lines = _rating_lines(rows, **options)
    with closing(rows):  # the cursor and its fetching thread end here
        yield from lines


def _pairwise_lines(rows: Iterator[tuple[Any, ...]], *, marked: _Marked, method: str, min_agreement: float | None,
                    exclude_ties: bool, style: str) -> Iterator[dict[str, Any]]:
    conversational = style == "conversational"
    # row: item id, external id, prompt, response a, response b, model a, model b, tag, metadata, …
    for row, label, version in _labelled(rows, project=marked.project, method=method):
        if label is None:
            continue
        choice = label.value.get("choice")
        if choice == "both_bad" or (choice == "tie" and exclude_ties) or choice not in ("a", "b", "tie"):
            continue
        if not _passes(label, min_agreement):
            continue
        if choice == "b":
            chosen, rejected, model_chosen, model_rejected = row[4], row[3], row[6], row[5]
        else:
            chosen, rejected, model_chosen, model_rejected = row[3], row[4], row[5], row[6]
        # The line as _line builds it, written out in one literal: this runs once per pair.
        if conversational:
            prompt = _prompt_messages(row[2], _json(row[8]))
            chosen, rejected = _messages("assistant", chosen), _messages("assistant", rejected)
        else:
            prompt = row[2]
        line = {
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "language": row[7],
            "item_id": row[1],
            "n_judgments": label.n_judgments,
            "agreement": label.agreement,
            "guideline_version": version,
            "model_chosen": model_chosen,
            "model_rejected": model_rejected,
            "margin": float(label.value.get("strength", 1)) if choice != "tie" else 0.0,
            "tie": choice == "tie",
            "label_source": label.source,
            "chosen_item_id": row[1],
            "rejected_item_id": row[1],
        }
        yield line


def _score(label: Any) -> float | None:
    """The aggregated rating: the final label's score, else the mean of the judgments."""
    if label is None:
        return None
    if label.source != "final" and label.mean is not None:
        return float(label.mean)
    score = label.value.get("score")
    return float(score) if isinstance(score, int | float) else None


def _rating_lines(rows: Iterator[tuple[Any, ...]], *, marked: _Marked, method: str, min_agreement: float | None,
                  exclude_ties: bool, style: str) -> Iterator[dict[str, Any]]:
    # row: item id, external id, prompt, response, model, prompt id, tag, metadata, …
    group: list[tuple[tuple[Any, ...], Any, str]] = []
    key: tuple[str, str] | None = None
    for row, label, version in _labelled(rows, project=marked.project, method=method):
        if (row[6], row[5]) != key:
            if group:
                line = _rating_pair(group, style=style, min_agreement=min_agreement, exclude_ties=exclude_ties)
                if line is not None:
                    yield line
            group, key = [], (row[6], row[5])
        group.append((row, label, version))
    if group:
        line = _rating_pair(group, style=style, min_agreement=min_agreement, exclude_ties=exclude_ties)
        if line is not None:
            yield line


def _rating_pair(group: list[tuple[tuple[Any, ...], Any, str]], *, style: str, min_agreement: float | None,
                 exclude_ties: bool) -> dict[str, Any] | None:
    """Best against worst response of one prompt; None when there is no usable pair."""
    scored = []
    for row, label, version in group:
        score = _score(label)
        if score is None or not _passes(label, min_agreement):
            continue
        scored.append((score, label.agreement if label.agreement is not None else -1.0, -row[0], row, label, version))
    if len(scored) < 2:
        return None
    # Highest score wins; among equals the better-agreed, then the older item, so the pick is stable.
    scored.sort(key=lambda s: (s[0], s[1], s[2]))
    best = scored.pop()
    # Lowest score loses; among equals the better-agreed one (surest to be worse).
    worst = min(scored, key=lambda s: (s[0], -s[1], -s[2]))
    margin = best[0] - worst[0]
    if margin == 0 and exclude_ties:
        return None
    brow, blabel, bversion = best[3], best[4], best[5]
    wrow, wlabel, wversion = worst[3], worst[4], worst[5]
    agreements = [a for a in (blabel.agreement, wlabel.agreement) if a is not None]
    sources = {blabel.source, wlabel.source}
    return _line(
        style=style,
        prompt=brow[2],
        chosen=brow[3],
        rejected=wrow[3],
        metadata=_json(brow[7]) if style == "conversational" else None,
        language=brow[6],
        item_id=brow[5],
        n_judgments=blabel.n_judgments + wlabel.n_judgments,
        agreement=min(agreements) if agreements else None,
        guideline_version=max(bversion, wversion),
        model_chosen=brow[4],
        model_rejected=wrow[4],
        margin=margin,
        tie=margin == 0,
        label_source=sources.pop() if len(sources) == 1 else "mixed",
        chosen_item_id=brow[1],
        rejected_item_id=wrow[1],
    )


# ---------------------------------------------------------------------------------------
# Raw judgments
# ---------------------------------------------------------------------------------------


def judgment_export(*, project: Project, language: str | None = None) -> Iterator[dict[str, Any]]:
    """Current production and historical judgments, evaluators by pseudonym, raters by
    external id. Options are checked now (ValidationError); the rows stream later."""
    lang = _project_language(project=project, tag=language)
    qs = Judgment.objects.filter(item__project=project, is_current=True, kind__in=COUNTED_JUDGMENT_KINDS)
    if lang is not None:
        qs = qs.filter(item__language=lang)
    return _in_transaction(_judgment_rows(qs))


def _judgment_rows(qs: QuerySet[Judgment]) -> Iterator[dict[str, Any]]:
    query = qs.order_by("id").values_list(
        "id", "item__external_id", "item__language__tag", "evaluator__evaluator_profile__pseudonym",
        "external_rater__external_id", "kind", "value", "seconds", "guideline_version", "revision",
        "too_fast", "created_at",
    )
    for row in query.iterator(chunk_size=CHUNK):
        external = row[4] is not None
        yield {
            "judgment_id": row[0],
            "item_id": row[1],
            "language": row[2],
            "rater": row[4] if external else (row[3] or ""),
            "rater_type": "external" if external else "evaluator",
            "kind": row[5],
            "value": row[6],
            "seconds": row[7],
            "guideline_version": row[8],
            "revision": row[9],
            "too_fast": row[10],
            "created_at": row[11].isoformat(),
        }


# ---------------------------------------------------------------------------------------
# Streaming writers
# ---------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def jsonl_stream(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    # orjson writes UTF-8 bytes directly, about ten times faster than the json module
    # (a third of the streaming time at a million lines); the json module is the fallback
    # for the rare value orjson refuses (an integer beyond 64 bits).
    encode = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode

    dumps = orjson.dumps
    lines: list[bytes] = []
    with _closed_after(rows):
        for row in rows:
            try:
                lines.append(dumps(row, default=_json_default))
            except orjson.JSONEncodeError:
                lines.append(encode(row).encode("utf-8"))
            if len(lines) >= LINES_PER_WRITE:
                lines.append(b"")
                yield b"\n".join(lines)
                lines = []
    if lines:
        lines.append(b"")
        yield b"\n".join(lines)


def csv_stream(rows: Iterable[dict[str, Any]], *, columns: tuple[str, ...] = JUDGMENT_COLUMNS) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    with _closed_after(rows):
        for batch in _chunks(rows, LINES_PER_WRITE):
            for row in batch:
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                                 for k, v in row.items()})
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    rest = buffer.getvalue()
    if rest:
        yield rest.encode("utf-8")


_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def preference_arrow_schema(*, style: str) -> pa.Schema:
    text = _MESSAGES if style == "conversational" else pa.string()
    return pa.schema([
        ("prompt", text), ("chosen", text), ("rejected", text), ("language", pa.string()),
        ("item_id", pa.string()), ("n_judgments", pa.int64()), ("agreement", pa.float64()),
        ("guideline_version", pa.string()), ("model_chosen", pa.string()), ("model_rejected", pa.string()),
        ("margin", pa.float64()), ("tie", pa.bool_()), ("label_source", pa.string()),
        ("chosen_item_id", pa.string()), ("rejected_item_id", pa.string()),
    ])


class _DrainSink(io.RawIOBase):
    """A write-only file that hands over what was written, so Parquet can stream."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


def parquet_stream(rows: Iterable[dict[str, Any]], *, style: str) -> Iterator[bytes]:
    """Parquet written one row group at a time; each group's bytes leave before the next is built."""
    schema = preference_arrow_schema(style=style)
    sink = _DrainSink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        with _closed_after(rows):
            for batch in _chunks(rows, ROW_GROUP_ROWS):
                columns = {name: [row[name] for row in batch] for name in schema.names}
                writer.write_table(pa.Table.from_pydict(columns, schema=schema))
                chunk = sink.drain()
                if chunk:
                    yield chunk
    finally:
        writer.close()
    yield sink.drain()


# ---------------------------------------------------------------------------------------
# Data card
# ---------------------------------------------------------------------------------------


def _agreement_by_language(project: Project) -> dict[str, dict[str, Any]]:
    report = agreement_report(project=project, by="language", resamples=200)
    out = {}
    for group in report.get("groups", []):
        key = str(group.get("key", ""))
        out[key] = {k: group.get(k) for k in ("alpha", "level", "ci", "units", "judgments")}
    return out


def datacard_build(*, project: Project) -> dict[str, Any]:
    """What an export of this project contains and where it came from."""
    items = Item.objects.filter(project=project, is_gold=False)
    counted = Judgment.objects.filter(item__project=project, is_current=True, kind__in=COUNTED_JUDGMENT_KINDS)
    by_language = {
        row["language__tag"]: row
        for row in items.values("language__tag").annotate(
            items=Count("pk"),
            settled=Count("pk", filter=Q(status__in=[ItemStatus.DONE, ItemStatus.FINAL])),
            flagged=Count("pk", filter=Q(language_flagged=True)),
        )
    }
    judged = {
        row["item__language__tag"]: row
        for row in counted.values("item__language__tag").annotate(
            judgments=Count("pk"),
            evaluators=Count("evaluator", distinct=True),
            external_raters=Count("external_rater", distinct=True),
        )
    }
    agreement = _agreement_by_language(project)
    languages = []
    for language in project.languages.order_by("tag"):
        row = by_language.get(language.tag, {})
        jrow = judged.get(language.tag, {})
        languages.append({
            "tag": language.tag,
            "name": language.name,
            "script": language.script,
            "direction": language.direction,
            "items": row.get("items", 0),
            "settled_items": row.get("settled", 0),
            "language_flagged_items": row.get("flagged", 0),
            "judgments": jrow.get("judgments", 0),
            "evaluators": jrow.get("evaluators", 0),
            "external_raters": jrow.get("external_raters", 0),
            "agreement": agreement.get(language.tag),
        })
    versions = [
        {"version": row["guideline_version"] or None, "judgments": row["n"]}
        for row in counted.values("guideline_version").annotate(n=Count("pk")).order_by("guideline_version")
    ]
    sources = [
        {
            "source": row["source"],
            "dataset": row["dataset"] if isinstance(row["dataset"], str) else None,
            "licence": row["licence"] if isinstance(row["licence"], str) else None,
            "items": row["n"],
        }
        for row in items.values("source", dataset=_metadata("dataset"), licence=_metadata("licence"))
        .annotate(n=Count("pk"))
        .order_by("source", "dataset", "licence")
    ]
    return {
        "project": {
            "slug": project.slug,
            "name": project.name,
            "task_type": project.task_type,
            "overlap": project.overlap,
            "agreement_level": project.agreement_level,
            "guideline_version": project.guideline_version or None,
        },
        "generated_at": timezone.now().isoformat(),
        "items": sum(lang["items"] for lang in languages),
        "judgments": sum(lang["judgments"] for lang in languages),
        "languages": languages,
        "guideline_versions": versions,
        "sources": sources,
        "export": {
            "columns": list(PREFERENCE_COLUMNS),
            "excluded": "gold items (honeypots and calibration); honeypot and calibration judgments",
            "labels": "final (adjudicated) labels where present, else the aggregate of the method asked for",
        },
    }


def _metadata(key: str) -> KeyTextTransform:
    return KeyTextTransform(key, "metadata")


def _md_cell(value: Any) -> str:
    text = "—" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def datacard_markdown(card: dict[str, Any]) -> str:
    p = card["project"]
    lines = [
        f"# Data card: {_md_cell(p['name'])} (`{p['slug']}`)",
        "",
        f"- Task: {p['task_type']}, {p['overlap']} judgments per item, agreement level {p['agreement_level']}",
        f"- Current guideline version: {_md_cell(p['guideline_version'])}",
        f"- Items: {card['items']}; judgments: {card['judgments']}",
        f"- Generated: {card['generated_at']}",
        "",
        "## Languages",
        "",
        "| language | items | settled | flagged by language check | judgments | evaluators | external raters | alpha | 95% CI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lang in card["languages"]:
        agreement = lang["agreement"] or {}
        alpha = agreement.get("alpha")
        ci = agreement.get("ci") or [None, None]
        ci_text = f"{ci[0]:.3f}–{ci[1]:.3f}" if None not in ci else "—"
        lines.append(
            f"| {_md_cell(lang['name'])} (`{lang['tag']}`) | {lang['items']} | {lang['settled_items']} | "
            f"{lang['language_flagged_items']} | {lang['judgments']} | {lang['evaluators']} | "
            f"{lang['external_raters']} | {f'{alpha:.3f}' if isinstance(alpha, float) else '—'} | {ci_text} |"
        )
    lines += ["", "## Guideline versions", "", "| version | judgments |", "|---|---|"]
    lines += [f"| {_md_cell(v['version'])} | {v['judgments']} |" for v in card["guideline_versions"]]
    lines += ["", "## Sources and licences", "", "| source | dataset | licence | items |", "|---|---|---|---|"]
    lines += [
        f"| {_md_cell(s['source'])} | {_md_cell(s['dataset'])} | {_md_cell(s['licence'])} | {s['items']} |"
        for s in card["sources"]
    ]
    lines += [
        "",
        "## What an export contains",
        "",
        f"- Columns: {', '.join(f'`{c}`' for c in card['export']['columns'])}",
        f"- Labels: {card['export']['labels']}",
        f"- Never exported: {card['export']['excluded']}",
        "",
    ]
    return "\n".join(lines)

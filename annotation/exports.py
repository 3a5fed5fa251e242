"""Preference and raw judgment exports, their streaming writers, and the data card.

Exports stream with constant memory: rows come from a server-side cursor
(`.iterator(chunk_size=…)`), labels are computed per chunk, and the writers yield bytes as
they go (JSON Lines in blocks of lines, Parquet one row group at a time, CSV in blocks).

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
import math
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import CharField, Count, Exists, Max, OuterRef, Q, QuerySet, Value
from django.db.models.fields.json import KT, KeyTextTransform
from django.utils import timezone

from annotation.agreement import ItemLabel, agreement_report, item_labels
from annotation.audit import audit_record
from annotation.languages import language_tag_normalize
from annotation.models import (
    ApiToken,
    AssignmentKind,
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
# Judgments that are production data (never honeypot or calibration).
COUNTED_KINDS = (AssignmentKind.PRODUCTION.value, "historical")
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
    judgments = Judgment.objects.filter(is_current=True, kind__in=COUNTED_KINDS)
    judgments = judgments.filter(item__in=among) if among is not None else judgments.filter(item__project=project)
    counted = (
        judgments
        .order_by()
        .values("item_id")
        .annotate(n=Count("id"))
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
    marks = ExportMark.objects.filter(project=project, id__gt=after, id__lte=upto)
    if lang is not None:
        marks = marks.filter(item__language=lang)
    options = {"method": method, "min_agreement": min_agreement, "exclude_ties": exclude_ties, "style": style}
    if project.task_type == TaskType.PAIRWISE:
        rows = _pairwise_rows(project=project, marks=marks, **options)
    else:
        rows = _rating_rows(project=project, marks=marks, **options)
    return PreferenceExport(
        cursor=export_cursor_encode(project=project, seq=upto), rows=_in_transaction(rows), style=style
    )


def _in_transaction(rows: Iterator[Any]) -> Iterator[Any]:
    """The rows, read inside one transaction.

    Outside a transaction Django declares its server-side cursors WITH HOLD, and
    PostgreSQL then materialises each whole result before handing over the first row
    (over a second at 300,000 items, and the copy on the server's disk). Inside one the
    rows stream as the merge joins produce them, all from one snapshot.
    """
    with transaction.atomic():
        yield from rows


def _chunks(rows: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def majority_label(*, task_type: str, votes: list[tuple[Any, Any]], final: dict[str, Any] | None = None) -> ItemLabel | None:
    """An item's label from its judgments' (choice, strength) or (score, None) pairs.

    The same rules as annotation.agreement.item_labels (method "majority"), computed from
    two plain values per judgment so a streamed export can label a million items quickly:
    a final label wins; ratings take the median score (rounded half up) with the mean
    beside it; a pairwise choice needs a strict majority — an even split counts as a tie,
    since it states no preference — and its strength is the median strength of the
    judgments that made it.
    """
    n = len(votes)
    if final is None and not n:
        return None
    if task_type == TaskType.RATING:
        scores = [float(v) for v, _ in votes]
        if final is not None:
            value, source = final, "final"
        else:
            value, source = {"score": _round_half_up(_median(scores))}, "majority"
        key = value.get("score")
        agreement = sum(1 for x in scores if x == key) / n if n >= 2 else None
        return ItemLabel(value=value, agreement=agreement, n_judgments=n, source=source,
                         mean=sum(scores) / n if n else None)
    counts: dict[str, int] = {}
    for choice, _ in votes:
        counts[choice] = counts.get(choice, 0) + 1
    if final is not None:
        value, source = final, "final"
    else:
        top = max(counts.values())
        leaders = [choice for choice, count in counts.items() if count == top]
        if len(leaders) > 1:
            value = {"choice": "tie"}
        else:
            choice = leaders[0]
            value = {"choice": choice}
            if choice in ("a", "b"):
                strengths = [int(s) if s is not None else 1 for c, s in votes if c == choice]
                value["strength"] = min(2, max(1, _round_half_up(_median(strengths))))
        source = "majority"
    agreement = counts.get(value.get("choice"), 0) / n if n >= 2 else None
    return ItemLabel(value=value, agreement=agreement, n_judgments=n, source=source)


def _merge(items: Iterator[tuple[Any, ...]], others: Iterator[tuple[Any, ...]]) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Pair each item row (item id first) with the rows of `others` for the same item.

    Both streams come in the same item order, so this is a merge join in constant memory:
    `others` skips items it has nothing for.
    """
    pending = next(others, None)
    for item in items:
        found = []
        while pending is not None and pending[0] == item[0]:
            found.append(pending)
            pending = next(others, None)
        yield item, found


_BY_ID = operator.itemgetter(4)


class _Labels:
    """Labels and guideline versions for the marked items, streamed in the items' order.

    Judgments and final labels of the same marked items are read with their own
    server-side cursors, in the same item order as the item rows, and merged as they go.
    """

    def __init__(self, *, project: Project, marks: QuerySet[ExportMark], order: tuple[str, ...], method: str) -> None:
        self.project = project
        self.method = method
        marked = Q(item__export_mark__in=marks)
        if project.task_type == TaskType.RATING:
            values = (KT("value__score"), Value(None, output_field=CharField()))
        else:
            values = (KT("value__choice"), KT("value__strength"))
        # Filtered by the marked item ids (no join through items unless the order needs
        # one) and ordered by item only: PostgreSQL then walks the judgments' item index in
        # step with the marks and the first line leaves at once, where ordering by (item,
        # id) sorted every judgment first (two seconds at 300,000 items). The latest
        # judgment of an item is found by its id in Python.
        self.judgments = (
            Judgment.objects.filter(item_id__in=marks.values("item_id"), is_current=True, kind__in=COUNTED_KINDS)
            .order_by(*order)
            .values_list("item_id", *values, "guideline_version", "id")
        )
        self.finals = FinalLabel.objects.filter(marked).order_by(*order).values_list("item_id", "value")

    def attach(self, items: Iterator[tuple[Any, ...]]) -> Iterator[tuple[tuple[Any, ...], ItemLabel | None, str]]:
        """(item row, its label or None, its latest guideline version) for each item row."""
        fitted = None
        if self.method != "majority":
            # Dawid–Skene weighs each rater by their reliability over the whole project,
            # so it is fitted once (its labels, not the judgments, stay in memory).
            fitted = item_labels(project=self.project, method=self.method)
        with_votes = _merge(items, self.judgments.iterator(chunk_size=CHUNK * 3))
        finals = self.finals.iterator(chunk_size=CHUNK)
        pending = next(finals, None)
        for item, votes in with_votes:
            final = None
            while pending is not None and pending[0] == item[0]:
                final = pending[1]
                pending = next(finals, None)
            version = max(votes, key=_BY_ID)[3] if votes else ""
            if fitted is not None:
                label = fitted.get(item[0])
            else:
                label = majority_label(task_type=self.project.task_type, votes=[(v[1], v[2]) for v in votes],
                                       final=final)
            yield item, label, version or ""


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


def _pairwise_rows(*, project: Project, marks: QuerySet[ExportMark], method: str, min_agreement: float | None,
                   exclude_ties: bool, style: str) -> Iterator[dict[str, Any]]:
    fields = ["item_id", "item__external_id", "item__language__tag", "item__prompt", "item__response_a",
              "item__response_b", "item__model_a", "item__model_b"]
    if style == "conversational":
        fields.append("item__metadata")
    # Item order: the judgments' item index streams in the same order, with no sort.
    items = marks.order_by("item_id").values_list(*fields).iterator(chunk_size=CHUNK)
    labels = _Labels(project=project, marks=marks, order=("item_id",), method=method)
    conversational = style == "conversational"
    for row, label, version in labels.attach(items):
        if label is None:
            continue
        choice = label.value.get("choice")
        if choice == "both_bad" or (choice == "tie" and exclude_ties) or choice not in ("a", "b", "tie"):
            continue
        if not _passes(label, min_agreement):
            continue
        if choice == "b":
            chosen, rejected, model_chosen, model_rejected = row[5], row[4], row[7], row[6]
        else:
            chosen, rejected, model_chosen, model_rejected = row[4], row[5], row[6], row[7]
        # The line as _line builds it, written out: this loop runs once per exported pair.
        if conversational:
            line = {
                "prompt": _prompt_messages(row[3], row[8]),
                "chosen": _messages("assistant", chosen),
                "rejected": _messages("assistant", rejected),
            }
        else:
            line = {"prompt": row[3], "chosen": chosen, "rejected": rejected}
        line["language"] = row[2]
        line["item_id"] = row[1]
        line["n_judgments"] = label.n_judgments
        line["agreement"] = label.agreement
        line["guideline_version"] = version
        line["model_chosen"] = model_chosen
        line["model_rejected"] = model_rejected
        line["margin"] = float(label.value.get("strength", 1)) if choice != "tie" else 0.0
        line["tie"] = choice == "tie"
        line["label_source"] = label.source
        line["chosen_item_id"] = row[1]
        line["rejected_item_id"] = row[1]
        yield line


def _score(label: Any) -> float | None:
    """The aggregated rating: the final label's score, else the mean of the judgments."""
    if label is None:
        return None
    if label.source != "final" and label.mean is not None:
        return float(label.mean)
    score = label.value.get("score")
    return float(score) if isinstance(score, int | float) else None


def _rating_rows(*, project: Project, marks: QuerySet[ExportMark], method: str, min_agreement: float | None,
                 exclude_ties: bool, style: str) -> Iterator[dict[str, Any]]:
    fields = ["item_id", "item__external_id", "item__language__tag", "item__prompt", "item__response",
              "item__model", "item__prompt_id"]
    if style == "conversational":
        fields.append("item__metadata")
    order = ("item__language_id", "item__prompt_id", "item_id")
    items = marks.order_by(*order).values_list(*fields).iterator(chunk_size=CHUNK)
    labels = _Labels(project=project, marks=marks, order=order, method=method)
    group: list[tuple[tuple[Any, ...], Any, str]] = []
    key: tuple[str, str] | None = None
    for row, label, version in labels.attach(items):
        if (row[2], row[6]) != key:
            if group:
                line = _rating_pair(group, style=style, min_agreement=min_agreement, exclude_ties=exclude_ties)
                if line is not None:
                    yield line
            group, key = [], (row[2], row[6])
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
        prompt=brow[3],
        chosen=brow[4],
        rejected=wrow[4],
        metadata=brow[7] if style == "conversational" else None,
        language=brow[2],
        item_id=brow[6],
        n_judgments=blabel.n_judgments + wlabel.n_judgments,
        agreement=min(agreements) if agreements else None,
        guideline_version=max(bversion, wversion),
        model_chosen=brow[5],
        model_rejected=wrow[5],
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
    qs = Judgment.objects.filter(item__project=project, is_current=True, kind__in=COUNTED_KINDS)
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
    counted = Judgment.objects.filter(item__project=project, is_current=True, kind__in=COUNTED_KINDS)
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

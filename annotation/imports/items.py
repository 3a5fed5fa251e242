"""Importing items: each chunk of valid lines is classified against what is stored (new,
unchanged, changed, or a conflict with judged content) and then written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotation import metrics
from annotation.audit import audit_record
from annotation.imports.batch import (
    CHUNK,
    ImportRejected,
    ImportResult,
    LineError,
    LineErrors,
    batch_run,
)
from annotation.imports.item_lines import ItemValidator, content_hash
from annotation.imports.pg_copy import copy_items
from annotation.model_versions import MODEL_FIELDS, model_versions_register
from annotation.models import GoldAnswer, Item, ItemStatus, Judgment, Project
from annotation.types import Actor


def items_import(
    *,
    project: Project,
    records: Iterable[tuple[int, Any]],
    actor: Actor = None,
    token: Any = None,
    max_lines: int | None = None,
) -> ImportResult:
    """Import (line number, record) pairs into the project, all or nothing.

    Raises ImportRejected listing every bad line (up to MAX_ERRORS) when any line is bad.
    """
    max_lines = max_lines or settings.PARITY_MAX_IMPORT_LINES
    started = time.perf_counter()
    validator = ItemValidator(project)
    result = ImportResult()
    errors = LineErrors()

    def clean(number: int, record: Any) -> dict[str, Any]:
        line = validator.clean(record)
        line["content_hash"] = content_hash(line)
        return line

    def write(chunk: list[tuple[int, dict[str, Any]]]) -> None:
        _write_chunk(project, chunk, result, errors.add, write=not errors.lines)

    with transaction.atomic():
        batch_run(records, max_lines=max_lines, errors=errors, clean=clean, write=write)
        if errors.lines:
            # Leaving the atomic block by an exception rolls back whatever chunks were written.
            raise ImportRejected(errors.lines, truncated=errors.truncated)
        audit_record(
            verb="items.import", actor=actor, token=token, project=project, data=result.as_dict()
        )
        if result.created:
            # robust: the import has committed; a failed ANALYZE is logged, never the answer.
            transaction.on_commit(
                lambda: items_statistics_refresh(created=result.created), robust=True
            )
    metrics.import_observe(
        kind="items",
        rows=result.created + result.updated + result.unchanged,
        seconds=time.perf_counter() - started,
    )
    return result


def items_statistics_refresh(*, created: int) -> bool:
    """ANALYZE the item table when it has no planner statistics yet, or when `created` new
    rows at least doubled it since the last; returns whether it did.

    Each chunk of an import looks up its external ids (`_existing_items`). Without
    statistics PostgreSQL takes `external_id = ANY(2,000 ids)` to match most rows, and
    answers it by reading every item of the project through a smaller index, so a large
    first import slows down as the table grows until autovacuum's first ANALYZE (figures
    in bench/README.md). Once analysed, external_id
    is known to be unique, the lookup uses item_external_id_unique whatever the table's
    size, and autovacuum keeps the statistics current from there; this covers the first
    imports into a new database. SKIP_LOCKED: when another ANALYZE or VACUUM of the table
    is running, that one will do.
    """
    if connection.vendor != "postgresql":
        return False
    table = Item._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        (rows,) = cursor.fetchone()
        if rows >= 0 and created <= rows:  # -1: never analysed
            return False
        cursor.execute(f"ANALYZE (SKIP_LOCKED) {connection.ops.quote_name(table)}")
    return True


@dataclass
class _ChunkPlan:
    """What a chunk of valid lines will do, decided before anything is written."""

    now: Any
    create: list[dict[str, Any]] = field(
        default_factory=list
    )  # Item keyword arguments, `project` aside
    golds: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # external_id → GoldAnswer fields
    update: list[tuple[dict[str, Any], dict[str, Any]]] = field(
        default_factory=list
    )  # (stored row, line)
    unchanged: list[int] = field(default_factory=list)  # item ids
    conflicts: list[LineError] = field(default_factory=list)


def _write_chunk(
    project: Project,
    chunk: list[tuple[int, dict[str, Any]]],
    result: ImportResult,
    add_error: Callable[[LineError], None],
    *,
    write: bool,
) -> None:
    """Classify the chunk's lines against what is stored, then (unless an earlier chunk
    had bad lines, so the batch will be rolled back anyway) apply the plan."""
    plan = _chunk_classify(project, chunk)
    result.unchanged += len(plan.unchanged)
    result.item_ids.extend(plan.unchanged)
    for error in plan.conflicts:
        add_error(error)
    if write:
        _items_create(project, plan, result)
        for row, clean in plan.update:
            _item_update(project, row, clean, now=plan.now)
            result.updated += 1
            result.item_ids.append(row["id"])


def _chunk_classify(project: Project, chunk: list[tuple[int, dict[str, Any]]]) -> _ChunkPlan:
    """New lines are created; a line whose content hash is stored is unchanged; a changed
    line updates its item, unless the item has judgments (a conflict)."""
    existing = {
        row["external_id"]: row
        for row in _existing_items(project, [c["external_id"] for _, c in chunk])
    }
    changed_ids = [
        existing[c["external_id"]]["id"]
        for _, c in chunk
        if c["external_id"] in existing
        and existing[c["external_id"]]["content_hash"] != c["content_hash"]
    ]
    judged = set(
        Judgment.objects.filter(item_id__in=changed_ids)
        .values_list("item_id", flat=True)
        .distinct()
    )
    plan = _ChunkPlan(now=timezone.now())
    for number, clean in chunk:
        row = existing.get(clean["external_id"])
        if row is None:
            plan.create.append(_new_item_fields(project, clean, plan))
        elif row["content_hash"] == clean["content_hash"]:
            plan.unchanged.append(row["id"])
        elif row["id"] in judged:
            plan.conflicts.append(
                LineError(
                    number,
                    f"item {clean['external_id']!r} already has judgments; its content cannot change "
                    "(import it under a new external_id)",
                    "external_id",
                    code="conflict",
                )
            )
        else:
            plan.update.append((row, clean))
    return plan


def _new_item_fields(project: Project, clean: dict[str, Any], plan: _ChunkPlan) -> dict[str, Any]:
    gold = clean.pop("gold", None)
    is_gold = gold is not None
    if is_gold:
        plan.golds[clean["external_id"]] = gold
    queued = project.queue_on_import
    return {
        **clean,
        "is_gold": is_gold,
        "status": ItemStatus.QUEUED if queued else ItemStatus.POOL,
        # A gold item is served as calibration or a honeypot, never from the open slots.
        "open_slots": project.overlap if queued and not is_gold else 0,
        "created_at": plan.now,
        "updated_at": plan.now,
    }


def _items_create(project: Project, plan: _ChunkPlan, result: ImportResult) -> None:
    # Unknown model names join the project's model registry (annotation.model_versions).
    model_versions_register(
        project=project,
        names={
            fields.get(name) or ""
            for fields in [*plan.create, *(clean for _row, clean in plan.update)]
            for name in MODEL_FIELDS
        },
    )
    if not plan.create:
        return
    if not plan.golds and connection.vendor == "postgresql":
        # COPY is several times faster than INSERT for bulk imports (see bench/README.md).
        new_ids = copy_items(project, plan.create)
        result.created += len(new_ids)
        result.item_ids.extend(new_ids)
        return
    created = Item.objects.bulk_create(
        [Item(project=project, **fields) for fields in plan.create], batch_size=CHUNK
    )
    result.created += len(created)
    if plan.golds:
        by_external = {item.external_id: item for item in created if item.external_id in plan.golds}
        GoldAnswer.objects.bulk_create(
            [GoldAnswer(item=by_external[ext], **gold) for ext, gold in plan.golds.items()]
        )
    result.item_ids.extend(item.pk for item in created if item.pk is not None)


def _item_update(project: Project, row: dict[str, Any], clean: dict[str, Any], *, now: Any) -> None:
    """New content for an item without judgments; its language check is redone."""
    item_id = row["id"]
    gold = clean.pop("gold", None)
    Item.objects.filter(pk=item_id).update(
        **{k: v for k, v in clean.items() if k != "external_id"},
        is_gold=gold is not None,
        updated_at=now,
        language_check=None,
        language_flagged=False,
    )
    if gold is not None:
        Item.objects.filter(pk=item_id).update(open_slots=0)
        GoldAnswer.objects.update_or_create(item_id=item_id, defaults=gold)
    elif row["is_gold"]:
        # No longer gold: it becomes an ordinary item with its slots.
        GoldAnswer.objects.filter(item_id=item_id).delete()
        Item.objects.filter(pk=item_id, status=ItemStatus.QUEUED).update(open_slots=project.overlap)


def _existing_items(project: Project, external_ids: list[str]) -> Iterable[Any]:
    """id, external_id, content_hash, is_gold of the project's items with these external ids."""
    if connection.vendor == "postgresql":
        # One array parameter instead of thousands of IN placeholders.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, external_id, content_hash, is_gold FROM {Item._meta.db_table} "  # noqa: S608 - table name from the model
                "WHERE project_id = %s AND external_id = ANY(%s)",
                [project.pk, external_ids],
            )
            return [
                {"id": r[0], "external_id": r[1], "content_hash": r[2], "is_gold": r[3]}
                for r in cursor.fetchall()
            ]
    return Item.objects.filter(project=project, external_id__in=external_ids).values(
        "id", "external_id", "content_hash", "is_gold"
    )

"""Importing historical judgments: a team's existing ratings, by external raters without
logins.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotation import metrics
from annotation.audit import audit_record
from annotation.imports.batch import (
    CHUNK,
    ImportRejected,
    ImportResult,
    LineError,
    LineErrors,
    LineInvalid,
    batch_run,
)
from annotation.label_changes import label_versions_bump
from annotation.models import ExternalRater, Item, Judgment, JudgmentKind, Project
from annotation.schema import judgment_value_validate
from annotation.types import Actor
from annotation.validation import text_clean

JUDGMENT_FIELDS = frozenset({"item_external_id", "rater", "value", "created"})


def _created_clean(raw: Any, *, now: Any) -> Any:
    from datetime import UTC

    from django.utils.dateparse import parse_datetime

    if raw is None:
        return None
    if not isinstance(raw, str):
        raise LineInvalid("created", "must be an ISO 8601 date and time string")
    try:
        moment = parse_datetime(raw.strip())
    except ValueError:
        moment = None
    if moment is None:
        raise LineInvalid(
            "created", f"{raw!r} is not an ISO 8601 date and time (e.g. 2025-03-01T10:00:00Z)"
        )
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    if moment > now:
        raise LineInvalid("created", f"{raw!r} is in the future")
    return moment


class _JudgmentLines:
    """Validates and stores one batch of historical judgments (the items' `ItemValidator` and
    `items._write_chunk` in one): `clean` checks a line on its own, `write` checks a chunk of
    valid lines against what is stored and, while the batch has no bad line, stores it."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.now = timezone.now()
        self.result = ImportResult()
        self.errors = LineErrors()
        self.seen: dict[tuple[str, str], int] = {}  # (item, rater) → first line in this batch

    def clean(self, number: int, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise LineInvalid(None, "each line must be a JSON object")
        unknown = sorted(set(record) - JUDGMENT_FIELDS)
        if unknown:
            raise LineInvalid(
                unknown[0],
                "is not a field of a judgment line (item_external_id, rater, value, created)",
            )
        external_id = text_clean(
            record.get("item_external_id"),
            field="item_external_id",
            max_chars=200,
            required=True,
            strip=False,
        )
        rater = text_clean(record.get("rater"), field="rater", max_chars=200, required=True)
        if "value" not in record:
            raise LineInvalid("value", "is required")
        try:
            value = judgment_value_validate(
                task_type=self.project.task_type, schema=self.project.schema, value=record["value"]
            )
        except ValidationError as exc:
            raise LineInvalid("value", exc.messages[0]) from None
        created = _created_clean(record.get("created"), now=self.now)
        first = self.seen.get((external_id, rater))
        if first is not None:
            raise LineInvalid(
                "rater",
                f"rater {rater!r} already judged item {external_id!r} on line {first} of this batch",
            )
        self.seen[(external_id, rater)] = number
        return {"external_id": external_id, "rater": rater, "value": value, "created": created}

    def write(self, lines: list[tuple[int, dict[str, Any]]]) -> None:
        raters = dict(
            ExternalRater.objects.filter(
                project=self.project, external_id__in={c["rater"] for _, c in lines}
            ).values_list("external_id", "id")
        )
        new = self.classify(lines, raters)
        if self.errors.lines or not new:
            return
        self.store(new, raters)

    def classify(
        self, lines: list[tuple[int, dict[str, Any]]], raters: dict[str, int]
    ) -> list[tuple[int, dict[str, Any]]]:
        """(item id, line) of the lines to store; the same judgment again counts as unchanged,
        an unknown or gold item or a different stored judgment is a bad line."""
        items = {
            row[0]: row[1:]
            for row in Item.objects.filter(
                project=self.project, external_id__in={c["external_id"] for _, c in lines}
            ).values_list("external_id", "id", "is_gold")
        }
        stored = {
            (item_id, rater_id): value
            for item_id, rater_id, value in Judgment.objects.filter(
                item_id__in=[v[0] for v in items.values()],
                external_rater_id__in=raters.values(),
                is_current=True,
            ).values_list("item_id", "external_rater_id", "value")
        }
        new: list[tuple[int, dict[str, Any]]] = []
        for number, c in lines:
            found = items.get(c["external_id"])
            if found is None:
                self.errors.add(
                    LineError(
                        number,
                        f"no item with external_id {c['external_id']!r} in project "
                        f"{self.project.slug}",
                        "item_external_id",
                    )
                )
            elif found[1]:
                self.errors.add(
                    LineError(
                        number,
                        f"item {c['external_id']!r} is a gold item; historical judgments "
                        "go on production items",
                        "item_external_id",
                    )
                )
            else:
                previous = stored.get(
                    (found[0], raters.get(c["rater"], 0))
                )  # 0: a rater not stored yet
                if previous is None:
                    new.append((found[0], c))
                elif previous == c["value"]:
                    self.result.unchanged += 1
                else:
                    self.errors.add(
                        LineError(
                            number,
                            f"rater {c['rater']!r} already has a different judgment of item "
                            f"{c['external_id']!r} stored; judgments are not overwritten",
                            "rater",
                            code="conflict",
                        )
                    )
        return new

    def store(self, new: list[tuple[int, dict[str, Any]]], raters: dict[str, int]) -> None:
        missing = sorted({c["rater"] for _, c in new} - set(raters))
        if missing:
            ExternalRater.objects.bulk_create(
                [
                    ExternalRater(project=self.project, external_id=name, created_at=self.now)
                    for name in missing
                ],
                ignore_conflicts=True,
            )
            raters.update(
                ExternalRater.objects.filter(
                    project=self.project, external_id__in=missing
                ).values_list("external_id", "id")
            )
        Judgment.objects.bulk_create(
            [
                Judgment(
                    item_id=item_id,
                    external_rater_id=raters[c["rater"]],
                    kind=JudgmentKind.HISTORICAL,
                    value=c["value"],
                    created_at=c["created"] or self.now,
                )
                for item_id, c in new
            ],
            batch_size=CHUNK,
        )
        # New votes can change these items' labels: the export marks them again.
        label_versions_bump(items={item_id for item_id, _ in new})
        self.result.created += len(new)


def judgments_import(
    *,
    project: Project,
    records: Iterable[tuple[int, Any]],
    actor: Actor = None,
    token: Any = None,
    max_lines: int | None = None,
) -> ImportResult:
    """Import historical judgments (item_external_id, rater, value, optional created), all or nothing.

    Raters become ExternalRater rows of the project; each judgment is stored with kind
    historical and no assignment. A line is refused when its item is unknown (or a gold
    item), its value is outside the project schema, or its (item, rater) pair appears
    twice in the batch or is already stored with a different value. The same line again is
    a no-op (counted as unchanged), so re-importing a file changes nothing.
    """
    started = time.perf_counter()
    batch = _JudgmentLines(project)
    with transaction.atomic():
        batch_run(
            records,
            max_lines=max_lines or settings.PARITY_MAX_IMPORT_LINES,
            errors=batch.errors,
            clean=batch.clean,
            write=batch.write,
        )
        if batch.errors.lines:
            # Leaving the atomic block by an exception rolls back whatever chunks were written.
            raise ImportRejected(batch.errors.lines, truncated=batch.errors.truncated)
        if batch.result.created:
            # A batch that only repeats stored judgments writes nothing, not even an audit event.
            audit_record(
                verb="judgments.import",
                actor=actor,
                token=token,
                project=project,
                data=batch.result.as_dict(),
            )
    result = batch.result
    metrics.import_observe(
        kind="judgments",
        rows=result.created + result.updated + result.unchanged,
        seconds=time.perf_counter() - started,
    )
    return result

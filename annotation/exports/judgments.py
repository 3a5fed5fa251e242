"""The raw judgment export: current production and historical judgments, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from annotation.exports.preferences import project_language
from annotation.exports.rows import CHUNK, export_cursor_plan, in_transaction
from annotation.models import COUNTED_JUDGMENT_KINDS, Judgment, Project

JUDGMENT_FORMATS = ("jsonl", "csv")


def judgment_export(*, project: Project, language: str | None = None) -> Iterator[dict[str, Any]]:
    """Current production and historical judgments, evaluators by pseudonym, raters by
    external id. Options are checked now (ValidationError); the rows stream later."""
    lang = project_language(project=project, tag=language)
    qs = Judgment.objects.filter(
        item__project=project, is_current=True, kind__in=COUNTED_JUDGMENT_KINDS
    )
    if lang is not None:
        qs = qs.filter(item__language=lang)
    return in_transaction(_judgment_rows(qs))


def _judgment_rows(qs: QuerySet[Judgment]) -> Iterator[dict[str, Any]]:
    query = qs.order_by("id").values_list(
        "id",
        "item__external_id",
        "item__language__tag",
        "evaluator__evaluator_profile__pseudonym",
        "external_rater__external_id",
        "kind",
        "value",
        "seconds",
        "guideline_version",
        "revision",
        "too_fast",
        "created_at",
    )
    # Runs inside the export's transaction (`in_transaction`), before the cursor is declared.
    export_cursor_plan()
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

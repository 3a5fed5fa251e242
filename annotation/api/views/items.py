"""Items: list, bulk import (JSON array or JSON Lines), historical judgments, and an end
user's report on a model output, which becomes an item to triage.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.api import serializers as s
from annotation.api.auth import api_actor, request_token
from annotation.api.errors import ApiError, PayloadTooLarge, error
from annotation.api.parsers import (
    JSONArrayImportParser,
    JSONLinesAltImportParser,
    JSONLinesImportParser,
)
from annotation.api.permissions import ProjectAccess
from annotation.api.views.base import ProjectAPIView, body_data, error_responses, query_data
from annotation.imports import ImportResult, items_import, judgments_import
from annotation.language_check import language_check_enqueue, language_check_items
from annotation.languages import language_tag_normalize
from annotation.models import Item, ItemSource, TaskType

logger = logging.getLogger(__name__)


class ItemCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


def _language_check_after(response: Response, item_ids: list[int]) -> str:
    """Start the language check of imported items once the import has committed."""
    if not settings.PARITY_LANGUAGE_CHECK or not item_ids:
        return "off"
    if language_check_enqueue(item_ids=item_ids):
        return "queued"

    def check() -> None:
        # Runs after the response went out (WSGI close), so the pipeline does not wait.
        try:
            language_check_items(item_ids=item_ids)
        except Exception:
            logger.exception("language check of %d imported items failed", len(item_ids))

    # Django's own list of what closing the response runs (no public way to add to it).
    response._resource_closers.append(check)  # type: ignore[attr-defined]
    return "after_response"


def _import_response(
    result: ImportResult, *, status_code: int = 200, check_ids: list[int] | None = None
) -> Response:
    response = Response(status=status_code)
    check = _language_check_after(response, result.item_ids if check_ids is None else check_ids)
    response.data = {**result.as_dict(), "language_check": check}
    return response


def _check_content_length(request: Request) -> None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.PARITY_MAX_IMPORT_BYTES:
        raise PayloadTooLarge(
            _("The body is larger than %(limit)d bytes; split the batch.")
            % {"limit": settings.PARITY_MAX_IMPORT_BYTES}
        )


def _records(request: Request) -> Any:
    data = request.data
    return data if not isinstance(data, dict) else iter(())


def _lines_body(serializer_class: type[s.serializers.Serializer]) -> dict[str, Any]:
    """A JSON array, or JSON Lines whose lines are the array's elements (one object per line)."""
    return {
        media: serializer_class(many=True)
        for media in ("application/json", "application/x-ndjson", "application/jsonl")
    }


class ItemsView(ProjectAPIView):
    access = {
        "GET": ProjectAccess(scopes=("read", "import"), session="lead"),
        "POST": ProjectAccess(scopes=("import",), session="lead"),
    }

    def get_parsers(self) -> list[Any]:
        if self.request is not None and self.request.method == "POST":
            return [JSONArrayImportParser(), JSONLinesImportParser(), JSONLinesAltImportParser()]
        return super().get_parsers()

    @extend_schema(
        summary="List items",
        parameters=[
            s.ItemListQuerySerializer,
            OpenApiParameter(
                "cursor", str, description="from `next` or `previous` of the last page"
            ),
            OpenApiParameter("page_size", int, description="1–1000 (default 100)"),
        ],
        responses={200: s.ItemPageSerializer, **error_responses()},
    )
    def get(self, request: Request, slug: str) -> Response:
        project = self.project()
        query = query_data(s.ItemListQuerySerializer, request)
        items = Item.objects.filter(project=project).select_related("language")
        if query.get("language"):
            try:
                items = items.filter(language__tag=language_tag_normalize(query["language"]))
            except ValidationError as exc:
                raise ApiError([error(exc.messages[0], field="language")]) from None
        if query.get("status"):
            items = items.filter(status=query["status"])
        if query.get("source"):
            items = items.filter(source=query["source"])
        if query.get("flagged") is not None:
            items = items.filter(language_flagged=query["flagged"])
        paginator = ItemCursorPagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(s.ItemOutSerializer(page, many=True).data)

    @extend_schema(
        summary="Bulk import items",
        description="A JSON array or JSON Lines (`application/x-ndjson`), up to "
        f"{settings.PARITY_MAX_IMPORT_LINES:,} lines and {settings.PARITY_MAX_IMPORT_BYTES:,} bytes. Atomic: "
        "one bad line stores nothing and every bad line is listed. Idempotent by external_id: the same "
        "content is a no-op, changed content updates an item without judgments, and a change to a "
        "judged item is refused with 409.",
        request=_lines_body(s.ImportLineSerializer),
        responses={200: s.ImportResultSerializer, **error_responses(409, 413, 415)},
        examples=[
            OpenApiExample(
                "pairwise line",
                value={
                    "external_id": "q-17",
                    "language": "sw",
                    "prompt": "…",
                    "response_a": "…",
                    "response_b": "…",
                    "model_a": "m1",
                    "model_b": "m2",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.project()
        _check_content_length(request)
        result = items_import(
            project=project,
            records=_records(request),
            actor=api_actor(request),
            token=request_token(request),
        )
        return _import_response(result)


class JudgmentsImportView(ProjectAPIView):
    access = {"POST": ProjectAccess(scopes=("import",), session="lead")}

    def get_parsers(self) -> list[Any]:
        return [JSONArrayImportParser(), JSONLinesImportParser(), JSONLinesAltImportParser()]

    @extend_schema(
        summary="Import historical judgments",
        description="Judgments a team already has, by external rater id; same body formats, limits, "
        "atomicity and idempotency as the item import.",
        request=_lines_body(s.HistoricalLineSerializer),
        responses={200: s.ImportResultSerializer, **error_responses(413, 415)},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.project()
        _check_content_length(request)
        result = judgments_import(
            project=project,
            records=_records(request),
            actor=api_actor(request),
            token=request_token(request),
        )
        return _import_response(result, check_ids=[])


def _conversation_text(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


class UserReportView(ProjectAPIView):
    access = {"POST": ProjectAccess(scopes=("import",), session="lead")}

    @extend_schema(
        summary="Report a bad model output",
        description="End-user feedback from a product (the conversation, its language, what went "
        "wrong) becomes an item with source user_report: it appears in the leads' triage list and "
        "goes to native speakers of its language like any item. Only rating and labels projects "
        "take reports (a report has one output, not two).",
        request=s.ReportInSerializer,
        responses={201: s.ReportOutSerializer, 200: s.ReportOutSerializer, **error_responses()},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.project()
        if project.task_type == TaskType.PAIRWISE:
            raise ApiError(
                [
                    error(
                        _(
                            "A pairwise project compares two outputs; send reports to a rating or "
                            "labels project."
                        )
                    )
                ]
            )
        data = body_data(s.ReportInSerializer, request)
        conversation = [dict(m) for m in data["conversation"]]
        metadata = dict(data.get("metadata") or {})
        metadata.update(
            {"conversation": conversation, "report": {"what_went_wrong": data["what_went_wrong"]}}
        )
        external_id = data.get("external_id") or f"report-{uuid.uuid4().hex}"
        record = {
            "external_id": external_id,
            "language": data["language"],
            "prompt": _conversation_text(conversation[:-1]),
            "response": conversation[-1]["content"],
            "model": data.get("model", ""),
            "metadata": metadata,
            "source": ItemSource.USER_REPORT,
        }
        result = items_import(
            project=project,
            records=[(1, record)],
            actor=api_actor(request),
            token=request_token(request),
        )
        item = Item.objects.get(project=project, external_id=external_id)
        response = _import_response(result, status_code=201 if result.created else 200)
        response.data = {
            "item_id": item.pk,
            "external_id": external_id,
            "status": item.status,
            "created": bool(result.created),
        }
        return response

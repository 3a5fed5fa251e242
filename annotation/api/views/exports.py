"""Exports: preference pulls and their retractions, the raw judgments, the data card."""

from __future__ import annotations

import itertools
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from annotation import metrics
from annotation.api import serializers as s
from annotation.api.auth import api_actor, request_token
from annotation.api.permissions import ProjectAccess
from annotation.api.renderers import (
    CSVRenderer,
    JSONLinesRenderer,
    MarkdownRenderer,
    ParquetRenderer,
)
from annotation.api.views.base import ProjectAPIView, error_responses, query_data
from annotation.exports import (
    csv_stream,
    datacard_build,
    datacard_markdown,
    jsonl_stream,
    judgment_export,
    parquet_stream,
    preference_export,
    preference_retractions,
)
from annotation.exports.preferences import PreferenceExport


def _streaming(chunks: Any, *, content_type: str, filename: str) -> StreamingHttpResponse:
    kind = (
        filename.rsplit(".", 1)[0].split("-")[-1] if "-" in filename else filename.rsplit(".", 1)[0]
    )
    chunks = metrics.export_counted(chunks, kind=kind, lines="parquet" not in content_type)
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _preference_filters(query: dict[str, Any]) -> dict[str, Any]:
    """The service's options from a pull's query (lines and retractions alike)."""
    return {
        "method": query["method"],
        "style": query["style"],
        "shape": query["shape"],
        "pairs": query["pairs"],
        "language": query.get("language"),
        "min_agreement": query.get("min_agreement"),
        "exclude_ties": not query["include_ties"],
        "min_gap": query.get("min_gap"),
        "threshold": query.get("threshold"),
        "split": query.get("split"),
        "test_fraction": query.get("test_fraction"),
        "margin": query.get("margin"),
        "signals": query["signals"],
        "prompt_template": query.get("prompt_template"),
    }


DOWNLOAD_MEDIA_TYPE = "application/octet-stream"


def _asks_for_download(request: Request) -> bool:
    """Whether the caller asks for the pull's bytes as a plain download (`Accept:
    application/octet-stream` first), as clients generated from the schema do for binary bodies."""
    first = request.META.get("HTTP_ACCEPT", "").split(",")[0]
    return first.split(";")[0].strip().lower() == DOWNLOAD_MEDIA_TYPE


class PullView(ProjectAPIView):
    """A preference pull: JSON Lines or Parquet, or the same bytes as application/octet-stream."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The bytes of a download are the asked format's; the renderer only shapes errors (JSON).
        return super().perform_content_negotiation(request, force or _asks_for_download(request))


def _pull_response(
    export: PreferenceExport, chunks: Any, *, request: Request, content_type: str, filename: str
) -> StreamingHttpResponse | HttpResponse:
    """The pull's stream, or 204 No Content (with the cursor) when it has no line: an
    empty body would make `datasets.load_dataset` fail."""
    first = next(export.rows, None)
    if first is None:
        export.rows.close()
        response: StreamingHttpResponse | HttpResponse = HttpResponse(
            status=status.HTTP_204_NO_CONTENT
        )
    else:
        if _asks_for_download(request):
            content_type = DOWNLOAD_MEDIA_TYPE
        response = _streaming(
            chunks(itertools.chain([first], export.rows)),
            content_type=content_type,
            filename=filename,
        )
    response["X-Parity-Cursor"] = export.cursor
    return response


_SINCE_TEXT = (
    "Incremental pulls: with `since` (the `X-Parity-Cursor` of an earlier pull) the answer holds the "
    "current line of every item whose line changed since that cursor — new, label flipped, tie decided, "
    "agreement crossing `min_agreement`, revised, adjudicated — and that qualifies under this pull's "
    "filters; items changed since that no longer qualify are listed by "
    "`export/preferences/retractions/` with the same `since` and filters. Pull the lines, then the "
    "retractions; delete the retracted `item_id`s, upsert the lines by `item_id`, and keep the lines' "
    "cursor for the next pull: any sequence of pulls then equals a full pull. An item may come again "
    "without a change (upserting it again is harmless). An empty pull answers 204 No Content with the "
    "cursor. `method=dawid_skene` re-weighs every rater on each fit, so it is pulled in full only."
)


class PreferenceExportView(PullView):
    access = {"GET": ProjectAccess(scopes=("export",), session="lead")}
    renderer_classes = [JSONLinesRenderer, ParquetRenderer, JSONRenderer]

    @extend_schema(
        summary="Export preference data (streamed)",
        description="Preference lines for DPO, reward-model and KTO-style training, loadable as-is with "
        "Hugging Face `datasets` and TRL. JSON Lines or Parquet; `style=conversational` gives role/content "
        "message lists. Each line is a `PreferenceLine` (shape=pairs) or an `UnpairedLine` "
        "(shape=unpaired); see those schemas. No column is named `margin` unless `margin=scaled`. "
        "`Accept: application/octet-stream` gets the same bytes as a plain download. "
        + _SINCE_TEXT,
        parameters=[s.PreferenceQuerySerializer],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="JSON Lines (one PreferenceLine or UnpairedLine per line) or "
                "Parquet, as `format` asks; the same bytes as application/octet-stream when Accept asks for it.",
            ),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, DOWNLOAD_MEDIA_TYPE): OpenApiResponse(OpenApiTypes.BINARY),
            204: OpenApiResponse(
                description="No line: nothing changed since the cursor (X-Parity-Cursor is set)."
            ),
            **error_responses(),
        },
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse | HttpResponse:
        project = self.project()
        query = query_data(s.PreferenceQuerySerializer, request)
        export = preference_export(
            project=project,
            since=query.get("since"),
            actor=api_actor(request),
            token=request_token(request),
            **_preference_filters(query),
        )
        if query["format"] == "parquet":
            return _pull_response(
                export,
                lambda rows: parquet_stream(rows, schema=export.schema),
                request=request,
                content_type=ParquetRenderer.media_type,
                filename=f"{project.slug}-preferences.parquet",
            )
        return _pull_response(
            export,
            jsonl_stream,
            request=request,
            content_type=JSONLinesRenderer.media_type,
            filename=f"{project.slug}-preferences.jsonl",
        )


class PreferenceRetractionsView(PullView):
    access = {"GET": ProjectAccess(scopes=("export",), session="lead")}
    renderer_classes = [JSONLinesRenderer, JSONRenderer]

    @extend_schema(
        summary="Retractions of an incremental preference pull (streamed)",
        description='JSON Lines of `RetractionLine` (`{"item_id": …}`): the keys of lines that items changed '
        "since `since` no longer have under the same filters as the pull. " + _SINCE_TEXT,
        parameters=[s.PreferenceFilterSerializer],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="One RetractionLine per line; the same bytes as "
                "application/octet-stream when Accept asks for it.",
            ),
            (200, DOWNLOAD_MEDIA_TYPE): OpenApiResponse(OpenApiTypes.BINARY),
            204: OpenApiResponse(description="Nothing to retract (X-Parity-Cursor is set)."),
            **error_responses(),
        },
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse | HttpResponse:
        project = self.project()
        query = query_data(s.PreferenceFilterSerializer, request)
        export = preference_retractions(
            project=project,
            since=query.get("since"),
            actor=api_actor(request),
            token=request_token(request),
            **_preference_filters(query),
        )
        return _pull_response(
            export,
            jsonl_stream,
            request=request,
            content_type=JSONLinesRenderer.media_type,
            filename=f"{project.slug}-retractions.jsonl",
        )


class JudgmentExportView(ProjectAPIView):
    access = {"GET": ProjectAccess(scopes=("export",), session="lead")}
    renderer_classes = [JSONLinesRenderer, CSVRenderer, JSONRenderer]

    @extend_schema(
        summary="Export raw judgments (streamed)",
        description="Current production and historical judgments; evaluators by pseudonym, external "
        "raters by their id. JSON Lines or CSV (the value as JSON in one column).",
        parameters=[s.JudgmentExportQuerySerializer],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            **error_responses(),
        },
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        project = self.project()
        query = query_data(s.JudgmentExportQuerySerializer, request)
        rows = judgment_export(project=project, language=query.get("language"))
        if query["format"] == "csv":
            return _streaming(
                csv_stream(rows),
                content_type="text/csv; charset=utf-8",
                filename=f"{project.slug}-judgments.csv",
            )
        return _streaming(
            jsonl_stream(rows),
            content_type=JSONLinesRenderer.media_type,
            filename=f"{project.slug}-judgments.jsonl",
        )


class DatacardView(ProjectAPIView):
    access = {"GET": ProjectAccess(scopes=("read", "export"), session="lead")}
    renderer_classes = [JSONRenderer, MarkdownRenderer]

    @extend_schema(
        summary="The data card of the project's exports",
        description="Languages and counts, evaluators and agreement per language, guideline "
        "versions, item sources and their licences. JSON, or Markdown with `?format=md` or "
        "`Accept: text/markdown`.",
        parameters=[s.DatacardQuerySerializer],
        responses={
            (200, "application/json"): s.DatacardSerializer,
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR),
            **error_responses(),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        query_data(s.DatacardQuerySerializer, request)
        card = datacard_build(project=self.project())
        if isinstance(request.accepted_renderer, MarkdownRenderer):
            return Response(datacard_markdown(card), content_type="text/markdown; charset=utf-8")
        return Response(card)

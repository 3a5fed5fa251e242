"""Renderers for the non-JSON answers. Exports stream their own bytes; these exist so
content negotiation (`?format=` or Accept) knows the formats and the schema lists them."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import BaseRenderer


class _PassThroughRenderer(BaseRenderer):
    charset: str | None = None

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if isinstance(data, bytes):
            return data
        return str(data if data is not None else "").encode("utf-8")


class JSONLinesRenderer(_PassThroughRenderer):
    media_type = "application/x-ndjson"
    format = "jsonl"


class ParquetRenderer(_PassThroughRenderer):
    media_type = "application/vnd.apache.parquet"
    format = "parquet"


class CSVRenderer(_PassThroughRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"


class MarkdownRenderer(_PassThroughRenderer):
    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

"""Schema post-processing: what drf-spectacular cannot see from the views alone.

A preference pull streams JSON Lines (or Parquet), so no endpoint's response references the
shape of one line; the line serializers are added as components here, built by
drf-spectacular itself, so the schema and the serializers cannot drift apart. The pulls'
`X-Parity-Cursor` header is declared on their 200 and 204 answers.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework.views import APIView

from annotation.api import serializers as s

# Each line of a pull: shape=pairs, shape=unpaired, and a retraction.
LINE_SERIALIZERS = (
    s.PreferenceLineSerializer,
    s.UnpairedLineSerializer,
    s.RetractionLineSerializer,
)
PULL_PATHS = (
    "/api/v1/projects/{slug}/export/preferences/",
    "/api/v1/projects/{slug}/export/preferences/retractions/",
)
CURSOR_HEADER = {
    "X-Parity-Cursor": {
        "description": "Pass it as `since` to the next pull (lines and retractions) to get only what changed.",
        "schema": {"type": "string"},
        "required": True,
    }
}


def line_components(
    result: dict[str, Any], generator: Any, request: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Add PreferenceLine, UnpairedLine and RetractionLine to components.schemas, and the
    cursor header to the pulls' answers."""
    auto = AutoSchema()
    auto.registry = generator.registry
    auto.method = "GET"
    # The inspector wants a view (for the serializer context); the line serializers need nothing of it.
    auto.view = APIView(request=request)
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for serializer in LINE_SERIALIZERS:
        component = auto.resolve_serializer(serializer, "response")
        schemas[component.name] = component.schema
    result["components"]["schemas"] = dict(sorted(schemas.items()))
    for path in PULL_PATHS:
        operation = result.get("paths", {}).get(path, {}).get("get")
        for code in ("200", "204"):
            answer = (operation or {}).get("responses", {}).get(code)
            if answer is not None:
                answer.setdefault("headers", {}).update(CURSOR_HEADER)
    return result

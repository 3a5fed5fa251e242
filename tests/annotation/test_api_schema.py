"""Schemathesis against the live OpenAPI schema: generated requests to every operation,
each answered without a server error and as the schema says (status, content type, body)."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from annotation.models import TaskType
from annotation.tokens import api_token_create
from tests.annotation.api_support import import_items, import_judgments
from tests.factories import ProjectFactory

SLUG = "fuzz"


@schemathesis.serializer("application/x-ndjson", "application/jsonl")
def _ndjson(ctx, value) -> bytes:
    """JSON Lines bodies: the schema describes them as an array of lines."""
    if isinstance(value, list):
        return "".join(json.dumps(line) + "\n" for line in value).encode()
    return (
        json.dumps(value).encode()
        if not isinstance(value, str)
        else value.encode("utf-8", "surrogatepass")
    )


@pytest.fixture
def api_schema(db):
    project = ProjectFactory(
        slug=SLUG, task_type=TaskType.RATING, languages=["de", "sw"], overlap=2
    )
    import_items(
        project,
        [
            {
                "external_id": f"f-{n}",
                "language": "de",
                "prompt": "Frage",
                "prompt_id": f"q{n // 2}",
                "response": f"Antwort {n}",
            }
            for n in range(4)
        ],
    )
    import_judgments(
        project,
        [
            {"item_external_id": f"f-{n}", "rater": f"r{k}", "value": {"score": 1 + (n + k) % 5}}
            for n in range(4)
            for k in range(2)
        ],
    )
    tokens = {
        scope: api_token_create(project=project, scope=scope)[1]
        for scope in ("import", "export", "read")
    }
    # As Django's test client does: a finished request must not close the connection that
    # holds the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
        schema.parity_tokens = tokens
        yield schema
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _token_for(case: schemathesis.Case, tokens: dict[str, str]) -> str:
    """The scope an operation needs, so generated requests get past authorisation."""
    path = case.operation.path
    if case.method == "POST" and path.endswith(("/items/", "/judgments/", "/reports/")):
        return tokens["import"]
    if "/export/" in path or path.endswith(("/agreement/", "/parity/", "/datacard/")):
        return tokens["export"]
    return tokens["read"]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class ApiSchemaTests:
    def test_it_answers_every_generated_request_as_the_schema_says(self, api_schema):
        tokens = api_schema.parity_tokens
        operations = [result.ok() for result in api_schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=8,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                if "slug" in (case.path_parameters or {}):
                    # The real project, so requests reach the views rather than stopping at 404.
                    case.path_parameters["slug"] = SLUG
                if case.operation.path.endswith("/agreement/"):
                    # Bootstrap resamples cost time, not coverage.
                    case.query = {**(case.query or {}), "resamples": 0}
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {_token_for(case, tokens)}"}, checks=CHECKS
                )

            run()

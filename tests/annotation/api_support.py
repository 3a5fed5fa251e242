"""Shared set-up for the API tests: tokens of every scope, and request helpers."""

from __future__ import annotations

import json
from typing import Any

from django.core.cache import cache
from django.test import Client

from annotation.imports import items_import, judgments_import
from annotation.models import Project
from annotation.tokens import api_token_create
from tests.base import ParityTestCase


def ndjson(lines: list[Any]) -> str:
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n"


def import_items(project: Project, lines: list[dict[str, Any]]) -> None:
    items_import(project=project, records=list(enumerate(lines, start=1)))


def import_judgments(project: Project, lines: list[dict[str, Any]]) -> None:
    judgments_import(project=project, records=list(enumerate(lines, start=1)))


class ApiTestCase(ParityTestCase):
    """The cast of ParityTestCase, plus one token per scope for its rating project."""

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.tokens = {
            scope: api_token_create(project=cls.project, scope=scope, name=f"{scope} pipeline")[1]
            for scope in ("import", "export", "read")
        }

    def setUp(self) -> None:
        super().setUp()
        # Throttle counters live in the cache; every test starts with a fresh budget.
        cache.clear()

    def url(self, path: str, project: Project | None = None) -> str:
        slug = (project or self.project).slug
        return (
            f"/api/v1/projects/{slug}/{path}" if path is not None else f"/api/v1/projects/{slug}/"
        )

    def call(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        body: Any = None,
        content_type: str = "application/json",
        client: Client | None = None,
        **extra: Any,
    ) -> Any:
        client = client or self.client
        if token:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        if body is not None and not isinstance(body, str | bytes):
            body = json.dumps(body)
        if method == "get":
            return client.get(url, **extra)
        return getattr(client, method)(
            url, data=body if body is not None else b"", content_type=content_type, **extra
        )

    def assertErrors(
        self, response: Any, status: int, *, contains: str = "", field: str | None = None
    ) -> list[dict]:
        self.assertEqual(response.status_code, status, response.content[:500])
        self.assertTrue(
            response["Content-Type"].startswith("application/json"), response["Content-Type"]
        )
        body = response.json()
        self.assertEqual(set(body) - {"truncated"}, {"errors"}, body)
        self.assertTrue(body["errors"])
        for entry in body["errors"]:
            self.assertIn("message", entry)
            self.assertLessEqual(set(entry), {"line", "field", "message"})
        if contains:
            self.assertTrue(any(contains in e["message"] for e in body["errors"]), body)
        if field is not None:
            self.assertTrue(any(e.get("field") == field for e in body["errors"]), body)
        return body["errors"]

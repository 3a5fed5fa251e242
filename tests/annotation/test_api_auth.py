from __future__ import annotations

from unittest import mock

from django.test import Client

from annotation.api.throttling import TokenRateThrottle
from annotation.models import ApiToken, Item, TaskType
from annotation.tokens import api_token_create, api_token_revoke
from tests.annotation.api_support import ApiTestCase, ndjson
from tests.factories import ProjectFactory

ITEM = {"external_id": "e1", "language": "de", "response": "Eine Antwort auf Deutsch, bitte sehr."}

# (method, path under the project, body, content type) for every project endpoint.
ENDPOINTS = {
    "import": ("post", "items/", ndjson([ITEM]), "application/x-ndjson"),
    "judgments": (
        "post",
        "judgments/",
        ndjson([{"item_external_id": "e1", "rater": "r1", "value": {"score": 3}}]),
        "application/x-ndjson",
    ),
    "report": (
        "post",
        "reports/",
        {
            "language": "de",
            "what_went_wrong": "falsch",
            "conversation": [
                {"role": "user", "content": "Hallo"},
                {"role": "assistant", "content": "Antwort"},
            ],
        },
        "application/json",
    ),
    "list": ("get", "items/", None, None),
    "agreement": ("get", "agreement/?resamples=0", None, None),
    "parity": ("get", "parity/", None, None),
    "datacard": ("get", "datacard/", None, None),
    "export": ("get", "export/preferences/", None, None),
    "export_judgments": ("get", "export/judgments/", None, None),
}
# Which token scope may call which endpoint.
ALLOWED = {
    "import": {"import", "judgments", "report", "list"},
    "export": {"agreement", "parity", "datacard", "export", "export_judgments"},
    "read": {"list", "agreement", "parity", "datacard"},
}


class ScopeMatrixTests(ApiTestCase):
    def request(self, name, *, token=None, project=None, client=None):
        method, path, body, content_type = ENDPOINTS[name]
        kwargs = {"body": body} if body is not None else {}
        if content_type:
            kwargs["content_type"] = content_type
        return self.call(method, self.url(path, project), token=token, client=client, **kwargs)

    def test_each_scope_reaches_exactly_its_endpoints(self):
        for scope, token in self.tokens.items():
            for name in ENDPOINTS:
                with self.subTest(scope=scope, endpoint=name):
                    response = self.request(name, token=token)
                    if name in ALLOWED[scope]:
                        self.assertLess(
                            response.status_code, 300, getattr(response, "content", b"")[:300]
                        )
                    else:
                        self.assertErrors(response, 403, contains=f"scope '{scope}'")

    def test_an_import_token_cannot_export_and_an_export_token_cannot_import(self):
        self.assertErrors(
            self.request("export", token=self.tokens["import"]), 403, contains="needs 'export'"
        )
        self.assertErrors(
            self.request("import", token=self.tokens["export"]), 403, contains="needs 'import'"
        )
        self.assertFalse(Item.objects.exists())

    def test_a_token_of_another_project_gets_nothing(self):
        other = ProjectFactory(slug="other", task_type=TaskType.RATING, languages=["de"])
        for scope, token in self.tokens.items():
            for name in ENDPOINTS:
                with self.subTest(scope=scope, endpoint=name):
                    self.assertErrors(self.request(name, token=token, project=other), 404)
        self.assertFalse(Item.objects.filter(project=other).exists())
        listed = self.call("get", "/api/v1/projects/", token=self.tokens["read"]).json()
        self.assertEqual([p["slug"] for p in listed], [self.project.slug])

    def test_an_evaluator_session_cannot_import_or_export(self):
        self.client.force_login(self.alice)
        for name in ("import", "judgments", "export", "export_judgments", "list", "datacard"):
            with self.subTest(endpoint=name):
                self.assertErrors(self.request(name), 403, contains="Only a lead")
        self.assertFalse(Item.objects.exists())

    def test_an_outsider_session_does_not_see_the_project(self):
        self.client.force_login(self.outsider)
        for name in ("import", "export", "list"):
            self.assertErrors(self.request(name), 404)

    def test_a_lead_session_may_import_and_export(self):
        self.client.force_login(self.lead)
        self.assertEqual(self.request("import").status_code, 200)
        # Allowed: nothing is exported yet, so the pull is empty (204 No Content).
        self.assertEqual(self.request("export").status_code, 204)

    def test_a_revoked_token_is_refused(self):
        token, raw = api_token_create(project=self.project, scope="import")
        self.assertEqual(self.request("list", token=raw).status_code, 200)
        api_token_revoke(token=token)
        response = self.request("import", token=raw)
        self.assertErrors(response, 401, contains="revoked")
        self.assertFalse(Item.objects.exists())

    def test_missing_unknown_and_malformed_credentials_are_401(self):
        response = self.request("list")
        self.assertErrors(response, 401)
        self.assertIn("Bearer", response["WWW-Authenticate"])
        self.assertErrors(
            self.request("list", token="pty_not-a-real-token"), 401, contains="Unknown"
        )
        bad = self.client.get(self.url("items/"), HTTP_AUTHORIZATION="Bearer two parts")
        self.assertErrors(bad, 401)

    def test_a_session_write_needs_the_csrf_token(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.lead)
        self.assertErrors(self.request("import", client=client), 403, contains="CSRF")
        self.assertFalse(Item.objects.exists())
        # With the token a page hands out (cookie + header), the same request goes through.
        client.get(f"/p/{self.project.slug}/tokens/")
        csrf = client.cookies["csrftoken"].value
        method, path, body, content_type = ENDPOINTS["import"]
        response = client.post(
            self.url(path), data=body, content_type=content_type, HTTP_X_CSRFTOKEN=csrf
        )
        self.assertEqual(response.status_code, 200, response.content)

    def test_tokens_are_throttled_per_token(self):
        with mock.patch.object(TokenRateThrottle, "rate", "2/min", create=True):
            for _ in range(2):
                self.assertEqual(self.request("list", token=self.tokens["read"]).status_code, 200)
            response = self.request("list", token=self.tokens["read"])
            self.assertErrors(response, 429)
            self.assertIn("Retry-After", response)
            # Another token has its own budget.
            self.assertEqual(self.request("list", token=self.tokens["import"]).status_code, 200)

    def test_a_token_records_when_it_was_last_used(self):
        self.request("list", token=self.tokens["read"])
        token = ApiToken.objects.get(project=self.project, scope="read")
        self.assertIsNotNone(token.last_used_at)

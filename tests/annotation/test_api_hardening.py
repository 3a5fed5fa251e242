"""Crafted requests and a database that goes away: every /api/ failure is the JSON error
shape, bad input is a 400 that says what to fix, a database error a retryable 503."""

from __future__ import annotations

from unittest import mock

from django.db import InterfaceError, OperationalError

from annotation.models import Item, Judgment
from tests.annotation.api_support import ApiTestCase, import_items


def rating_line(n: int, **extra):
    return {
        "external_id": f"r-{n}",
        "language": "de",
        "prompt": "Frage",
        "response": f"Antwort {n}",
        **extra,
    }


class CraftedBodyTests(ApiTestCase):
    def claim(self):
        import_items(self.project, [rating_line(1)])
        self.client.force_login(self.alice)
        claimed = self.call("post", self.url("queue/claim/"), body={})
        self.assertEqual(claimed.status_code, 200, claimed.content)
        return claimed.json()["id"]

    def test_json_nested_fifty_thousand_levels_is_a_400(self):
        assignment = self.claim()
        body = '{"value": ' + "[" * 50_000 + "]" * 50_000 + "}"
        errors = self.assertErrors(
            self.call("post", f"/api/v1/assignments/{assignment}/judgment/", body=body), 400
        )
        self.assertIn("nested", errors[0]["message"])
        self.assertFalse(Judgment.objects.exists())

    def test_an_import_line_nested_too_deeply_is_refused_by_line(self):
        deep = (
            '{"external_id": "d", "language": "de", "response": "x", "metadata": '
            + "[" * 50_000
            + "]" * 50_000
            + "}"
        )
        for content_type, body in (
            ("application/x-ndjson", deep),
            ("application/json", f"[{deep}]"),
        ):
            with self.subTest(content_type):
                errors = self.assertErrors(
                    self.call(
                        "post",
                        self.url("items/"),
                        token=self.tokens["import"],
                        body=body,
                        content_type=content_type,
                    ),
                    400,
                )
                self.assertEqual(errors[0]["line"], 1)
                self.assertIn("nested", errors[0]["message"])
        self.assertFalse(Item.objects.exists())

    def test_a_four_hundred_digit_number_in_a_judgment_value_is_a_400(self):
        assignment = self.claim()
        body = '{"value": {"score": ' + "9" * 400 + "}}"
        errors = self.assertErrors(
            self.call("post", f"/api/v1/assignments/{assignment}/judgment/", body=body), 400
        )
        self.assertIn("number", errors[0]["message"])
        self.assertFalse(Judgment.objects.exists())

    def test_a_nul_byte_in_a_query_parameter_is_a_400(self):
        import_items(self.project, [rating_line(1)])
        self.assertErrors(
            self.call("get", self.url("items/") + "?language=d%00e", token=self.tokens["read"]),
            400,
            contains="NUL",
        )

    def test_a_nul_byte_in_a_page_query_parameter_is_a_400_page(self):
        self.client.force_login(self.lead)
        response = self.client.get(f"/p/{self.project.slug}/items/?q=a%00b")
        self.assertEqual(response.status_code, 400)


class DatabaseErrorTests(ApiTestCase):
    def test_a_database_error_under_api_is_a_json_503_with_retry_after(self):
        for error in (
            OperationalError("terminating connection due to administrator command"),
            InterfaceError("connection already closed"),
        ):
            with (
                self.subTest(type(error).__name__),
                mock.patch("annotation.api.views.items.ItemsView.get", side_effect=error),
            ):
                response = self.call("get", self.url("items/"), token=self.tokens["read"])
                self.assertErrors(response, 503, contains="database")
                self.assertEqual(response["Retry-After"], "5")

    def test_a_database_error_on_a_page_is_a_503_page_with_retry_after(self):
        self.client.force_login(self.alice)
        with mock.patch(
            "annotation.views.evaluator.judgments_of_evaluator",
            side_effect=OperationalError("server closed the connection unexpectedly"),
        ):
            response = self.client.get("/me/judgments/")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response["Retry-After"], "5")
        self.assertContains(response, "try again", status_code=503)

"""Optional token expiry: `create_token --expires-in 30d`, shown on the tokens page, and an
expired token answered 401 with a message that says so."""

from __future__ import annotations

import io
import json
from datetime import timedelta

from django.core.management import CommandError, call_command
from django.utils import timezone

from annotation.models import ApiToken
from annotation.tokens import api_token_create
from tests.annotation.api_support import ApiTestCase


class TokenExpiryTests(ApiTestCase):
    def test_the_command_creates_a_token_that_expires(self):
        out = io.StringIO()
        call_command(
            "create_token",
            "--project",
            self.project.slug,
            "--scope",
            "read",
            "--expires-in",
            "30d",
            "--json",
            stdout=out,
        )
        body = json.loads(out.getvalue())
        token = ApiToken.objects.get(pk=body["id"])
        self.assertAlmostEqual(
            token.expires_at, timezone.now() + timedelta(days=30), delta=timedelta(minutes=1)
        )
        self.assertEqual(self.call("get", self.url("items/"), token=body["token"]).status_code, 200)

    def test_a_bad_lifetime_is_refused_with_the_reason(self):
        for value in ("soon", "0d", "99999d"):
            with self.subTest(value), self.assertRaises(CommandError):
                call_command(
                    "create_token",
                    "--project",
                    self.project.slug,
                    "--scope",
                    "read",
                    "--expires-in",
                    value,
                )
        self.assertEqual(ApiToken.objects.filter(expires_at__isnull=False).count(), 0)

    def test_an_expired_token_is_a_401_that_says_it_expired(self):
        token, raw = api_token_create(
            project=self.project, scope="read", expires_in=timedelta(days=1)
        )
        ApiToken.objects.filter(pk=token.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        response = self.call("get", self.url("items/"), token=raw)
        self.assertErrors(response, 401, contains="expired")

    def test_the_tokens_page_shows_the_expiry_and_creates_expiring_tokens(self):
        self.client.force_login(self.lead)
        response = self.client.post(
            f"/p/{self.project.slug}/tokens/",
            {"scope": "read", "name": "ci", "expires_days": "7"},
            follow=True,
        )  # POST, then redirect to the page that shows the secret once
        self.assertEqual(response.status_code, 200)
        token = ApiToken.objects.get(name="ci")
        self.assertAlmostEqual(
            token.expires_at, timezone.now() + timedelta(days=7), delta=timedelta(minutes=1)
        )
        self.assertContains(response, token.expires_at.strftime("%Y-%m-%d").split("-")[0])
        self.assertContains(response, "Expires")

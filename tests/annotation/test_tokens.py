from __future__ import annotations

import hashlib
import io
import json
import re

from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import ApiToken, AuditEvent
from annotation.tokens import api_token_authenticate, api_token_create, api_token_revoke
from tests.base import ParityTestCase


class TokenServiceTests(ParityTestCase):
    def test_only_a_hash_of_the_token_is_stored(self):
        token, raw = api_token_create(
            project=self.project, scope="import", name="nightly", actor=self.lead
        )
        self.assertTrue(raw.startswith("pty_"))
        self.assertGreaterEqual(len(raw), 40)
        self.assertEqual(token.key_hash, hashlib.sha256(raw.encode()).hexdigest())
        self.assertEqual(token.prefix, raw[:12])
        stored = ApiToken.objects.filter(pk=token.pk).values()[0]
        self.assertNotIn(raw, json.dumps(stored, default=str))
        self.assertTrue(AuditEvent.objects.filter(verb="token.create", actor=self.lead).exists())

    def test_a_revoked_token_no_longer_authenticates(self):
        token, raw = api_token_create(project=self.project, scope="read")
        self.assertEqual(api_token_authenticate(raw=raw), token)
        api_token_revoke(token=token, actor=self.lead)
        self.assertIsNone(api_token_authenticate(raw=raw))
        self.assertIsNone(api_token_authenticate(raw="pty_" + "x" * 43))
        self.assertIsNone(api_token_authenticate(raw="not a token"))

    def test_an_unknown_scope_is_refused(self):
        with self.assertRaisesMessage(Exception, "unknown scope"):
            api_token_create(project=self.project, scope="admin")
        self.assertFalse(ApiToken.objects.exists())


class CreateTokenCommandTests(ParityTestCase):
    def test_it_prints_a_working_token_once(self):
        out, err = io.StringIO(), io.StringIO()
        call_command(
            "create_token",
            "--project",
            self.project.slug,
            "--scope",
            "import",
            "--name",
            "ci",
            stdout=out,
            stderr=err,
        )
        raw = out.getvalue().strip()
        token = api_token_authenticate(raw=raw)
        self.assertEqual((token.project, token.scope, token.name), (self.project, "import", "ci"))
        self.assertIn("shown only now", err.getvalue())

    def test_bad_arguments_exit_with_a_reason(self):
        with self.assertRaisesMessage(CommandError, "no project"):
            call_command("create_token", "--project", "nope", "--scope", "import")
        with self.assertRaises(CommandError):
            call_command("create_token", "--project", self.project.slug, "--scope", "admin")
        self.assertFalse(ApiToken.objects.exists())


class TokenPageTests(ParityTestCase):
    def test_a_lead_creates_a_token_and_sees_it_once(self):
        self.client.force_login(self.lead)
        url = f"/p/{self.project.slug}/tokens/"
        created = self.client.post(url, {"name": "exporter", "scope": "export"})
        # POST, redirect, GET: reloading the page that shows the token creates no second one.
        self.assertRedirects(created, url, fetch_redirect_response=False)
        response = self.client.get(url)
        self.assertEqual(ApiToken.objects.count(), 1)
        raw = re.search(r"(pty_[A-Za-z0-9_-]{43})", response.content.decode()).group(1)
        self.assertEqual(api_token_authenticate(raw=raw).scope, "export")
        self.assertEqual(response["Cache-Control"], "no-store")
        again = self.client.get(url).content.decode()
        self.assertNotIn(raw, again)
        self.assertIn(raw[:12], again)
        self.assertEqual(ApiToken.objects.count(), 1)

    def test_a_lead_revokes_a_token(self):
        token, raw = api_token_create(project=self.project, scope="read")
        self.client.force_login(self.lead)
        response = self.client.post(f"/p/{self.project.slug}/tokens/{token.pk}/revoke/")
        self.assertRedirects(response, f"/p/{self.project.slug}/tokens/")
        self.assertIsNone(api_token_authenticate(raw=raw))

    def test_a_bad_scope_changes_nothing(self):
        self.client.force_login(self.lead)
        response = self.client.post(f"/p/{self.project.slug}/tokens/", {"scope": "root"})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "unknown scope", status_code=400)
        self.assertFalse(ApiToken.objects.exists())

    def test_evaluators_cannot_see_or_create_tokens(self):
        token, _raw = api_token_create(project=self.project, scope="read")
        self.client.force_login(self.alice)
        self.assertEqual(self.client.get(f"/p/{self.project.slug}/tokens/").status_code, 403)
        self.assertEqual(
            self.client.post(f"/p/{self.project.slug}/tokens/", {"scope": "export"}).status_code,
            403,
        )
        self.assertEqual(
            self.client.post(f"/p/{self.project.slug}/tokens/{token.pk}/revoke/").status_code, 403
        )
        self.assertEqual(ApiToken.objects.filter(revoked_at__isnull=True).count(), 1)

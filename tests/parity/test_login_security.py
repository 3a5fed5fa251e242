"""Login throttling (django-axes), sign-ins in the audit log, password reset only with mail."""

from __future__ import annotations

from django.test import override_settings
from django.urls import clear_url_caches

from annotation.models import AuditEvent
from tests.base import ParityTestCase
from tests.factories import UserFactory

PASSWORD = "a-long-and-right-password"


class LoginThrottleTests(ParityTestCase):
    def setUp(self):
        self.user = UserFactory(username="mallory-target")
        self.user.set_password(PASSWORD)
        self.user.save()

    def attempt(self, password):
        return self.client.post(
            "/accounts/login/", {"username": "mallory-target", "password": password}
        )

    def test_thirty_wrong_passwords_lock_the_account_and_then_the_right_one_is_refused(self):
        for n in range(30):
            self.attempt(f"wrong-{n}")
        response = self.attempt(PASSWORD)
        self.assertEqual(response.status_code, 429)
        self.assertContains(response, "Too many failed logins", status_code=429)
        self.assertNotIn("_auth_user_id", self.client.session)

    def test_a_few_wrong_passwords_then_the_right_one_logs_in(self):
        for n in range(3):
            self.attempt(f"wrong-{n}")
        self.assertEqual(self.attempt(PASSWORD).status_code, 302)
        self.assertEqual(int(self.client.session["_auth_user_id"]), self.user.pk)

    def test_failed_and_successful_logins_are_in_the_audit_log(self):
        self.attempt("wrong")
        self.attempt(PASSWORD)
        events = list(
            AuditEvent.objects.filter(verb__startswith="login.").order_by("created_at", "pk")
        )
        self.assertEqual([e.verb for e in events], ["login.failed", "login.success"])
        self.assertEqual(events[0].data["username"], "mallory-target")
        self.assertNotIn("password", events[0].data)
        self.assertEqual(events[1].actor, self.user)
        self.assertEqual(events[0].data["ip"], "127.0.0.1")

    def test_an_admin_reads_sign_ins_in_the_audit_page(self):
        self.attempt("wrong")
        admin = UserFactory(username="root", is_staff=True, is_superuser=True)
        self.client.force_login(admin)
        response = self.client.get("/admin/annotation/auditevent/?q=mallory-target")
        self.assertContains(response, "login.failed")


class PasswordResetTests(ParityTestCase):
    def tearDown(self):
        clear_url_caches()

    def test_no_password_reset_without_mail_settings(self):
        with override_settings(EMAIL_HOST=""):
            clear_url_caches()
            self.assertEqual(self.client.get("/accounts/password_reset/").status_code, 404)
            self.assertNotContains(self.client.get("/accounts/login/"), "password_reset")

    def test_password_reset_is_offered_when_mail_is_configured(self):
        with override_settings(EMAIL_HOST="smtp.example.org"):
            clear_url_caches()
            self.assertEqual(self.client.get("/accounts/password_reset/").status_code, 200)
            self.assertContains(self.client.get("/accounts/login/"), "/accounts/password_reset/")

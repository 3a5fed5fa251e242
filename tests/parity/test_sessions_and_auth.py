"""The session store and auth backend that read without the ORM behave as Django's own:
a login holds across requests, an expired or unknown session is anonymous, a deactivated
user is logged out, and nothing but a real user id finds a user."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import TestCase
from django.utils import timezone

from parity.auth import ModelBackend
from parity.sessions import SessionStore
from tests.factories import UserFactory


class SessionStoreTests(TestCase):
    def test_the_settings_use_it(self):
        self.assertEqual(settings.SESSION_ENGINE, "parity.sessions")
        # django-axes refuses locked-out logins first; the fast ModelBackend loads the user.
        self.assertEqual(
            settings.AUTHENTICATION_BACKENDS,
            ["parity.auth.LoginThrottleBackend", "parity.auth.ModelBackend"],
        )

    def test_a_saved_session_reads_back_and_an_unknown_key_starts_empty(self):
        store = SessionStore()
        store["answer"] = 42
        store.save()
        self.assertEqual(SessionStore(store.session_key)["answer"], 42)
        unknown = SessionStore("x" * 32)
        self.assertEqual(unknown.load(), {})
        self.assertIsNone(unknown.session_key)  # a new key is made on save, never the client's

    def test_an_expired_session_is_not_read(self):
        store = SessionStore()
        store["answer"] = 42
        store.save()
        Session.objects.filter(session_key=store.session_key).update(
            expire_date=timezone.now() - timedelta(seconds=1)
        )
        self.assertEqual(SessionStore(store.session_key).load(), {})

    def test_a_login_holds_across_requests_and_ends_when_the_session_expires(self):
        user = UserFactory(username="alice")
        self.client.force_login(user)
        self.assertEqual(self.client.get("/").status_code, 200)
        Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
        response = self.client.get("/")
        self.assertEqual(response.status_code, 302)
        self.assertIn("/accounts/login/", response["Location"])


class AuthBackendTests(TestCase):
    def test_it_loads_the_user_as_the_orm_does(self):
        user = UserFactory(username="alice", email="alice@example.org")
        loaded = ModelBackend().get_user(str(user.pk))  # the session holds the id as text
        self.assertEqual(loaded, user)
        self.assertEqual(
            (loaded.username, loaded.email, loaded.is_active), ("alice", "alice@example.org", True)
        )
        self.assertEqual(loaded.date_joined, get_user_model().objects.get(pk=user.pk).date_joined)

    def test_it_finds_nobody_for_a_missing_or_malformed_id_or_an_inactive_user(self):
        user = UserFactory(username="bob", is_active=False)
        backend = ModelBackend()
        for user_id in (str(user.pk), "999999", "not-a-number", None, "1; DROP TABLE auth_user"):
            with self.subTest(user_id=user_id):
                self.assertIsNone(backend.get_user(user_id))

    def test_a_deactivated_user_is_logged_out_on_the_next_request(self):
        user = UserFactory(username="carol")
        self.client.force_login(user)
        self.assertEqual(self.client.get("/").status_code, 200)
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        self.assertEqual(self.client.get("/").status_code, 302)

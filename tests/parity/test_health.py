"""/healthz and /readyz: answered over plain HTTP on any host (container healthchecks),
503 naming what is down."""

from __future__ import annotations

from unittest import mock

from django.db import OperationalError
from django.test import TestCase, override_settings

from annotation import health
from tests.redis_private import celery_broker, free_port


@override_settings(SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["parity.example.org"])
class HealthTests(TestCase):
    def setUp(self):
        health._migrated.clear()

    def get(self, path):
        # The container's own address, plain HTTP: neither is what production serves.
        return self.client.get(path, HTTP_HOST="172.18.0.5:8000")

    def test_it_answers_healthz_on_any_host_without_redirecting(self):
        response = self.get("/healthz")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok"})

    def test_it_is_ready_when_the_database_is_reachable_and_migrated(self):
        response = self.get("/readyz")
        self.assertEqual(response.status_code, 200, response.content)
        # Production settings without CACHE_URL share the rate limits through the database cache.
        self.assertEqual(
            response.json(),
            {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "cache": "ok"}},
        )

    def test_it_names_the_database_when_it_is_down(self):
        with mock.patch(
            "django.db.backends.utils.CursorWrapper.execute",
            side_effect=OperationalError("server closed the connection"),
        ):
            response = self.get("/readyz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["down"], ["database", "migrations", "cache"])
        self.assertIn("server closed the connection", response.json()["checks"]["database"])

    def test_it_names_unapplied_migrations(self):
        with mock.patch(
            "django.db.migrations.executor.MigrationExecutor.migration_plan",
            return_value=[("m", False)],
        ):
            response = self.get("/readyz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["down"], ["migrations"])
        self.assertIn("1 migrations not applied", response.json()["checks"]["migrations"])

    def test_it_names_the_broker_when_it_is_configured_and_down(self):
        url = f"redis://127.0.0.1:{free_port()}/0"
        with celery_broker(url), self.settings(CELERY_BROKER_URL=url):
            response = self.get("/readyz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["down"], ["broker"])

    def test_it_names_the_cache_when_it_is_configured_and_down(self):
        url = f"redis://127.0.0.1:{free_port()}/0"
        caches = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "OPTIONS": {"socket_connect_timeout": 1},
            }
        }
        with self.settings(CACHES=caches):
            response = self.get("/readyz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["down"], ["cache"])

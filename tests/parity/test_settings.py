from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import TestCase

from parity.env import env_bool, env_int

ROOT = Path(__file__).resolve().parents[2]


def test_env_bool_is_strict():
    with mock.patch.dict(os.environ, {"X": "yes"}):
        assert env_bool("X", False) is True
    with mock.patch.dict(os.environ, {"X": "0"}):
        assert env_bool("X", True) is False
    with (
        mock.patch.dict(os.environ, {"X": "ture"}),
        pytest.raises(ImproperlyConfigured, match="not a boolean"),
    ):
        env_bool("X", False)
    with (
        mock.patch.dict(os.environ, {"X": "ten"}),
        pytest.raises(ImproperlyConfigured, match="not a whole number"),
    ):
        env_int("X", 1)


def _run_settings(
    env: dict[str, str],
    code: str = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])",
) -> subprocess.CompletedProcess:
    clean = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "parity.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_secret_key_is_required_when_debug_is_off():
    result = _run_settings({"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_no_database_url_means_sqlite_and_postgres_url_means_postgresql():
    assert _run_settings({"DEBUG": "1"}).stdout.strip() == "django.db.backends.sqlite3"
    out = _run_settings(
        {"DEBUG": "1", "DATABASE_URL": "postgres://u@127.0.0.1:5432/x"}
    ).stdout.strip()
    assert out == "django.db.backends.postgresql"
    bad = _run_settings({"DEBUG": "1", "DATABASE_URL": "mysql://u@h/x"})
    assert bad.returncode != 0 and "DATABASE_URL must start with postgres://" in bad.stderr


def test_postgresql_prepares_repeated_statements_unless_turned_off():
    options = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default'].get('OPTIONS'))"
    url = {"DEBUG": "1", "DATABASE_URL": "postgres://u@127.0.0.1:5432/x"}
    assert (
        _run_settings(url, options).stdout.strip()
        == "{'server_side_binding': True, 'prepare_threshold': 5}"
    )
    assert (
        _run_settings({**url, "DB_PREPARE_THRESHOLD": "2"}, options)
        .stdout.strip()
        .endswith("'prepare_threshold': 2}")
    )
    assert _run_settings({**url, "DB_PREPARED_STATEMENTS": "0"}, options).stdout.strip() == "{}"
    bad = _run_settings({**url, "DB_PREPARE_THRESHOLD": "often"}, options)
    assert bad.returncode != 0 and "DB_PREPARE_THRESHOLD" in bad.stderr


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_statement_run_repeatedly_is_prepared_on_the_connection():
    from django.db import connection

    from annotation.models import Language

    threshold = settings.DATABASES["default"]["OPTIONS"].get("prepare_threshold")
    if threshold is None:
        pytest.skip("prepared statements are turned off here (DB_PREPARED_STATEMENTS=0)")
    for _ in range(threshold + 1):
        list(Language.objects.filter(tag="de"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("annotation_language" in sql for sql in prepared), prepared


def test_production_settings_pass_check_deploy():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        # A clean environment: the test run's own settings_test defaults must not leak in.
        env={
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "DJANGO_SETTINGS_MODULE": "parity.settings",
            "DEBUG": "0",
            "SECRET_KEY": "k" * 20 + "-Zq8#vT2!pL9@rW4$xN6^mB1&cF3*hJ7",
            "ALLOWED_HOSTS": "parity.example.org",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class SharedCacheTests(TestCase):
    """The API rate limit holds across gunicorn workers: production settings never count
    in one process's memory."""

    def settings_with(self, **env):
        code = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
        base = {k: v for k, v in os.environ.items() if k not in ("CACHE_URL", "DEBUG")}
        result = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env={
                **base,
                "DJANGO_SETTINGS_MODULE": "parity.settings",
                "SECRET_KEY": "x" * 50,
                **env,
            },
            capture_output=True,
            text=True,
            check=True,
            cwd=str(settings.BASE_DIR),
        )
        return result.stdout.strip()

    def test_production_without_cache_url_counts_in_the_database(self):
        self.assertEqual(
            self.settings_with(DEBUG="0"), "django.core.cache.backends.db.DatabaseCache"
        )

    def test_production_with_cache_url_counts_in_redis(self):
        self.assertEqual(
            self.settings_with(DEBUG="0", CACHE_URL="redis://127.0.0.1:6379/2"),
            "django.core.cache.backends.redis.RedisCache",
        )

    def test_a_token_over_its_rate_is_refused_by_every_worker(self):
        # Two processes share nothing but the cache: a second cache connection stands for
        # the second worker and sees the first one's counts.
        from django.core.cache import caches
        from django.core.cache.backends.db import DatabaseCache

        self.assertIsInstance(caches["default"], DatabaseCache)
        other_worker = DatabaseCache("parity_cache", {})
        caches["default"].set("throttle_token_1", [1.0, 2.0])
        self.assertEqual(other_worker.get("throttle_token_1"), [1.0, 2.0])

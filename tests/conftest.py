from __future__ import annotations

import pytest
from django.db import connection
from django.utils import translation


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` skip, with the reason, when the database is not PostgreSQL."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        skip = pytest.mark.skip(
            reason="needs PostgreSQL: set DATABASE_URL=postgres://… (see README)"
        )
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _interface_language_reset():
    """Every test starts and ends in the default interface language.

    Django's LocaleMiddleware activates a request's language for the whole thread and
    never deactivates it, so a test that browses in Arabic would leave gettext in Arabic
    for every later test in the process (messages built outside a request included)."""
    from django.conf import settings

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)

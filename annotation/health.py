"""Is this process healthy, and can it serve? `/healthz` and `/readyz` (DESIGN.md).

`/healthz` answers as long as the process does (liveness: restart it when this fails).
`/readyz` checks what a request needs: the database reachable and fully migrated, and
the broker and the shared cache where they are configured; 503 names what is down
(readiness: route no traffic here until it passes). Both are answered by a middleware
placed first, before host validation, the HTTPS redirect and sessions: load balancers
and container healthchecks call them over plain HTTP on the container's own address.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

_migrated: dict[str, bool] = {}


def database_check() -> str | None:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        # A dead connection must not stay in this thread for the next request (inside a
        # transaction it is the transaction's owner's to end).
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


def migrations_check() -> str | None:
    # Once migrated, a running process stays so (migrations only add): read the plan once.
    if _migrated.get(DEFAULT_DB_ALIAS):
        return None
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    if plan:
        return f"{len(plan)} migrations not applied (run manage.py migrate)"
    _migrated[DEFAULT_DB_ALIAS] = True
    return None


def broker_check() -> str | None:
    from parity.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT
            )
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def cache_check() -> str | None:
    key = f"parity:readyz:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=5)
        ok = cache.get(key) == "1"
        cache.delete(key)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return None if ok else "wrote a key and could not read it back"


def readiness() -> dict[str, str | None]:
    """What is down, by name (None: fine); the broker and the cache only where configured."""
    checks: dict[str, Callable[[], str | None]] = {"database": database_check}
    checks["migrations"] = migrations_check
    if settings.CELERY_BROKER_URL:
        checks["broker"] = broker_check
    if settings.CACHES["default"]["BACKEND"] != "django.core.cache.backends.locmem.LocMemCache":
        checks["cache"] = cache_check
    out: dict[str, str | None] = {}
    for name, check in checks.items():
        if name == "migrations" and out.get("database"):
            out[name] = "database unreachable"
            continue
        out[name] = check()
    return out


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def readyz(request: HttpRequest) -> HttpResponse:
    checks = readiness()
    down = [name for name, problem in checks.items() if problem]
    body: dict[str, Any] = {
        "status": "unavailable" if down else "ok",
        "checks": {name: problem or "ok" for name, problem in checks.items()},
    }
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200, headers={"Cache-Control": "no-store"})


class HealthMiddleware:
    """Answers /healthz and /readyz before anything else runs (see the module docstring)."""

    ROUTES = {"/healthz": healthz, "/healthz/": healthz, "/readyz": readyz, "/readyz/": readyz}

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.ROUTES.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)

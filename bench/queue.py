#!/usr/bin/env python
"""Queue benchmark: C concurrent evaluators claim and submit on N items, on PostgreSQL.

Two modes, each with its own evaluators on the same project:

- service: C processes call annotation.queue.item_claim_next + judgment_submit directly;
- http: C processes log in at /accounts/login/ and drive the evaluator pages of a gunicorn
  this script starts on 127.0.0.1 (GET /p/<slug>/work/ claims, POST
  /assignments/<id>/submit/ submits; with --htmx the submit returns the next card, as the
  browser does);
- rest: C processes log in the same way and drive the REST endpoints with their session
  (POST /api/v1/projects/<slug>/queue/claim/, then POST /api/v1/assignments/<id>/judgment/,
  JSON with the CSRF header), two requests per judgment. The per-user API rate limit is
  lifted for this run (API_USER_RATE): it measures the server, not the throttle.

It creates its own database (parity_bench_<pid>, dropped at the end), loads the items
with COPY, and prints the setup, claims/s, submits/s and p50/p95/p99 latencies, then
checks the queue's invariants on what was written. See bench/README.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/queue.py --items 5000 --evaluators 8 --seconds 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import re
import secrets
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the standard library's `queue` (which psycopg and multiprocessing import).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._util import (  # noqa: E402
    cpu_busy_since,
    cpu_busy_start,
    cpu_used_between,
    format_latency,
    free_port,
    gunicorn_start,
    gunicorn_stop,
    latency_summary,
    machine_description,
    peak_memory_mb,
    processes_cpu,
    require_postgres,
    scratch_database,
)

PROJECT_SLUG = "bench-queue"
PASSWORD = "bench-" + "queue-password"  # noqa: S105 - a throwaway account in a throwaway database
SAMPLE_TEXT = {
    "de": (
        "The weather will be sunny tomorrow in most regions.",
        "Morgen wird es in den meisten Regionen sonnig.",
    ),
    "ar": (
        "The weather will be sunny tomorrow in most regions.",
        "سيكون الطقس مشمسًا غدًا في معظم المناطق.",
    ),
    "zh": ("The weather will be sunny tomorrow in most regions.", "明天大部分地区天气晴朗。"),
    "hi": (
        "The weather will be sunny tomorrow in most regions.",
        "कल अधिकांश क्षेत्रों में मौसम धूप वाला रहेगा।",
    ),
    "sw": (
        "The weather will be sunny tomorrow in most regions.",
        "Hali ya hewa itakuwa ya jua kesho katika maeneo mengi.",
    ),
    "ja": (
        "The weather will be sunny tomorrow in most regions.",
        "明日はほとんどの地域で晴れるでしょう。",
    ),
    "he": ("The weather will be sunny tomorrow in most regions.", "מחר יהיה שמשי ברוב האזורים."),
    "th": ("The weather will be sunny tomorrow in most regions.", "พรุ่งนี้อากาศจะแจ่มใสในเกือบทุกภูมิภาค"),
}
ASSIGNMENT_IN_CARD = re.compile(rb"/assignments/(\d+)/submit/")
# Each mode works with its own evaluators: service (as fast as they can), paced (service
# at a fixed total rate), http (the pages, through gunicorn), rest (the API, through gunicorn).
MODES = ("service", "paced", "http", "rest")


# ---------------------------------------------------------------------------------------
# Environment and set-up (main process)
# ---------------------------------------------------------------------------------------


def _django_environment(database_url: str) -> dict[str, str]:
    """Production settings (DEBUG off) against the bench database, served over plain HTTP."""
    return {
        "DJANGO_SETTINGS_MODULE": "parity.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "STATIC_MANIFEST": "0",
        # An empty folder, so whitenoise does not warn in every process that it is missing.
        "STATIC_ROOT": tempfile.mkdtemp(prefix="parity-bench-static-"),
        "WHITENOISE_USE_FINDERS": "1",
        "CELERY_BROKER_URL": "",
        # An evaluator's session may call the API 600 times a minute by default; 32 bench
        # evaluators each go faster than any person, and the run measures the server.
        "API_USER_RATE": "1000000/min",
        # Deployed, a worker renews its connection each minute (DB_CONN_MAX_AGE=60); here a
        # connection lives through the run, so each mode's PostgreSQL CPU, read from the
        # backends' /proc entries, is not lost with a backend that ends mid-run.
        "DB_CONN_MAX_AGE": "3600",
    }


def _django_setup() -> None:
    import django

    django.setup()


def _seed(
    *, items: int, languages: list[str], evaluators: int, overlap: int, per_evaluator: int
) -> dict[str, Any]:
    """Migrate, create the project, C evaluators per mode and N items via COPY."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection

    from annotation.languages import language_get_or_create
    from annotation.models import (
        Item,
        ItemStatus,
        Project,
        Qualification,
        QualificationStatus,
        TaskType,
    )
    from annotation.qualification import evaluator_profile_ensure
    from annotation.schema import schema_validate

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    t_migrate = time.perf_counter() - t0

    langs = [language_get_or_create(tag=tag) for tag in languages]
    project = Project.objects.create(
        slug=PROJECT_SLUG,
        name="Queue benchmark",
        task_type=TaskType.RATING,
        schema=schema_validate(task_type=TaskType.RATING, schema=None),
        overlap=overlap,
        # Long leases: a lease expiring mid-run would be a bench artefact, not load.
        lease_seconds=3600,
    )
    project.languages.set(langs)

    User = get_user_model()
    password = make_password(PASSWORD)  # hashed once: PBKDF2 per user would take minutes
    User.objects.bulk_create(
        [
            User(username=f"bench-{mode}-{i}", password=password)
            for mode in MODES
            for i in range(evaluators)
        ]
    )
    users = list(User.objects.filter(username__startswith="bench-").order_by("pk"))
    roster: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    qualifications = []
    for user in users:
        _, mode, index = user.username.split("-")
        i = int(index)
        # Evaluator i works language i mod L (and the next ones with --languages-per-evaluator).
        mine = [langs[(i + j) % len(langs)] for j in range(min(per_evaluator, len(langs)))]
        qualifications += [
            Qualification(
                evaluator=user, project=project, language=lang, status=QualificationStatus.QUALIFIED
            )
            for lang in mine
        ]
        evaluator_profile_ensure(user=user)
        roster[mode].append(
            {
                "id": user.pk,
                "username": user.username,
                "tag": mine[0].tag if per_evaluator == 1 else "",
            }
        )
    Qualification.objects.bulk_create(qualifications)

    t0 = time.perf_counter()
    _items_copy(
        project=project,
        languages=langs,
        n=items,
        overlap=overlap,
        Item=Item,
        status=ItemStatus.QUEUED,
    )
    with connection.cursor() as cursor:
        # As autovacuum would have long before on a live database; left to autovacuum, it
        # runs during the first timed mode and its CPU is counted there.
        cursor.execute("VACUUM ANALYZE")
    t_items = time.perf_counter() - t0
    return {"project_id": project.pk, "roster": roster, "t_migrate": t_migrate, "t_items": t_items}


def _items_copy(
    *, project: Any, languages: list[Any], n: int, overlap: int, Item: Any, status: str
) -> None:
    """COPY the items in: every concrete column, prepared by the model's own fields, so new
    columns with defaults need no change here."""
    from django.db import connection
    from django.utils import timezone

    fields = [f for f in Item._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    rng = random.Random(20250301)
    now = timezone.now()
    connection.ensure_connection()
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(
            f"COPY {connection.ops.quote_name(Item._meta.db_table)} ({columns}) FROM STDIN"
        ) as copy,
    ):
        for i in range(n):
            language = languages[i % len(languages)]
            prompt, response = SAMPLE_TEXT.get(language.tag.split("-")[0], SAMPLE_TEXT["de"])
            item = Item(
                project=project,
                language=language,
                external_id=f"bench-{i}",
                prompt=f"Translate (#{i}): {prompt}",
                response=response,
                model="bench-model",
                metadata={"bench": i},
                status=status,
                priority=round(rng.random(), 6),
                open_slots=overlap,
                content_hash=f"{i:064x}",
                created_at=now,
                updated_at=now,
            )
            copy.write_row(
                [f.get_db_prep_save(getattr(item, f.attname), connection) for f in fields]
            )


def _queries_per_operation(project_id: int, tag: str) -> tuple[int, int]:
    """How many SQL statements one claim and one submit run (one extra evaluator, rolled back)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from annotation.models import Language, Project, Qualification, QualificationStatus
    from annotation.queue import item_claim_next, judgment_submit

    project = Project.objects.get(pk=project_id)
    language = Language.objects.get(tag=tag)
    with transaction.atomic():
        user = get_user_model().objects.create(username="bench-probe")
        Qualification.objects.create(
            evaluator=user, project=project, language=language, status=QualificationStatus.QUALIFIED
        )
        with CaptureQueriesContext(connection) as claim:
            assignment = item_claim_next(evaluator=user, project=project)
        with CaptureQueriesContext(connection) as submit:
            judgment_submit(assignment=assignment, evaluator=user, value={"score": 3}, seconds=10)
        transaction.set_rollback(True)

    def statements(captured: CaptureQueriesContext) -> int:
        # Savepoints come from the probe's own enclosing transaction, not from the service.
        return sum(1 for q in captured.captured_queries if "SAVEPOINT" not in q["sql"])

    return statements(claim), statements(submit)


def _explain_claim(project_id: int, evaluator_id: int) -> str:
    """EXPLAIN ANALYZE of the claim's reads of annotation_item, exactly as the service sends
    them (the statements are captured from a real claim, then rolled back)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from annotation.models import Project
    from annotation.queue import item_claim_next

    project = Project.objects.get(pk=project_id)
    user = get_user_model().objects.get(pk=evaluator_id)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have by now on a live database
    out = []
    with transaction.atomic():
        with CaptureQueriesContext(connection) as captured:
            item_claim_next(evaluator=user, project=project)
        reads = [
            q["sql"]
            for q in captured.captured_queries
            if q["sql"].lstrip().startswith("SELECT") and "FROM annotation_item i" in q["sql"]
        ]
        with connection.cursor() as cursor:
            for sql in reads:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
                out.append(
                    "    "
                    + " ".join(sql.split())
                    + "\n"
                    + "\n".join("      " + r[0] for r in cursor.fetchall())
                )
        transaction.set_rollback(True)
    return "\n".join(out) or "    (the claim read no item: the queue is empty for this evaluator)"


def _stored_judgments(*, mode: str) -> int:
    from annotation.models import Judgment

    return Judgment.objects.filter(evaluator__username__startswith=f"bench-{mode}-").count()


def _invariants(*, project_id: int, overlap: int) -> list[str]:
    """What must hold after any run; each broken rule is one line."""
    from django.db import connection
    from django.db.models import Count

    from annotation.models import Judgment

    problems = []
    over = (
        Judgment.objects.filter(item__project_id=project_id, kind="production", is_current=True)
        .values("item_id")
        .annotate(n=Count("id"))
        .filter(n__gt=overlap)
        .count()
    )
    if over:
        problems.append(f"{over} items have more than k={overlap} production judgments")
    twice = (
        Judgment.objects.filter(item__project_id=project_id, is_current=True)
        .values("item_id", "evaluator_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    if twice:
        problems.append(f"{twice} (item, evaluator) pairs were judged twice")
    with connection.cursor() as cursor:
        # open_slots + live leases + submitted production assignments = k for every queued item.
        cursor.execute(
            """
            SELECT count(*) FROM annotation_item i
            LEFT JOIN (
                SELECT item_id, count(*) AS held FROM annotation_assignment
                WHERE kind = 'production' AND status IN ('leased', 'submitted') GROUP BY item_id
            ) a ON a.item_id = i.id
            WHERE i.project_id = %s AND i.status IN ('queued', 'done')
              AND i.open_slots + coalesce(a.held, 0) <> %s
            """,
            [project_id, overlap],
        )
        (bad_slots,) = cursor.fetchone()
    if bad_slots:
        problems.append(f"{bad_slots} items whose open slots + held assignments differ from k")
    return problems


# ---------------------------------------------------------------------------------------
# Workers (separate processes)
# ---------------------------------------------------------------------------------------


def _service_worker(
    index: int,
    evaluator: dict[str, Any],
    project_id: int,
    seconds: float,
    rate: float,
    barrier: Any,
    results: Any,
) -> None:
    """Claim + submit in a loop; with rate > 0, start cycles at that many per second on
    average (Poisson arrivals), else back to back."""
    _django_setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.models import Language, Project
    from annotation.queue import item_claim_next, judgment_submit

    rng = random.Random(index)
    user = get_user_model().objects.get(pk=evaluator["id"])
    project = Project.objects.get(pk=project_id)
    language = Language.objects.get(tag=evaluator["tag"]) if evaluator["tag"] else None
    claims: list[float] = []
    submits: list[float] = []
    errors: dict[str, int] = {}
    barrier.wait()
    start = time.perf_counter()
    cpu_start = time.process_time()
    deadline = start + seconds
    next_start = start
    try:
        while time.perf_counter() < deadline:
            if rate > 0:
                next_start += rng.expovariate(rate)
                pause = next_start - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                if next_start >= deadline:
                    break
            t0 = time.perf_counter()
            assignment = item_claim_next(evaluator=user, project=project, language=language)
            t1 = time.perf_counter()
            if assignment is None:
                break  # nothing left for this evaluator
            claims.append(t1 - t0)
            try:
                judgment_submit(
                    assignment=assignment,
                    evaluator=user,
                    value={"score": rng.randint(1, 5)},
                    seconds=rng.uniform(5, 60),
                )
            except Exception as exc:  # counted and reported: a bench must finish to say what broke
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            submits.append(time.perf_counter() - t1)
    except Exception as exc:
        errors[f"{type(exc).__name__}: {exc}"] = errors.get(f"{type(exc).__name__}: {exc}", 0) + 1
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    connection.close()
    results.put(
        {"claims": claims, "submits": submits, "errors": errors, "elapsed": elapsed, "cpu": cpu}
    )


class _Client:
    """A browser stand-in on one keep-alive connection: cookies, CSRF, form posts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        head = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookies:
            head["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            head["Content-Type"] = "application/x-www-form-urlencoded"
        elif data is not None:
            # JSON for the REST endpoints; a session needs the CSRF header there.
            body = json.dumps(data).encode()
            head["Content-Type"] = "application/json"
            head["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=head)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                # A sync gunicorn worker closes the connection after each response.
                self.conn.close()
                if attempt == 2:
                    raise
        for raw in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(raw)
            for name, morsel in cookie.items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        if response.will_close:
            self.conn.close()
        return response.status, dict(response.headers.items()), data

    def login(self, username: str) -> None:
        self.request("GET", "/accounts/login/")
        status, headers, _ = self.request(
            "POST",
            "/accounts/login/",
            form={
                "username": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.cookies.get("csrftoken", ""),
            },
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login of {username} failed: HTTP {status}")


def _signed_in(port: int, username: str) -> tuple[_Client, dict[str, int]]:
    """A client logged in as the evaluator, and the errors so far (a failed login is one)."""
    client = _Client(port)
    errors: dict[str, int] = {}
    try:
        client.login(username)
    except Exception as exc:
        errors[str(exc)] = 1
    return client, errors


def _http_worker(
    index: int,
    evaluator: dict[str, Any],
    port: int,
    seconds: float,
    htmx: bool,
    barrier: Any,
    results: Any,
) -> None:
    rng = random.Random(1000 + index)
    client, errors = _signed_in(port, evaluator["username"])
    claims: list[float] = []
    submits: list[float] = []
    query = "?" + urlencode({"language": evaluator["tag"]}) if evaluator["tag"] else ""
    work_path = f"/p/{PROJECT_SLUG}/work/{query}"
    hx = {"HX-Request": "true"} if htmx else {}
    barrier.wait()
    start = time.perf_counter()
    cpu_start = time.process_time()
    deadline = start + seconds
    card: bytes | None = None
    served = 0  # cards with an item, whether from GET work or (htmx) from the submit

    def fail(what: str) -> None:
        errors[what] = errors.get(what, 0) + 1

    try:
        while not errors and time.perf_counter() < deadline:
            if card is None:
                t0 = time.perf_counter()
                status, _, card = client.request("GET", work_path, headers=hx)
                if status != 200:
                    fail(f"GET work: HTTP {status}")
                    break
                claims.append(time.perf_counter() - t0)
            found = ASSIGNMENT_IN_CARD.search(card)
            if found is None:
                break  # an empty queue for this evaluator
            served += 1
            form = {
                "score": rng.randint(1, 5),
                "seconds": round(rng.uniform(5, 60), 1),
                "csrfmiddlewaretoken": client.cookies.get("csrftoken", ""),
            }
            if evaluator["tag"]:
                form["language"] = evaluator["tag"]
            t0 = time.perf_counter()
            path = f"/assignments/{found.group(1).decode()}/submit/"
            status, _, body = client.request("POST", path, form=form, headers=hx)
            elapsed = time.perf_counter() - t0
            if status != (200 if htmx else 302):
                fail(f"POST submit: HTTP {status}")
                break
            submits.append(elapsed)
            # htmx: the next card came back with the submit; otherwise GET it (the redirect).
            card = body if htmx else None
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - start
    results.put(
        {
            "claims": claims,
            "submits": submits,
            "errors": errors,
            "elapsed": elapsed,
            "served": served,
            "cpu": time.process_time() - cpu_start,
        }
    )


def _rest_worker(
    index: int, evaluator: dict[str, Any], port: int, seconds: float, barrier: Any, results: Any
) -> None:
    """Claim and submit through the REST endpoints with the evaluator's session."""
    rng = random.Random(2000 + index)
    client, errors = _signed_in(port, evaluator["username"])
    claims: list[float] = []
    submits: list[float] = []
    claim_path = f"/api/v1/projects/{PROJECT_SLUG}/queue/claim/"
    claim_body = {"language": evaluator["tag"]} if evaluator["tag"] else {}
    barrier.wait()
    start = time.perf_counter()
    cpu_start = time.process_time()
    deadline = start + seconds

    def fail(what: str) -> None:
        errors[what] = errors.get(what, 0) + 1

    try:
        while not errors and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            status, _, body = client.request("POST", claim_path, data=claim_body)
            if status == 204:
                break  # an empty queue for this evaluator
            if status != 200:
                fail(f"POST claim: HTTP {status} {body[:200]!r}")
                break
            claims.append(time.perf_counter() - t0)
            assignment_id = json.loads(body)["id"]
            value = {"value": {"score": rng.randint(1, 5)}, "seconds": round(rng.uniform(5, 60), 1)}
            t0 = time.perf_counter()
            status, _, body = client.request(
                "POST", f"/api/v1/assignments/{assignment_id}/judgment/", data=value
            )
            if status != 201:
                fail(f"POST judgment: HTTP {status} {body[:200]!r}")
                break
            submits.append(time.perf_counter() - t0)
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - start
    results.put(
        {
            "claims": claims,
            "submits": submits,
            "errors": errors,
            "elapsed": elapsed,
            "cpu": time.process_time() - cpu_start,
        }
    )


# ---------------------------------------------------------------------------------------
# Running a mode
# ---------------------------------------------------------------------------------------


def _watched_cpu(what: str) -> dict[int, float]:
    """A database name → its PostgreSQL backends; anything else → processes naming it."""
    if what.startswith("parity_bench") or not what.startswith("127.0.0.1"):
        return processes_cpu(cmdline_contains=f" {what} ", starts_with="postgres:")
    return processes_cpu(cmdline_contains=what)


def _run_processes(
    target: Any, args_for: list[tuple[Any, ...]], *, seconds: float, watch: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], float, dict[str, float]]:
    """Start the evaluator processes, release them together, collect what they measured;
    and the CPU seconds the processes matching each `watch` string used in the timed window."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(args_for) + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(*args, barrier, results), daemon=True) for args in args_for
    ]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=300)
    except Exception:
        for p in procs:
            p.kill()
        raise RuntimeError("the evaluator processes did not all start within 300 s") from None
    t0 = time.perf_counter()
    cpu_start = {w: _watched_cpu(w) for w in watch}
    # Sampled at the end of the timed window, before the processes close their connections.
    time.sleep(max(0.0, seconds - (time.perf_counter() - t0)))
    cpu = {w: cpu_used_between(cpu_start[w], _watched_cpu(w)) for w in watch}
    out = [results.get(timeout=900) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=30)
    return out, wall, cpu


def _report(
    mode: str,
    out: list[dict[str, Any]],
    wall: float,
    *,
    cpu: float,
    claim_name: str,
    submit_name: str,
    cpu_of: dict[str, float],
) -> dict[str, Any]:
    claims = [x for r in out for x in r["claims"]]
    served = sum(r.get("served", len(r["claims"])) for r in out)
    submits = [x for r in out for x in r["submits"]]
    errors: dict[str, int] = {}
    for r in out:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    elapsed = max((r["elapsed"] for r in out), default=wall)
    claim_summary, submit_summary = latency_summary(claims), latency_summary(submits)
    print(f"\n[{mode}] {len(out)} evaluators, {elapsed:.1f} s, machine CPU {cpu:.0%} busy")
    print(
        f"  claims/s  {served / elapsed:8.1f}   submits/s {len(submits) / elapsed:8.1f}   (judgments stored/s)"
    )
    print("  " + format_latency(claim_name, claim_summary))
    print("  " + format_latency(submit_name, submit_summary))
    cpu_of = {"evaluator processes": sum(r.get("cpu", 0.0) for r in out), **cpu_of}
    per_judgment = {k: v / len(submits) * 1000 for k, v in cpu_of.items()} if submits else {}
    if per_judgment:
        print(
            "  CPU per judgment: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in per_judgment.items())
            + f"  (2 cores ÷ the sum ≈ {2000 / sum(per_judgment.values()):.0f} judgments/s if nothing else ran)"
        )
    if errors:
        print("  errors: " + "; ".join(f"{k} ×{v}" for k, v in sorted(errors.items())))
    return {
        "evaluators": len(out),
        "seconds": elapsed,
        "claims": served,
        "submits": len(submits),
        "claims_per_s": served / elapsed,
        "submits_per_s": len(submits) / elapsed,
        "claim": claim_summary,
        "submit": submit_summary,
        "errors": errors,
        "cpu_busy": cpu,
        "cpu_ms_per_judgment": per_judgment,
    }


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--items", type=int, default=100_000, help="items in the queue (default 100000)"
    )
    parser.add_argument(
        "--evaluators", type=int, default=32, help="concurrent evaluator processes (default 32)"
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="timed run per mode (default 30)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=200.0,
        help="judgments/s in total for the paced service run; 0 skips it (default 200)",
    )
    parser.add_argument("--overlap", type=int, default=3, help="judgments per item, k (default 3)")
    parser.add_argument(
        "--languages",
        default="de,ar,zh,hi",
        help="item languages, comma-separated (default de,ar,zh,hi)",
    )
    parser.add_argument(
        "--languages-per-evaluator",
        type=int,
        default=1,
        help="qualified languages per evaluator; above 1 they claim across all of them (default 1)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--service-only", action="store_true", help="only the service-layer run")
    mode.add_argument(
        "--http-only", action="store_true", help="only the HTTP runs (pages and REST)"
    )
    parser.add_argument(
        "--no-rest", action="store_true", help="HTTP: the pages only, not the REST endpoints"
    )
    parser.add_argument(
        "--htmx",
        action="store_true",
        help="HTTP: submit as htmx does, getting the next card in the same response",
    )
    # As deploy/gunicorn.conf.py: one sync worker per core, plus one that runs while
    # another waits on the database (2 cores: 206 judgments/s with 3 workers, 200 with 2,
    # 174 with 2 × 4 threads; 157 with 5).
    parser.add_argument(
        "--workers",
        type=int,
        default=(os.cpu_count() or 1) + 1,
        help="gunicorn worker processes (default: cores + 1, as deploy/gunicorn.conf.py)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per gunicorn worker (>1: gthread)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL server to create the bench database on (default $DATABASE_URL)",
    )
    parser.add_argument(
        "--db-name", default=f"parity_bench_{os.getpid()}", help="bench database name"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE of the claim query"
    )
    parser.add_argument(
        "--json", action="store_true", help="also print the figures as one JSON line"
    )
    args = parser.parse_args(argv)
    for name in ("items", "evaluators", "overlap", "workers", "threads", "languages_per_evaluator"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.rate < 0:
        parser.error("--rate must be 0 (skip the paced run) or positive")
    args.language_tags = [t.strip() for t in args.languages.split(",") if t.strip()]
    if not args.language_tags:
        parser.error("--languages needs at least one tag")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    server_url = require_postgres(args.database_url, script="bench/queue.py")
    with scratch_database(server_url, args.db_name, keep=args.keep) as bench_url:
        env = _django_environment(bench_url)
        os.environ.update(env)  # the spawned evaluator processes inherit it
        _django_setup()
        from django.core.exceptions import ValidationError
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            (pg_version,) = cursor.fetchone()
            cursor.execute("SHOW max_connections")
            max_connections = int(cursor.fetchone()[0])
        # Each evaluator process holds a connection, as does each gunicorn worker and this script.
        needed = args.evaluators + (0 if args.service_only else args.workers * args.threads) + 2
        if needed > max_connections:
            sys.exit(
                f"--evaluators {args.evaluators} with {args.workers} gunicorn workers needs about {needed} "
                f"database connections; the server allows {max_connections} (max_connections)."
            )
        try:
            seed = _seed(
                items=args.items,
                languages=args.language_tags,
                evaluators=args.evaluators,
                overlap=args.overlap,
                per_evaluator=args.languages_per_evaluator,
            )
        except ValidationError as exc:
            sys.exit(f"--languages: {' '.join(exc.messages)}")
        roster = seed["roster"]
        probe_tag = roster["service"][0]["tag"] or args.language_tags[0]
        q_claim, q_submit = _queries_per_operation(seed["project_id"], probe_tag)
        print("queue benchmark")
        print(
            f"  items N={args.items}  evaluators C={args.evaluators}  overlap k={args.overlap}  "
            f"languages={','.join(args.language_tags)} ({args.languages_per_evaluator} per evaluator)  "
            f"{args.seconds:g} s per mode"
        )
        print(
            f"  database PostgreSQL {pg_version} ({args.db_name}); machine {machine_description()}"
        )
        print(
            f"  set-up: migrate {seed['t_migrate']:.1f} s, {args.items} items loaded (COPY) in {seed['t_items']:.1f} s"
        )
        print(f"  SQL statements: claim {q_claim}, submit {q_submit}")
        connection.close()

        figures: dict[str, Any] = {
            "items": args.items,
            "evaluators": args.evaluators,
            "overlap": args.overlap,
            "postgres": pg_version,
            "cores": os.cpu_count(),
        }
        if not args.http_only:
            cpu = cpu_busy_start()
            out, wall, cpu_of = _run_processes(
                _service_worker,
                [
                    (i, ev, seed["project_id"], args.seconds, 0.0)
                    for i, ev in enumerate(roster["service"])
                ],
                seconds=args.seconds,
                watch=(args.db_name,),
            )
            figures["service"] = _report(
                "service, back to back",
                out,
                wall,
                cpu=cpu_busy_since(cpu),
                cpu_of={"PostgreSQL": cpu_of[args.db_name]},
                claim_name="claim (item_claim_next)",
                submit_name="submit (judgment_submit)",
            )
            if args.rate > 0:
                cpu = cpu_busy_start()
                out, wall, cpu_of = _run_processes(
                    _service_worker,
                    [
                        (i, ev, seed["project_id"], args.seconds, args.rate / args.evaluators)
                        for i, ev in enumerate(roster["paced"])
                    ],
                    seconds=args.seconds,
                    watch=(args.db_name,),
                )
                figures["paced"] = _report(
                    f"service, paced at {args.rate:g} judgments/s in total",
                    out,
                    wall,
                    cpu_of={"PostgreSQL": cpu_of[args.db_name]},
                    cpu=cpu_busy_since(cpu),
                    claim_name="claim (item_claim_next)",
                    submit_name="submit (judgment_submit)",
                )
        if not args.service_only:
            port = free_port()
            server = gunicorn_start(
                port=port,
                workers=args.workers,
                threads=args.threads,
                env=env,
                ready_path="/accounts/login/",
                timeout=120,
                backlog=2048,
            )
            kind = f"gunicorn {args.workers} workers" + (
                f" × {args.threads} threads" if args.threads > 1 else ""
            )
            watch = (f"127.0.0.1:{port}", args.db_name)
            try:
                cpu = cpu_busy_start()
                out, wall, cpu_of = _run_processes(
                    _http_worker,
                    [(i, ev, port, args.seconds, args.htmx) for i, ev in enumerate(roster["http"])],
                    seconds=args.seconds,
                    watch=watch,
                )
                label = "http+htmx" if args.htmx else "http"
                figures["http"] = _report(
                    f"{label}, {kind}",
                    out,
                    wall,
                    cpu=cpu_busy_since(cpu),
                    cpu_of={"gunicorn": cpu_of[watch[0]], "PostgreSQL": cpu_of[watch[1]]},
                    claim_name="claim (GET work)" if not args.htmx else "first card (GET work)",
                    submit_name="submit (POST, 302)" if not args.htmx else "submit + next card",
                )
                if not args.no_rest:
                    cpu = cpu_busy_start()
                    out, wall, cpu_of = _run_processes(
                        _rest_worker,
                        [(i, ev, port, args.seconds) for i, ev in enumerate(roster["rest"])],
                        seconds=args.seconds,
                        watch=watch,
                    )
                    figures["rest"] = _report(
                        f"REST API, {kind}",
                        out,
                        wall,
                        cpu=cpu_busy_since(cpu),
                        cpu_of={"gunicorn": cpu_of[watch[0]], "PostgreSQL": cpu_of[watch[1]]},
                        claim_name="claim (POST queue/claim/)",
                        submit_name="submit (POST judgment/)",
                    )
            finally:
                gunicorn_stop(server)
        if args.explain:
            # After the runs, so the plans are those of a queue with thousands of assignments.
            print("\nclaim query plans (EXPLAIN ANALYZE):")
            print(_explain_claim(seed["project_id"], roster["service"][0]["id"]))
        problems = _invariants(project_id=seed["project_id"], overlap=args.overlap)
        for mode in MODES:
            if mode in figures and figures[mode]["submits"] != _stored_judgments(mode=mode):
                problems.append(
                    f"{mode}: {figures[mode]['submits']} submits answered OK but "
                    f"{_stored_judgments(mode=mode)} judgments stored"
                )
        print(
            "\ninvariants: "
            + (
                "ok (≤k production judgments per item, no item judged twice by one "
                "evaluator, slots add up)"
                if not problems
                else "BROKEN: " + "; ".join(problems)
            )
        )
        print(
            f"peak memory: bench {peak_memory_mb():.0f} MiB, largest evaluator process "
            f"{peak_memory_mb(children=True):.0f} MiB"
        )
        figures["invariants_ok"] = not problems
        if args.json:
            print(json.dumps(figures))
        connection.close()
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

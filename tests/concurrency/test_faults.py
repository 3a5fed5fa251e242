"""Faults under load, on PostgreSQL, loopback only, bounded in time: the database's
connections terminated while evaluators submit through the API, the database server itself
(a private one) restarted and crashed under them, and the broker (a private redis-server)
stopped and started under a real Celery worker. Each asserts what users rely on: every
acknowledged judgment stored once, no item over k, nothing stuck, errors in the API's shape
(a 503 with Retry-After while the database is away), and the app recovers without a
restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest
import requests
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connection, connections
from django.db.models import Count
from django.test import TransactionTestCase

from annotation.imports import items_import
from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    Judgment,
    Qualification,
    QualificationStatus,
    TaskType,
)
from parity.celery import app
from tests.concurrency.live_gunicorn import LiveGunicorn, evaluator_session
from tests.factories import ItemFactory, ProjectFactory, UserFactory, language
from tests.pg_private import PrivatePostgres, default_database, postgres_available
from tests.redis_private import PrivateRedis, celery_broker, redis_available

pytestmark = pytest.mark.postgres

K = 2
EVALUATORS = 6
RUN_SECONDS = 6


def _terminate(*, keep: int) -> int:
    """pg_terminate_backend on every client connection to the test database but `keep`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s "
            "AND backend_type = 'client backend'",
            [keep],
        )
        return cursor.fetchone()[0]


def _error_shape_problem(response: requests.Response) -> str | None:
    """What is wrong with an API error answer, if anything: it must be the API's JSON error
    shape, and a 503 must say when to retry."""
    where = f"{response.request.method} {response.request.path_url} {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return f"{where}: not JSON: {response.text[:120]!r}"
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list) or not body["errors"]:
        return f"{where}: not the error shape: {body!r}"[:300]
    if response.status_code == 503 and not response.headers.get("Retry-After", "").isdigit():
        return f"{where}: no Retry-After"
    return None


class Run:
    """What the evaluators saw: acknowledged (evaluator, item) pairs with when they were
    acknowledged, status counts, and error answers not in the API's shape."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acknowledged: list[tuple[int, int]] = []
        self.acknowledged_at: list[float] = []
        self.statuses: dict[str, int] = {}
        self.malformed: list[str] = []

    def saw(self, response: requests.Response | str) -> None:
        status = response if isinstance(response, str) else str(response.status_code)
        problem = (
            _error_shape_problem(response)
            if isinstance(response, requests.Response) and response.status_code >= 400
            else None
        )
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if problem:
                self.malformed.append(problem)


def _evaluate(
    session: Any, base: str, slug: str, user_pk: int, run: Run, stop: threading.Event
) -> None:
    while not stop.is_set():
        try:
            claimed = session.post(
                f"{base}/api/v1/projects/{slug}/queue/claim/", json={}, timeout=30
            )
            run.saw(claimed)
            if claimed.status_code != 200:
                time.sleep(0.02)
                continue
            body = claimed.json()
            submitted = session.post(
                f"{base}/api/v1/assignments/{body['id']}/judgment/",
                json={"value": {"score": 3}},
                timeout=30,
            )
            run.saw(submitted)
            if submitted.status_code == 201:
                with run.lock:
                    run.acknowledged.append((user_pk, body["item"]["id"]))
                    run.acknowledged_at.append(time.monotonic())
        except requests.RequestException as exc:  # a worker killed under the request
            run.saw(type(exc).__name__)
            time.sleep(0.05)


class FaultTestCase(TransactionTestCase):
    def setUp(self):
        self.project = ProjectFactory(
            slug="faults", task_type=TaskType.RATING, overlap=K, languages=["de"]
        )
        de = language("de")
        Item.objects.bulk_create(
            ItemFactory.build(
                project=self.project, language=de, external_id=f"f{i}", content_hash=f"f{i}"
            )
            for i in range(600)
        )
        self.users = [UserFactory(username=f"ev{i}") for i in range(EVALUATORS)]
        Qualification.objects.bulk_create(
            Qualification(
                evaluator=u, project=self.project, language=de, status=QualificationStatus.QUALIFIED
            )
            for u in self.users
        )
        db = connection.settings_dict
        self.server = LiveGunicorn(
            database_url=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            workers=2,
            env={"API_USER_RATE": "100000/min"},
        ).start()
        self.addCleanup(self.server.stop)
        self.sessions = [evaluator_session(u, self.server.url) for u in self.users]

    def run_with(self, fault: Any, *, seconds: float = RUN_SECONDS) -> Run:
        """Evaluators work for `seconds` while `fault(stop)` runs in its own thread; a fault
        that sets `stop` itself ends the run sooner."""
        run, stop = Run(), threading.Event()
        threads = [
            threading.Thread(target=_evaluate, args=(s, self.server.url, "faults", u.pk, run, stop))
            for s, u in zip(self.sessions, self.users, strict=True)
        ]
        threads.append(threading.Thread(target=fault, args=(stop,)))
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        self.assertFalse(any(t.is_alive() for t in threads), "a thread hung")
        return run

    def assert_invariants(self, run: Run) -> None:
        self.assertNotIn("500", run.statuses, run.statuses)  # a 503 to retry at worst, never a 500
        self.assertEqual(run.malformed[:5], [], f"{len(run.malformed)} error answers")
        self.assertTrue(run.acknowledged, run.statuses)
        production = Judgment.objects.filter(
            item__project=self.project, kind="production", is_current=True
        )
        stored = set(production.values_list("evaluator_id", "item_id"))
        self.assertFalse(set(run.acknowledged) - stored, "an acknowledged judgment was lost")
        self.assertEqual(len(run.acknowledged), len(set(run.acknowledged)))
        twice = production.values("evaluator", "item").annotate(n=Count("id")).filter(n__gt=1)
        self.assertFalse(twice.exists(), "a judgment was stored twice")
        over_k = production.values("item").annotate(n=Count("id")).filter(n__gt=K)
        self.assertFalse(over_k.exists(), "an item got more than k judgments")
        self.assert_nothing_stuck()

    def assert_nothing_stuck(self) -> None:
        """Every item's open slots and status agree with its assignments and judgments, and no
        evaluator holds two leases: nothing half-done that a later request would trip over."""
        judged = Counter(
            Judgment.objects.filter(
                item__project=self.project, kind="production", is_current=True
            ).values_list("item_id", flat=True)
        )
        assignments = Assignment.objects.filter(
            project=self.project, kind=AssignmentKind.PRODUCTION
        )
        submitted = Counter(
            assignments.filter(status=AssignmentStatus.SUBMITTED).values_list("item_id", flat=True)
        )
        self.assertEqual(submitted, judged, "a submitted assignment without its judgment, or not")
        leased = Counter(
            assignments.filter(status=AssignmentStatus.LEASED).values_list("item_id", flat=True)
        )
        wrong = [
            (pk, open_slots, status)
            for pk, open_slots, status in Item.objects.filter(project=self.project).values_list(
                "pk", "open_slots", "status"
            )
            if open_slots != K - leased[pk] - judged[pk]
            or status != (ItemStatus.DONE if judged[pk] == K else ItemStatus.QUEUED)
        ]
        self.assertEqual(wrong[:5], [], f"{len(wrong)} items' slots or status disagree")
        holders = Counter(
            assignments.filter(status=AssignmentStatus.LEASED).values_list(
                "evaluator_id", flat=True
            )
        )
        self.assertLessEqual(max(holders.values(), default=0), 1, "an evaluator holds two leases")

    def assert_recovered(self) -> None:
        """Right after the fault stops, every evaluator's next request works: no restart."""
        for session in self.sessions:
            response = session.post(
                f"{self.server.url}/api/v1/projects/faults/queue/claim/", json={}, timeout=30
            )
            self.assertIn(response.status_code, (200, 204), response.text[:300])


class ConnectionsTerminatedTests(FaultTestCase):
    def test_evaluators_keep_working_while_their_connections_are_killed(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            mine = cursor.fetchone()[0]
        killed = []

        def killer(stop: threading.Event) -> None:
            try:
                while not stop.is_set():
                    killed.append(_terminate(keep=mine))
                    time.sleep(0.3)
            finally:
                connections.close_all()

        run = self.run_with(killer)
        self.assertGreater(sum(killed), 0, f"no connection was terminated: {run.statuses}")
        self.assert_recovered()
        self.assert_invariants(run)


class WorkerKilledTests(FaultTestCase):
    def test_a_gunicorn_worker_killed_mid_submit_loses_no_acknowledged_judgment(self):
        kills = []

        def killer(stop: threading.Event) -> None:
            while not stop.wait(1.0):
                pids = self.server.worker_pids()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)  # the master starts a new worker
                    kills.append(pids[0])

        run = self.run_with(killer)
        self.assertGreater(len(kills), 1)
        time.sleep(2)  # the master replaces the last killed worker
        self.assert_recovered()
        self.assert_invariants(run)


@pytest.mark.skipif(
    not postgres_available(), reason="needs the PostgreSQL server binaries (initdb, pg_ctl)"
)
class DatabaseRestartTests(FaultTestCase):
    """The application's database server restarted, then crashed, while evaluators submit.
    It is a private server (tests/pg_private.py) that the whole cast, gunicorn included,
    works on; the shared one is never touched."""

    def setUp(self):
        self.postgres = PrivatePostgres()
        self.addCleanup(self.postgres.close)
        self.postgres.start()
        # The cast (FaultTestCase.setUp: project, items, evaluators, their sessions) is made in
        # the private database, and gunicorn is pointed at it.
        self.enterContext(default_database(self.postgres.database_migrated("parity")))
        super().setUp()
        # The first evaluator's second tab: a requests.Session is not shared across threads.
        self.probe = evaluator_session(self.users[0], self.server.url)

    def outage_answers(self) -> dict[str, requests.Response]:
        """What an evaluator's next requests, and the probes, get while the server is down."""
        session, base = self.probe, self.server.url
        return {
            "claim": session.post(
                f"{base}/api/v1/projects/faults/queue/claim/", json={}, timeout=30
            ),
            # Any assignment: the session that says who is asking cannot even be read.
            "submit": session.post(
                f"{base}/api/v1/assignments/1/judgment/", json={"value": {"score": 3}}, timeout=30
            ),
            "page": session.get(f"{base}/p/faults/work/", timeout=30),
            "readyz": requests.get(f"{base}/readyz", timeout=30),
            "healthz": requests.get(f"{base}/healthz", timeout=30),
        }

    def test_acknowledged_judgments_survive_a_restart_and_a_crash_and_the_app_recovers(self):
        outage: dict[str, requests.Response] = {}
        moments: dict[str, float] = {}

        def restarter(stop: threading.Event) -> None:
            try:
                time.sleep(1.5)
                # A clean restart: backends are told to end, a checkpoint, a start.
                self.postgres.restart(mode="fast")
                time.sleep(1.5)
                # A crash: every server process killed, no checkpoint; the start replays the
                # WAL. While it is down, what do requests get?
                moments["crashed"] = time.monotonic()
                self.postgres.stop(mode="immediate")
                outage.update(self.outage_answers())
                self.postgres.start()
                moments["recovered"] = time.monotonic()
                time.sleep(3)  # evaluators keep working on the recovered server
            finally:
                stop.set()

        run = self.run_with(restarter, seconds=45)
        self.assertIn("recovered", moments, "the server was not restarted and crashed")
        self.assertIn("503", run.statuses, run.statuses)
        self.assertLess(min(run.acknowledged_at), moments["crashed"], "nothing at stake")
        self.assertGreater(
            max(run.acknowledged_at), moments["recovered"], f"no work after: {run.statuses}"
        )
        for name in ("claim", "submit"):  # the API: its JSON error shape, with Retry-After
            self.assertEqual(outage[name].status_code, 503, f"{name}: {outage[name].text[:300]}")
            self.assertIsNone(_error_shape_problem(outage[name]))
        page = outage["page"]  # a person gets the page that says to try again, not a 500
        self.assertEqual(page.status_code, 503, page.text[:300])
        self.assertIn("text/html", page.headers["Content-Type"])
        self.assertTrue(page.headers.get("Retry-After", "").isdigit())
        self.assertEqual(outage["readyz"].status_code, 503)
        self.assertIn("database", outage["readyz"].json()["down"])
        self.assertEqual(outage["healthz"].status_code, 200)
        self.assert_recovered()
        connection.close()  # this thread's connection died with the server
        self.assert_invariants(run)


@pytest.mark.skipif(not redis_available(), reason="needs redis-server on PATH")
class BrokerRestartTests(TransactionTestCase):
    def setUp(self):
        self.redis = PrivateRedis()
        self.redis.start()
        task_postrun.connect(self._close_worker_connections, weak=False)

    def tearDown(self):
        task_postrun.disconnect(self._close_worker_connections)
        self.redis.close()

    def _close_worker_connections(self, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            connections.close_all()

    def test_work_committed_while_redis_was_down_completes_once_it_is_back(self):
        project = ProjectFactory(slug="broker", languages=["de"])
        lines = [
            (
                n,
                {
                    "external_id": f"b{n}",
                    "language": "de",
                    "response": f"Das ist eine ziemlich lange deutsche Antwort, Nummer {n}.",
                },
            )
            for n in range(1, 6)
        ]
        with (
            celery_broker(self.redis.url),
            self.settings(CELERY_BROKER_URL=self.redis.url, PARITY_LANGUAGE_CHECK=True),
            start_worker(app, perform_ping_check=False, shutdown_timeout=30),
        ):
            self.redis.stop()
            from annotation.language_check import language_check_enqueue

            result = items_import(project=project, records=iter(lines))
            self.assertTrue(
                language_check_enqueue(item_ids=result.item_ids)
            )  # on commit: refused, logged
            # Autocommit here: on_commit ran at once and the broker refused; the items wait.
            self.assertEqual(Item.objects.filter(language_check__isnull=True).count(), 5)
            self.redis.start()
            from datetime import timedelta

            from active_learning.tasks import background_sweep

            deadline = time.monotonic() + 60
            while (
                time.monotonic() < deadline
                and Item.objects.filter(language_check__isnull=True).exists()
            ):
                background_sweep(older_than=timedelta(0))
                time.sleep(1)
        self.assertFalse(
            Item.objects.filter(language_check__isnull=True).exists(), "checks still pending"
        )
        self.assertEqual(Item.objects.filter(status=ItemStatus.QUEUED).count(), 5)


@pytest.mark.skipif(not redis_available(), reason="needs redis-server on PATH")
class CeleryWorkerKilledTests(TransactionTestCase):
    """A real prefork worker (a process of its own) is SIGKILLed while it runs a round: the
    broker hands the message out again, the replacement process retakes the round under the
    same message id, and the round completes once, all or nothing."""

    BUDGET = 40

    def setUp(self):
        self.redis = PrivateRedis()
        self.redis.start()
        self.addCleanup(self.redis.close)

    def worker(self) -> subprocess.Popen[bytes]:
        from django.conf import settings

        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "parity.settings",
            "PYTHONPATH": str(settings.BASE_DIR),
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "SECRET_KEY": settings.SECRET_KEY,
            "DEBUG": "0",
            "CELERY_BROKER_URL": self.redis.url,
            "LOG_LEVEL": "ERROR",
        }
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "parity",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "ERROR",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=str(settings.BASE_DIR),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def test_a_round_whose_worker_process_is_killed_completes_on_redelivery(self):
        import psutil

        from active_learning.models import RoundItem, RoundStatus, SelectionRound
        from active_learning.rounds import round_request_clean
        from active_learning.tasks import round_launch

        project = ProjectFactory(slug="killed", languages=["de"])
        de = language("de")
        Item.objects.bulk_create(
            ItemFactory.build(
                project=project,
                language=de,
                external_id=f"k{i}",
                content_hash=f"k{i}",
                status=ItemStatus.POOL,
                open_slots=0,
                response=f"Antwort Nummer {i}: "
                + " ".join(f"wort{(i * j) % 97}" for j in range(40)),
            )
            for i in range(4000)
        )
        worker = self.worker()
        self.addCleanup(lambda: (worker.kill(), worker.wait(timeout=30)))
        request = round_request_clean(
            project=project,
            budget=self.BUDGET,
            strategy="uniform",
            parameters={"evaluator_capacity": None},
        )
        with celery_broker(self.redis.url), self.settings(CELERY_BROKER_URL=self.redis.url):
            selection_round = round_launch(request=request)
        killed = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = SelectionRound.objects.get(pk=selection_round.pk).status
            children = psutil.Process(worker.pid).children()
            if status == RoundStatus.RUNNING and children and killed is None:
                time.sleep(0.3)  # well inside the round's scoring
                self.assertFalse(
                    RoundItem.objects.filter(round=selection_round).exists(),
                    "the round finished first",
                )
                killed = children[0].pid
                os.kill(killed, signal.SIGKILL)
            if status in (RoundStatus.DONE, RoundStatus.FAILED):
                break
            time.sleep(0.1)
        selection_round.refresh_from_db()
        self.assertIsNotNone(killed, "the worker process was never caught mid-round")
        self.assertEqual(selection_round.status, RoundStatus.DONE, selection_round.error)
        self.assertEqual(RoundItem.objects.filter(round=selection_round).count(), self.BUDGET)
        self.assertEqual(
            Item.objects.filter(project=project, status=ItemStatus.QUEUED).count(), self.BUDGET
        )

"""Faults under load, on PostgreSQL, loopback only, bounded in time: the database's
connections terminated while evaluators submit through the API, and the broker (a private
redis-server) stopped and started under a real Celery worker. Each asserts what users
rely on: every acknowledged judgment stored once, no item over k, nothing stuck, and the
app recovers without a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
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


class Run:
    """What the evaluators saw: acknowledged (evaluator, item) pairs and status counts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acknowledged: list[tuple[int, int]] = []
        self.statuses: dict[str, int] = {}

    def saw(self, status: int | str) -> None:
        with self.lock:
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1


def _evaluate(
    session: Any, base: str, slug: str, user_pk: int, run: Run, stop: threading.Event
) -> None:
    while not stop.is_set():
        try:
            claimed = session.post(
                f"{base}/api/v1/projects/{slug}/queue/claim/", json={}, timeout=30
            )
            run.saw(claimed.status_code)
            if claimed.status_code != 200:
                time.sleep(0.02)
                continue
            body = claimed.json()
            submitted = session.post(
                f"{base}/api/v1/assignments/{body['id']}/judgment/",
                json={"value": {"score": 3}},
                timeout=30,
            )
            run.saw(submitted.status_code)
            if submitted.status_code == 201:
                with run.lock:
                    run.acknowledged.append((user_pk, body["item"]["id"]))
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

    def run_with(self, fault: Any) -> Run:
        """Evaluators work for RUN_SECONDS while `fault(stop)` runs in its own thread."""
        run, stop = Run(), threading.Event()
        threads = [
            threading.Thread(target=_evaluate, args=(s, self.server.url, "faults", u.pk, run, stop))
            for s, u in zip(self.sessions, self.users, strict=True)
        ]
        threads.append(threading.Thread(target=fault, args=(stop,)))
        for t in threads:
            t.start()
        time.sleep(RUN_SECONDS)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        self.assertFalse(any(t.is_alive() for t in threads), "a thread hung")
        return run

    def assert_invariants(self, run: Run) -> None:
        self.assertNotIn("500", run.statuses, run.statuses)  # a 503 to retry at worst, never a 500
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

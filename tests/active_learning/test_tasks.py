"""Rounds in the background: the same plain function inline (no broker) and on a real
Celery worker over the local Redis (PostgreSQL, so the worker's own connection sees the
committed data)."""

from __future__ import annotations

import os
import threading
import time
from unittest import mock

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun, task_prerun
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.test import TransactionTestCase

from active_learning import round_runs as rounds_mod
from active_learning.models import ModelVersion, RoundItem, RoundStatus
from active_learning.round_runs import round_create_queued, round_run_queued
from active_learning.rounds import round_execute, round_request_clean
from active_learning.tasks import committee_retrain_launch, round_launch, round_run
from annotation.models import Item, ItemStatus
from parity.celery import app
from tests.active_learning.data import ARABIC, GERMAN, historical_scores, pool_items
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory, language

REDIS_URL = os.environ.get("PARITY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class RoundInlineTests(ParityTestCase):
    def setUp(self):
        pool_items(self.project, self.de, GERMAN, prefix="de")
        pool_items(self.project, self.ar, ARABIC, prefix="ar")

    def request(self, budget=6):
        return round_request_clean(project=self.project, budget=budget, strategy="uniform")

    def test_it_runs_inline_without_a_broker(self):
        with self.settings(CELERY_BROKER_URL=""):
            selection_round = round_launch(request=self.request(), actor=self.lead)
        self.assertEqual(selection_round.status, RoundStatus.DONE)
        self.assertEqual(Item.objects.filter(status=ItemStatus.QUEUED).count(), 6)

    def test_a_worker_runs_a_waiting_round_once(self):
        waiting = round_create_queued(request=self.request(), actor=self.lead)
        self.assertEqual(waiting.status, RoundStatus.QUEUED)
        self.assertEqual(sum(row["total"] for row in waiting.allocation.values()), 6)
        done = round_run_queued(round_id=waiting.pk)
        self.assertEqual(done.status, RoundStatus.DONE)
        self.assertEqual(done.created_by, self.lead)
        # A broker may deliver the same message twice: the second delivery does nothing.
        self.assertIsNone(round_run_queued(round_id=waiting.pk))
        self.assertEqual(RoundItem.objects.filter(round=waiting).count(), 6)

    def test_a_round_that_can_no_longer_run_fails_with_the_reason_and_changes_nothing(self):
        waiting = round_create_queued(request=self.request(budget=20))
        Item.objects.filter(project=self.project).update(
            status=ItemStatus.DONE
        )  # the pool emptied meanwhile
        with self.assertRaises(ValidationError):
            round_run_queued(round_id=waiting.pk)
        waiting.refresh_from_db()
        self.assertEqual(waiting.status, RoundStatus.FAILED)
        self.assertIn("no items wait in the pool", waiting.error)
        self.assertEqual(RoundItem.objects.count(), 0)

    def test_it_retrains_the_committee_inline_without_a_broker(self):
        for n in range(12):
            ItemFactory(
                project=self.project,
                language=self.de,
                external_id=f"l{n}",
                response=f"Text {n} {'gut' if n % 2 else 'schlecht'}",
                status=ItemStatus.DONE,
            )
        historical_scores(self.project, {f"l{n}": [5, 4] if n % 2 else [1, 2] for n in range(12)})
        with self.settings(CELERY_BROKER_URL=""):
            committee_retrain_launch(project=self.project)
        version = ModelVersion.objects.get()
        self.assertEqual(version.n_labels, 12)
        self.assertIn("de", version.accuracy["languages"])


@pytest.mark.postgres
class RoundWorkerTests(TransactionTestCase):
    def setUp(self):
        self.saved = {
            key: app.conf[key]
            for key in ("broker_url", "task_always_eager", "task_default_queue", "result_backend")
        }
        self.queue = f"parity-al-test-{os.getpid()}"
        app.conf.update(
            broker_url=REDIS_URL, task_always_eager=False, task_default_queue=self.queue
        )
        self.ran_in: list[tuple[str, str]] = []
        task_prerun.connect(self._seen, weak=False)
        task_postrun.connect(self._close_worker_connections, weak=False)

    def tearDown(self):
        task_prerun.disconnect(self._seen)
        task_postrun.disconnect(self._close_worker_connections)
        app.conf.update(**self.saved)
        # The app caches its queues, routes and result backend from the configuration of the
        # moment: drop them, or a later test's worker would listen on this test's queue.
        for cached in ("default_queue", "queues", "router", "routes"):
            app.amqp.__dict__.pop(cached, None)
        app.__dict__.pop("backend", None)
        if hasattr(app, "_local"):
            app._local.__dict__.pop("backend", None)

    def _seen(self, task=None, **kwargs):
        self.ran_in.append((task.name, threading.current_thread().name))

    def _close_worker_connections(self, **kwargs):
        # The worker thread's own database connection must not outlive its task: the test
        # database is flushed and dropped afterwards.
        if threading.current_thread() is not threading.main_thread():
            connections.close_all()

    def test_it_runs_a_round_on_a_real_celery_worker(self):
        project = ProjectFactory(slug="worker", languages=["de", "ar"])
        pool_items(project, language("de"), GERMAN, prefix="de")
        pool_items(project, language("ar"), ARABIC, prefix="ar")
        request = round_request_clean(
            project=project,
            budget=8,
            strategy="parity",
            seed=2,
            parameters={"evaluator_capacity": None},
        )
        with (
            start_worker(app, perform_ping_check=False, queues=[self.queue], shutdown_timeout=60),
            self.settings(CELERY_BROKER_URL=REDIS_URL),
        ):
            with transaction.atomic():
                selection_round = round_launch(request=request)
                # Inside the request's transaction the round only waits: the message goes after commit.
                self.assertEqual(selection_round.status, RoundStatus.QUEUED)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                selection_round.refresh_from_db()
                if selection_round.status in (RoundStatus.DONE, RoundStatus.FAILED):
                    break
                time.sleep(0.2)
        self.assertEqual(selection_round.status, RoundStatus.DONE, selection_round.error)
        self.assertEqual(RoundItem.objects.filter(round=selection_round).count(), 8)
        self.assertEqual(Item.objects.filter(project=project, status=ItemStatus.QUEUED).count(), 8)
        # It ran on the worker's thread, not eagerly in this one.
        self.assertEqual(len(self.ran_in), 1)
        name, thread = self.ran_in[0]
        self.assertEqual(name, "active_learning.round_run")
        self.assertNotEqual(thread, threading.main_thread().name)


CHORD_SETTINGS = {
    "CELERY_BROKER_URL": "memory://",
    "CELERY_RESULT_BACKEND": "cache+memory://",
    "PARITY_AL_SCORE_CHUNK": 5,
}


class RoundChordTests(ParityTestCase):
    """The chord path run eagerly: the same plain functions a worker runs, chunk by chunk."""

    def pool(self, slug):
        project = ProjectFactory(slug=slug, languages=["de", "ar"])
        pool_items(project, self.de, GERMAN, prefix="de")
        pool_items(project, self.ar, ARABIC, prefix="ar")
        return project

    def picked(self, selection_round):
        return sorted(
            RoundItem.objects.filter(round=selection_round).values_list(
                "item__external_id", "score"
            )
        )

    def test_it_scores_the_pool_in_chunks_and_selects_what_the_inline_round_selects(self):
        inline_project, chord_project = self.pool("inline"), self.pool("chunked")
        parameters = {"evaluator_capacity": None}
        inline = round_execute(
            request=round_request_clean(
                project=inline_project, budget=8, strategy="parity", seed=4, parameters=parameters
            )
        )
        waiting = round_create_queued(
            request=round_request_clean(
                project=chord_project, budget=8, strategy="parity", seed=4, parameters=parameters
            )
        )
        chunks = []
        real = rounds_mod.round_chunk_score

        def spy(**kwargs):
            chunks.append(list(kwargs["item_ids"]))
            return real(**kwargs)

        with (
            self.settings(**CHORD_SETTINGS),
            mock.patch("active_learning.tasks.round_chunk_score", side_effect=spy),
        ):
            answer = round_run(waiting.pk)
        self.assertEqual(
            answer, {"round": waiting.pk, "status": "scoring", "chunks": 5}
        )  # 24 items, 5 a chunk
        self.assertEqual(
            sorted(i for chunk in chunks for i in chunk),
            sorted(Item.objects.filter(project=chord_project).values_list("pk", flat=True)),
        )
        waiting.refresh_from_db()
        self.assertEqual(waiting.status, RoundStatus.DONE, waiting.error)
        self.assertEqual(self.picked(waiting), self.picked(inline))
        self.assertEqual(
            Item.objects.filter(project=chord_project, status=ItemStatus.QUEUED).count(), 8
        )
        # A broker may deliver the same message twice: the second delivery does nothing.
        with self.settings(**CHORD_SETTINGS):
            self.assertEqual(round_run(waiting.pk)["status"], "already taken")

    def test_a_failing_chunk_fails_the_round_and_leaves_the_pool_alone(self):
        project = self.pool("failing")
        waiting = round_create_queued(
            request=round_request_clean(
                project=project,
                budget=6,
                strategy="uniform",
                parameters={"evaluator_capacity": None},
            )
        )
        with (
            self.settings(**CHORD_SETTINGS),
            mock.patch(
                "active_learning.tasks.round_chunk_score", side_effect=RuntimeError("worker lost")
            ),
            self.assertRaises(RuntimeError),
        ):
            round_run(waiting.pk)
        waiting.refresh_from_db()
        self.assertEqual(waiting.status, RoundStatus.FAILED)
        self.assertIn("worker lost", waiting.error)
        self.assertFalse(Item.objects.filter(project=project, status=ItemStatus.QUEUED).exists())
        self.assertEqual(RoundItem.objects.filter(round=waiting).count(), 0)


@pytest.mark.postgres
class RoundChordWorkerTests(RoundWorkerTests):
    def test_it_runs_a_round_on_a_real_celery_worker(self):
        """The chord on a real worker: chunks, then one finishing task, over Redis."""
        app.conf.update(result_backend=REDIS_URL)
        project = ProjectFactory(slug="chord-worker", languages=["de", "ar"])
        pool_items(project, language("de"), GERMAN, prefix="de")
        pool_items(project, language("ar"), ARABIC, prefix="ar")
        request = round_request_clean(
            project=project,
            budget=8,
            strategy="parity",
            seed=2,
            parameters={"evaluator_capacity": None},
        )
        with (
            start_worker(app, perform_ping_check=False, queues=[self.queue], shutdown_timeout=60),
            self.settings(
                CELERY_BROKER_URL=REDIS_URL,
                CELERY_RESULT_BACKEND=REDIS_URL,
                PARITY_AL_SCORE_CHUNK=10,
            ),
        ):
            with transaction.atomic():
                selection_round = round_launch(request=request)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                selection_round.refresh_from_db()
                if selection_round.status in (RoundStatus.DONE, RoundStatus.FAILED):
                    break
                time.sleep(0.2)
        self.assertEqual(selection_round.status, RoundStatus.DONE, selection_round.error)
        self.assertEqual(RoundItem.objects.filter(round=selection_round).count(), 8)
        names = [name for name, _ in self.ran_in]
        self.assertEqual(
            names.count("active_learning.round_score_chunk"), 3
        )  # 24 items, 10 a chunk
        self.assertEqual(names[0], "active_learning.round_run")
        self.assertEqual(names[-1], "active_learning.round_finish")

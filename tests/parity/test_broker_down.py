"""A broker that is down never fails a request: the committed work is recorded as
pending, and the sweep sends it once the broker is back (a private redis-server that the
tests stop and start; the shared one is never touched)."""

from __future__ import annotations

import base64
import io
import json
from datetime import timedelta

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone

from active_learning.models import RoundStatus, SelectionRound
from active_learning.tasks import background_sweep
from annotation.models import Item
from tests.active_learning.data import GERMAN, pool_items
from tests.annotation.api_support import ApiTestCase, ndjson
from tests.redis_private import PrivateRedis, celery_broker, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="needs redis-server on PATH")


def queued_messages(url: str) -> list[dict]:
    """The task messages waiting in the private broker: name and arguments."""
    out = []
    for raw in redis.Redis.from_url(url).lrange("celery", 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        out.append({"task": message["headers"]["task"], "args": args})
    return out


class BrokerDownTests(ApiTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = PrivateRedis()

    @classmethod
    def tearDownClass(cls):
        cls.redis.close()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.redis.stop()  # every test starts with the broker down
        self.enterContext(celery_broker(self.redis.url))
        self.enterContext(
            self.settings(CELERY_BROKER_URL=self.redis.url, PARITY_LANGUAGE_CHECK=True)
        )

    def import_items(self, n=3):
        lines = [
            {
                "external_id": f"x{i}",
                "language": "de",
                "prompt": "Frage",
                "response": f"Das ist eine ziemlich lange deutsche Antwort Nummer {i}.",
            }
            for i in range(n)
        ]
        with self.captureOnCommitCallbacks(execute=True):
            return self.call(
                "post",
                self.url("items/"),
                token=self.tokens["import"],
                body=ndjson(lines),
                content_type="application/x-ndjson",
            )

    def test_an_import_is_answered_and_its_language_checks_wait_for_the_sweep(self):
        response = self.import_items()
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["created"], 3)
        pending = Item.objects.filter(project=self.project, language_check__isnull=True)
        self.assertEqual(pending.count(), 3)
        # The sweep while the broker is still down: nothing raised, still pending.
        self.assertEqual(background_sweep(older_than=timedelta(0))["language_checks"], 3)
        self.redis.start()
        background_sweep(older_than=timedelta(0))
        sent = queued_messages(self.redis.url)
        self.assertEqual([m["task"] for m in sent], ["annotation.language_check_items"])
        self.assertEqual(sorted(sent[0]["args"][0]), sorted(pending.values_list("pk", flat=True)))

    def test_a_round_from_the_api_is_accepted_and_stays_pending_until_the_sweep_sends_it(self):
        pool_items(self.project, self.de, GERMAN, prefix="de")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.call(
                "post",
                self.url("al-rounds/"),
                token=self.tokens["import"],
                body={"budget": 4, "strategy": "uniform"},
            )
        self.assertEqual(response.status_code, 202, response.content)
        selection_round = SelectionRound.objects.get()
        self.assertEqual(selection_round.status, RoundStatus.QUEUED)
        self.redis.start()
        # A round only just queued is not the sweep's yet (its message may still be on the way).
        self.assertEqual(background_sweep(older_than=timedelta(minutes=5))["rounds"], 0)
        SelectionRound.objects.filter(pk=selection_round.pk).update(
            created_at=timezone.now() - timedelta(minutes=10)
        )
        self.assertEqual(background_sweep(older_than=timedelta(minutes=5))["rounds"], 1)
        self.assertEqual(
            [m["task"] for m in queued_messages(self.redis.url)], ["active_learning.round_run"]
        )

    def test_a_round_from_the_lead_page_redirects_to_the_waiting_round(self):
        pool_items(self.project, self.de, GERMAN, prefix="de")
        self.client.force_login(self.lead)
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(
                f"/p/{self.project.slug}/lead/al/run/",
                {"budget": 4, "strategy": "uniform", "seed": 0, "features": "hashing"},
            )
        self.assertEqual(response.status_code, 302, response.content[:500])
        self.assertEqual(SelectionRound.objects.get().status, RoundStatus.QUEUED)

    def test_the_sweep_command_reports_what_it_sent(self):
        self.import_items(n=2)
        self.redis.start()
        call_command(
            "background_sweep", "--older-than", "0", "--json", stdout=(out := io.StringIO())
        )
        self.assertEqual(
            json.loads(out.getvalue()), {"language_checks": 2, "rounds": 0, "export_projects": 0}
        )


class SweepScheduleTests(ApiTestCase):
    def test_celery_beat_sends_the_sweep_task_the_worker_knows(self):
        from parity.celery import app

        app.loader.import_default_modules()
        entry = app.conf.beat_schedule["background-sweep"]
        self.assertIn(entry["task"], app.tasks)
        self.assertTrue(app.conf.task_acks_late and app.conf.task_reject_on_worker_lost)

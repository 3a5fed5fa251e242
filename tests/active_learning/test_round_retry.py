"""A round survives its worker: a redelivered message (same id) retakes a round its dead
worker left running, a stale run is taken over, and two deliveries never apply twice."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from active_learning.models import RoundItem, RoundStatus, SelectionRound
from active_learning.round_runs import round_create_queued, round_run_queued
from active_learning.rounds import round_request_clean
from active_learning.tasks import background_sweep
from annotation.models import Item, ItemStatus
from tests.active_learning.data import GERMAN, pool_items
from tests.base import ParityTestCase


class RoundRetryTests(ParityTestCase):
    def setUp(self):
        pool_items(self.project, self.de, GERMAN, prefix="de")
        self.waiting = round_create_queued(
            request=round_request_clean(project=self.project, budget=4, strategy="uniform"),
            actor=self.lead,
        )

    def worker_died_holding(self, task_id: str, minutes_ago: float = 0) -> None:
        # What a worker killed mid-round leaves: the round taken, nothing else written.
        SelectionRound.objects.filter(pk=self.waiting.pk).update(
            status=RoundStatus.RUNNING,
            task_id=task_id,
            started_at=timezone.now() - timedelta(minutes=minutes_ago),
        )

    def test_the_redelivered_message_completes_the_round_its_dead_worker_left_running(self):
        self.worker_died_holding("message-1")
        done = round_run_queued(round_id=self.waiting.pk, task_id="message-1")
        self.assertEqual(done.status, RoundStatus.DONE)
        self.assertEqual(RoundItem.objects.filter(round=self.waiting).count(), 4)
        self.assertEqual(Item.objects.filter(status=ItemStatus.QUEUED).count(), 4)

    def test_another_message_leaves_a_running_round_alone(self):
        self.worker_died_holding("message-1")
        self.assertIsNone(round_run_queued(round_id=self.waiting.pk, task_id="message-2"))
        self.assertEqual(SelectionRound.objects.get(pk=self.waiting.pk).status, RoundStatus.RUNNING)

    def test_the_sweep_takes_over_a_round_running_past_the_stale_limit(self):
        self.worker_died_holding("message-1", minutes_ago=120)
        with self.settings(PARITY_ROUND_STALE_SECONDS=3600):
            self.assertEqual(
                background_sweep(older_than=timedelta(0))["rounds"], 1
            )  # no broker: runs here
        self.assertEqual(SelectionRound.objects.get(pk=self.waiting.pk).status, RoundStatus.DONE)
        self.assertEqual(Item.objects.filter(status=ItemStatus.QUEUED).count(), 4)

    def test_a_second_delivery_after_the_round_finished_applies_nothing(self):
        round_run_queued(round_id=self.waiting.pk, task_id="message-1")
        self.assertIsNone(round_run_queued(round_id=self.waiting.pk, task_id="message-1"))
        self.assertEqual(RoundItem.objects.filter(round=self.waiting).count(), 4)

    def test_the_sweep_runs_a_waiting_round_without_a_broker(self):
        SelectionRound.objects.filter(pk=self.waiting.pk).update(
            created_at=timezone.now() - timedelta(minutes=5)
        )
        self.assertEqual(
            background_sweep(older_than=timedelta(minutes=1)),
            {"language_checks": 0, "rounds": 1, "export_projects": 0},
        )
        self.assertEqual(SelectionRound.objects.get(pk=self.waiting.pk).status, RoundStatus.DONE)

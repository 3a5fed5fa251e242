"""The demo's mlqe-pool: a lead runs an active-learning round from the lead page, the
committee trains on the pool's historical labels, and the picked items reach evaluators."""

from __future__ import annotations

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import TestCase

from active_learning.models import SelectionRound
from annotation.models import Item, ItemStatus, Project
from annotation.queue import item_claim_next

PASSWORD = "demo-pw-in-tests"


class DemoPoolTests(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        # 30 per pool pair: 10 of them labelled, enough for the committee's minimum.
        call_command("demo", "--limit", "30", "--password", PASSWORD, stdout=StringIO())
        cls.users = {u.username: u for u in get_user_model().objects.all()}
        cls.project = Project.objects.get(slug="mlqe-pool")

    def test_a_lead_runs_a_round_from_the_lead_page_and_evaluators_get_its_items(self) -> None:
        self.client.force_login(self.users["lead"])
        dashboard = self.client.get("/p/mlqe-pool/lead/")
        self.assertContains(dashboard, 'href="/p/mlqe-pool/lead/al/"')
        response = self.client.post(
            "/p/mlqe-pool/lead/al/run/",
            {"budget": "9", "strategy": "parity", "seed": "0", "features": "hashing"},
        )
        selection_round = SelectionRound.objects.get(project=self.project)
        self.assertRedirects(response, f"/p/mlqe-pool/lead/al/rounds/{selection_round.pk}/")
        # The committee learned from the data set's own raters before scoring the pool.
        self.assertIsNotNone(selection_round.model_version)
        self.assertGreaterEqual(selection_round.model_version.n_labels, 10)
        queued = Item.objects.filter(project=self.project, status=ItemStatus.QUEUED)
        self.assertEqual(queued.count(), 9)
        self.assertFalse(queued.filter(judgments__isnull=False).exists())  # only unlabelled items
        assignment = item_claim_next(evaluator=self.users["emma"], project=self.project)
        self.assertIn(assignment.item, queued)

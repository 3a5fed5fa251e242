from __future__ import annotations

from active_learning.models import RoundItem, SelectionRound
from annotation.models import Item, ItemStatus
from tests.active_learning.data import ARABIC, GERMAN, pool_items
from tests.base import ParityTestCase


class LeadPagesTests(ParityTestCase):
    def setUp(self):
        pool_items(self.project, self.de, GERMAN, prefix="de")
        pool_items(self.project, self.ar, ARABIC, prefix="ar")
        self.base = f"/p/{self.project.slug}/lead/al/"

    def test_it_previews_the_allocation_before_anything_is_queued(self):
        self.client.force_login(self.lead)
        page = self.client.get(self.base)
        self.assertContains(page, "Preview the allocation")
        data = {"budget": 10, "strategy": "parity", "seed": 1, "features": "hashing"}
        fragment = self.client.post(self.base + "preview/", data, HTTP_HX_REQUEST="true")
        self.assertEqual(fragment.status_code, 200)
        self.assertContains(fragment, 'id="preview"')
        self.assertContains(fragment, "Queue these 10 items")
        self.assertNotContains(fragment, "<html")
        self.assertEqual(SelectionRound.objects.count(), 0)
        self.assertFalse(Item.objects.filter(status=ItemStatus.QUEUED).exists())
        # Without htmx the same preview is a whole page.
        full = self.client.post(self.base + "preview/", data)
        self.assertContains(full, "<html")
        self.assertContains(full, "Queue these 10 items")

    def test_it_runs_the_round_and_shows_it(self):
        self.client.force_login(self.lead)
        response = self.client.post(
            self.base + "run/",
            {"budget": 10, "strategy": "uniform", "seed": 0, "features": "hashing"},
        )
        selection_round = SelectionRound.objects.get()
        self.assertRedirects(response, f"{self.base}rounds/{selection_round.pk}/")
        self.assertEqual(selection_round.created_by, self.lead)
        page = self.client.get(f"{self.base}rounds/{selection_round.pk}/")
        picked = RoundItem.objects.filter(round=selection_round).select_related("item").first()
        self.assertContains(page, picked.item.external_id)
        self.assertContains(page, '<div class="snippet" lang="ar" dir="rtl">')
        listing = self.client.get(self.base)
        self.assertContains(listing, f"#{selection_round.pk}")

    def test_it_shows_why_a_round_cannot_run(self):
        self.client.force_login(self.lead)
        response = self.client.post(
            self.base + "preview/",
            {"budget": 999, "strategy": "parity", "seed": 0, "features": "hashing"},
            HTTP_HX_REQUEST="true",
        )
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "above the pool", status_code=400)
        response = self.client.post(
            self.base + "run/",
            {"budget": 0, "strategy": "parity", "seed": 0, "features": "hashing"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(SelectionRound.objects.count(), 0)

    def test_it_is_for_leads_only(self):
        self.client.force_login(self.alice)
        self.assertEqual(self.client.get(self.base).status_code, 403)
        response = self.client.post(
            self.base + "run/",
            {"budget": 5, "strategy": "uniform", "seed": 0, "features": "hashing"},
        )
        self.assertEqual(response.status_code, 403)
        self.assertEqual(SelectionRound.objects.count(), 0)
        self.client.logout()
        self.assertEqual(self.client.get(self.base).status_code, 302)

    def test_it_offers_no_local_encoder_without_one_and_shows_every_refusal(self):
        # Issue 13: "local encoder" was offered with no encoder configured, and its refusal
        # sat in a hidden element (a blank page to the lead).
        self.client.force_login(self.lead)
        with self.settings(PARITY_ENCODER_PATH=""):
            page = self.client.get(self.base)
            self.assertNotContains(page, 'value="encoder"')
            refused = self.client.post(
                self.base + "preview/",
                {"budget": 10, "strategy": "parity", "seed": 0, "features": "encoder"},
                HTTP_HX_REQUEST="true",
            )
        self.assertEqual(refused.status_code, 400)
        self.assertContains(refused, "Select a valid choice", status_code=400)
        self.assertContains(
            refused, '<section id="preview" class="panel" aria-live="polite">', status_code=400
        )
        with self.settings(PARITY_ENCODER_PATH="/models/e5"):
            self.assertContains(self.client.get(self.base), 'value="encoder"')

"""One lead-access rule for every app's lead pages: the project or 404, its lead or 403,
with one message."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.urls import reverse

from annotation.access import LEAD_ONLY, project_for_lead
from tests.base import ParityTestCase

LEAD_PAGES = [
    "annotation:lead_parity",
    "annotation:tokens",
    "guidelines:lead_guideline",
    "active_learning:rounds",
]


class LeadAccessTests(ParityTestCase):
    def test_it_shows_each_apps_lead_pages_to_the_lead_only(self):
        for name in LEAD_PAGES:
            with self.subTest(page=name):
                self.client.force_login(self.lead)
                self.assertEqual(
                    self.client.get(reverse(name, args=[self.project.slug])).status_code, 200
                )
                self.assertEqual(
                    self.client.get(reverse(name, args=["no-such-project"])).status_code, 404
                )
                self.client.force_login(self.alice)
                self.assertEqual(
                    self.client.get(reverse(name, args=[self.project.slug])).status_code, 403
                )

    def test_it_refuses_with_one_message(self):
        request = RequestFactory().get("/")
        request.user = self.alice
        with self.assertRaisesMessage(PermissionDenied, str(LEAD_ONLY)):
            project_for_lead(request, self.project.slug)
        request.user = self.lead
        self.assertEqual(project_for_lead(request, self.project.slug), self.project)

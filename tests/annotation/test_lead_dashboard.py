"""The lead dashboard (/p/<slug>/lead/): the project's figures per language, a link to every
lead page of every app, the shared lead sub-navigation, and the way in from the queue home."""

from __future__ import annotations

import re

from django.urls import reverse

from annotation.demo_data import numbered
from annotation.gold import gold_create
from annotation.imports import judgments_import
from annotation.models import ItemStatus, Judgment, Qualification, QualificationStatus
from annotation.overview import project_overview, projects_led
from annotation.qualification import qualification_set
from annotation.queue import item_claim_next, judgment_submit
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory, UserFactory


def dashboard_url(slug: str = "mt-rating") -> str:
    return reverse("annotation:lead_dashboard", args=[slug])


class LeadDashboardTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        for n in range(3):
            ItemFactory(project=cls.project, language=cls.de, external_id=f"de{n}")
        ItemFactory(
            project=cls.project,
            language=cls.de,
            external_id="de-pool",
            status=ItemStatus.POOL,
            open_slots=0,
        )
        ItemFactory(project=cls.project, language=cls.ar, external_id="ar0", language_flagged=True)
        gold_create(
            project=cls.project,
            external_id="gold-ar",
            language="ar",
            prompt="Translate: peace",
            response="سلام",
            value={"score": 5},
            explanation="Right.",
            actor=cls.lead,
        )
        judgments_import(
            project=cls.project,
            records=numbered(
                [
                    {"item_external_id": "ar0", "rater": f"r{k}", "value": {"score": 4}}
                    for k in range(2)
                ]
            ),
        )
        assignment = item_claim_next(evaluator=cls.alice, project=cls.project)
        judgment_submit(assignment=assignment, evaluator=cls.alice, value={"score": 3})
        Judgment.objects.filter(evaluator=cls.alice).update(too_fast=True)
        cls.carol = UserFactory(username="carol")
        qualification_set(
            project=cls.project,
            evaluator=cls.carol,
            language=cls.zh,
            status=QualificationStatus.PENDING,
            actor=cls.lead,
        )

    def test_it_counts_items_judgments_and_evaluators_per_language(self):
        overview = project_overview(project=self.project)
        rows = {row.language.tag: row for row in overview.languages}
        self.assertEqual(list(rows), ["ar", "de", "zh"])
        self.assertEqual(rows["de"].items, {"queued": 3, "pool": 1})
        self.assertEqual(
            (rows["ar"].items, rows["ar"].gold, rows["ar"].flagged), ({"queued": 1}, 1, 1)
        )
        self.assertEqual(rows["ar"].judgments, {"historical": 2})
        self.assertEqual((rows["de"].judgments, rows["de"].too_fast), ({"production": 1}, 1))
        self.assertEqual(rows["zh"].qualifications, {"pending": 1})
        self.assertEqual(rows["de"].qualifications, {"qualified": 1})
        totals = overview.totals
        self.assertEqual(
            (totals.item_total, totals.judgment_total, totals.gold, totals.flagged), (5, 3, 1, 1)
        )
        self.assertEqual((overview.evaluators_total, overview.evaluators_qualified), (3, 2))
        carol = next(row for row in overview.evaluators if row.evaluator == self.carol)
        self.assertEqual(
            [(q.language.tag, q.status) for q in carol.qualifications], [("zh", "pending")]
        )

    def test_it_shows_the_figures_to_a_lead(self):
        self.client.force_login(self.lead)
        response = self.client.get(dashboard_url())
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        self.assertIn("Project overview", html)
        # The German row: pool 1, queued 3 (statuses in ItemStatus order), no gold, nothing flagged.
        row = re.search(r'<code lang="de" dir="ltr">de</code></th>(.*?)</tr>', html, re.S).group(1)
        self.assertEqual(
            re.findall(r'<td class="num[^"]*">(\d+)</td>', row), ["1", "3", "0", "0", "0", "0", "0"]
        )
        # Evaluators by pseudonym, as on every lead page (issue 13), never by username.
        self.assertIn(self.carol.evaluator_profile.pseudonym, html)
        self.assertNotIn("carol", html)
        self.assertIn("pending calibration", html)

    def test_it_links_every_lead_page_of_every_app(self):
        self.project.guideline_version = "1.2.0"
        self.project.save(update_fields=["guideline_version"])
        self.client.force_login(self.lead)
        response = self.client.get(dashboard_url())
        slug = self.project.slug
        for name in (
            "annotation:lead_parity",
            "annotation:lead_agreement",
            "annotation:adjudication_queue",
            "annotation:tokens",
            "annotation:report_triage",
            "guidelines:lead_guideline",
            "guidelines:lead_gold",
            "guidelines:lead_rounds",
            "guidelines:lead_honeypots",
            "guidelines:lead_too_fast",
            "guidelines:lead_guideline_translation",
            "active_learning:rounds",
        ):
            self.assertContains(response, f'href="{reverse(name, args=[slug])}"', msg_prefix=name)
        self.assertContains(
            response, f'href="{reverse("guidelines:lead_guideline_diff", args=[slug, "1.2.0"])}"'
        )
        # The admin is for staff only: a lead who is not staff gets no admin links.
        self.assertNotContains(response, "/admin/")

    def test_it_links_the_admin_filtered_to_the_project_for_staff(self):
        admin = UserFactory(username="root", is_staff=True, is_superuser=True)
        self.client.force_login(admin)
        response = self.client.get(dashboard_url())
        pk = self.project.pk
        self.assertContains(response, f'href="/admin/annotation/item/?project__id__exact={pk}"')
        self.assertContains(
            response, f'href="/admin/annotation/qualification/?project__id__exact={pk}"'
        )
        self.assertContains(response, f'href="/admin/annotation/project/{pk}/change/"')

    def test_it_refuses_evaluators_and_outsiders(self):
        for user in (self.alice, self.outsider):
            self.client.force_login(user)
            self.assertEqual(self.client.get(dashboard_url()).status_code, 403)
        self.client.logout()
        response = self.client.get(dashboard_url())
        self.assertRedirects(
            response, f"/accounts/login/?next={dashboard_url()}", fetch_redirect_response=False
        )
        self.client.force_login(self.lead)
        self.assertEqual(self.client.get(dashboard_url("no-such-project")).status_code, 404)


class LeadSubNavigationTests(ParityTestCase):
    def subnav(self, url: str) -> str:
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200, url)
        match = re.search(r'<nav class="lead-subnav".*?</nav>', response.content.decode(), re.S)
        self.assertIsNotNone(match, f"no lead sub-navigation on {url}")
        return match.group(0)

    def test_it_is_the_same_on_the_lead_pages_of_every_app(self):
        self.client.force_login(self.lead)
        slug = self.project.slug
        pages = {
            "Overview": dashboard_url(),
            "Parity": reverse("annotation:lead_parity", args=[slug]),
            "Adjudication": reverse("annotation:adjudication_queue", args=[slug]),
            "Gold items": reverse("guidelines:lead_gold", args=[slug]),
            "Honeypots": reverse("guidelines:lead_honeypots", args=[slug]),
            "Active learning": reverse("active_learning:rounds", args=[slug]),
        }
        links = None
        for label, url in pages.items():
            nav = self.subnav(url)
            hrefs = re.findall(r'<a href="([^"]+)"', nav)
            links = links or hrefs
            self.assertEqual(hrefs, links, url)  # the same links everywhere, in the same order
            current = re.findall(r'aria-current="page">([^<]+)</a>', nav)
            self.assertEqual(current, [label], url)
        self.assertIn(dashboard_url(), links)
        self.assertIn(reverse("annotation:tokens", args=[slug]), links)

    def test_it_shows_a_senior_evaluator_only_the_adjudication_queue(self):
        Qualification.objects.filter(evaluator=self.alice, project=self.project).update(
            is_senior=True
        )
        self.client.force_login(self.alice)
        nav = self.subnav(reverse("annotation:adjudication_queue", args=[self.project.slug]))
        self.assertEqual(
            re.findall(r'<a href="([^"]+)"', nav),
            [reverse("annotation:adjudication_queue", args=[self.project.slug])],
        )


class QueueHomeLeadLinkTests(ParityTestCase):
    def test_it_lists_the_projects_a_lead_leads(self):
        other = ProjectFactory(slug="other", languages=["de"])
        self.client.force_login(self.lead)
        response = self.client.get("/")
        self.assertContains(response, "Projects you lead")
        self.assertContains(response, f'href="{dashboard_url()}"')
        self.assertNotContains(response, f'href="{dashboard_url(other.slug)}"')
        self.assertNotContains(response, "You are not part of any project yet")
        self.assertEqual(projects_led(user=self.lead), [self.project])

    def test_it_puts_a_lead_link_beside_a_project_its_evaluator_also_leads(self):
        self.project.leads.add(self.alice)
        self.client.force_login(self.alice)
        html = self.client.get("/").content.decode()
        section = re.search(r'<section class="panel project".*?</section>', html, re.S).group(0)
        self.assertIn(f'href="{dashboard_url()}"', section)

    def test_it_gives_evaluators_no_lead_links(self):
        self.client.force_login(self.bashir)
        response = self.client.get("/")
        self.assertNotContains(response, "/lead/")
        self.assertNotContains(response, "Projects you lead")
        self.assertEqual(projects_led(user=self.bashir), [])

    def test_it_treats_a_superuser_as_lead_of_every_project(self):
        ProjectFactory(slug="other", languages=["de"])
        root = UserFactory(username="root", is_superuser=True)
        self.assertEqual([p.slug for p in projects_led(user=root)], ["mt-rating", "other"])
        self.client.force_login(root)
        self.assertContains(self.client.get("/"), f'href="{dashboard_url("other")}"')

"""Lead pages: parity, agreement (inline SVG charts), the adjudication queue — and who may see them."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from annotation.demo_data import numbered
from annotation.imports import judgments_import
from annotation.models import (
    Assignment,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    JudgmentKind,
    TaskType,
)
from annotation.qualification import qualification_grant
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory, UserFactory


class LeadPageTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        lines = []
        for n, scores in enumerate(
            ([4, 4, 5], [2, 3, 2], [5, 5, 5], [1, 2, 1], [3, 3, 4], [4, 5, 4])
        ):
            for language in (cls.de, cls.ar):
                ItemFactory(
                    project=cls.project, language=language, external_id=f"{language.tag}{n}"
                )
                lines += [
                    {
                        "item_external_id": f"{language.tag}{n}",
                        "rater": f"r{k}",
                        "value": {"score": s},
                    }
                    for k, s in enumerate(scores)
                ]
        judgments_import(project=cls.project, records=numbered(lines))

    def test_it_shows_the_parity_report_with_svg_charts_to_a_lead(self):
        self.client.force_login(self.lead)
        response = self.client.get(reverse("annotation:lead_parity", args=[self.project.slug]))
        self.assertEqual(response.status_code, 200)
        body = response.content.decode()
        self.assertEqual(body.count("<svg"), 2)
        self.assertIn('class="whisker"', body)
        self.assertIn("Parity report", body)
        self.assertIn('<span lang="ar" dir="rtl">ar</span>', body)
        self.assertIn("not picked by an uncertainty selector", body)
        self.assertNotIn('<script src="https://', body)

    def test_its_flags_and_notes_follow_the_interface_language(self):
        # A threshold no language reaches: every language is flagged for low agreement.
        type(self.project).objects.filter(pk=self.project.pk).update(agreement_threshold=0.99)
        self.client.force_login(self.lead)
        url = reverse("annotation:lead_parity", args=[self.project.slug])
        english = self.client.get(url).content.decode()
        self.assertIn("is below the project threshold 0.990.", english)
        self.client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ar"
        arabic = self.client.get(url).content.decode()
        self.assertIn('dir="rtl"', arabic)
        # German and Arabic, each in the flag and its title.
        self.assertEqual(arabic.count("أقل من حدّ المشروع 0.990"), 4)
        self.assertIn("لم يخترها مُنتقٍ قائم على عدم اليقين", arabic)
        for english_only in (
            "is below the project threshold",
            "not picked by an uncertainty selector",
        ):
            self.assertNotIn(english_only, arabic)

    def test_it_shows_agreement_with_a_kappa_heat_map_and_reliability_table(self):
        self.client.force_login(self.lead)
        response = self.client.get(reverse("annotation:lead_agreement", args=[self.project.slug]))
        self.assertEqual(response.status_code, 200)
        body = response.content.decode()
        self.assertIn('class="heatmap"', body)
        self.assertIn('class="ci-chart"', body)
        self.assertEqual(body.count('class="cell"'), 9)  # 3 × 3 raters
        self.assertIn('class="reliability"', body)
        self.assertContains(response, "r0")

    def test_it_filters_agreement_by_language_and_level(self):
        self.client.force_login(self.lead)
        url = reverse("annotation:lead_agreement", args=[self.project.slug])
        response = self.client.get(url, {"language": "de", "level": "interval"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "(interval)")

    def test_it_refuses_bad_filters_with_the_reason(self):
        self.client.force_login(self.lead)
        url = reverse("annotation:lead_agreement", args=[self.project.slug])
        response = self.client.get(url, {"level": "cardinal"})
        self.assertContains(response, "level must be one of", status_code=400)
        response = self.client.get(url, {"language": "fr"})
        self.assertContains(response, "is not a language of project", status_code=400)

    def test_it_refuses_evaluators_and_outsiders(self):
        for user in (self.alice, self.outsider):
            self.client.force_login(user)
            for name in ("lead_parity", "lead_agreement", "adjudication_queue"):
                with self.subTest(user=user.username, page=name):
                    response = self.client.get(
                        reverse(f"annotation:{name}", args=[self.project.slug])
                    )
                    self.assertEqual(response.status_code, 403)

    def test_it_sends_anonymous_visitors_to_log_in(self):
        response = self.client.get(reverse("annotation:lead_parity", args=[self.project.slug]))
        self.assertEqual(response.status_code, 302)
        self.assertIn("/accounts/login/", response["Location"])

    def test_it_lets_a_superuser_in(self):
        admin = UserFactory(username="root", is_superuser=True, is_staff=True)
        self.client.force_login(admin)
        self.assertEqual(
            self.client.get(
                reverse("annotation:lead_parity", args=[self.project.slug])
            ).status_code,
            200,
        )


class AdjudicationPageTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.duel = ProjectFactory(slug="duel", task_type=TaskType.PAIRWISE, languages=["de", "ar"])
        cls.duel.leads.add(cls.lead)
        cls.senior = UserFactory(username="senior")
        qualification_grant(project=cls.duel, evaluator=cls.senior, language=cls.de, is_senior=True)
        qualification_grant(project=cls.duel, evaluator=cls.alice, language=cls.de)
        cls.item = ItemFactory(
            project=cls.duel,
            language=cls.de,
            external_id="split",
            status=ItemStatus.ADJUDICATION,
            response_a="Links",
            response_b="Rechts",
        )
        judgments_import(
            project=cls.duel,
            records=numbered(
                [
                    {
                        "item_external_id": "split",
                        "rater": "r1",
                        "value": {"choice": "a", "strength": 1, "comment": "A klingt natürlicher."},
                    },
                    {
                        "item_external_id": "split",
                        "rater": "r2",
                        "value": {"choice": "b", "strength": 2},
                    },
                ]
            ),
        )

    def _url(self) -> str:
        return reverse("annotation:adjudication_item", args=[self.duel.slug, self.item.pk])

    def test_it_shows_every_judgment_and_comment_to_a_senior_evaluator(self):
        self.client.force_login(self.senior)
        queue = self.client.get(reverse("annotation:adjudication_queue", args=[self.duel.slug]))
        self.assertContains(queue, self._url())
        response = self.client.get(self._url())
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "A klingt natürlicher.")
        self.assertContains(response, '<p class="comment" lang="de" dir="auto">')
        self.assertContains(response, 'lang="de" dir="ltr">Links</div>')
        # Seniors adjudicate; the lead-only reports stay closed to them.
        self.assertEqual(
            self.client.get(reverse("annotation:lead_parity", args=[self.duel.slug])).status_code,
            403,
        )

    def test_it_names_external_raters_by_their_id_and_evaluators_by_pseudonym(self):
        assignment = Assignment.objects.create(
            item=self.item, evaluator=self.alice, project=self.duel, lease_expires_at=timezone.now()
        )
        Judgment.objects.create(
            item=self.item,
            assignment=assignment,
            evaluator=self.alice,
            kind=JudgmentKind.PRODUCTION,
            value={"choice": "a"},
        )
        self.client.force_login(self.senior)
        response = self.client.get(self._url())
        self.assertContains(response, "<strong><bdi>r1</bdi></strong>")
        self.assertContains(response, "<strong><bdi>r2</bdi></strong>")
        pseudonym = self.alice.evaluator_profile.pseudonym
        self.assertContains(response, f"<strong><bdi>{pseudonym}</bdi></strong>")
        self.assertNotContains(response, "<bdi>alice</bdi>")

    def test_a_translation_source_is_marked_up_in_its_own_language_as_on_the_item_card(self):
        # The demo's WMT and MLQE-PE items name their source sentence's language this way.
        Item.objects.filter(pk=self.item.pk).update(
            prompt="שלום עולם", metadata={"source_language": "he"}
        )
        self.client.force_login(self.senior)
        response = self.client.get(self._url())
        self.assertContains(response, 'lang="he" dir="rtl">שלום עולם</div>')

    def test_it_never_shows_others_judgments_to_a_production_evaluator(self):
        self.client.force_login(self.alice)
        response = self.client.get(self._url())
        self.assertEqual(response.status_code, 403)
        self.assertNotIn("natürlicher", response.content.decode())
        response = self.client.post(self._url(), {"choice": "a", "strength": "1", "reason": "mine"})
        self.assertEqual(response.status_code, 403)
        self.assertFalse(FinalLabel.objects.exists())

    def test_it_records_the_decision_from_the_form(self):
        self.client.force_login(self.senior)
        response = self.client.post(
            self._url(), {"choice": "b", "strength": "2", "reason": "B keeps the meaning."}
        )
        self.assertRedirects(
            response, reverse("annotation:adjudication_queue", args=[self.duel.slug])
        )
        final = FinalLabel.objects.get(item=self.item)
        self.assertEqual(
            (final.value, final.decided_by, final.reason),
            ({"choice": "b", "strength": 2}, self.senior, "B keeps the meaning."),
        )
        self.assertEqual(Item.objects.get(pk=self.item.pk).status, ItemStatus.FINAL)

    def test_it_refuses_a_decision_without_a_reason(self):
        self.client.force_login(self.lead)
        response = self.client.post(self._url(), {"choice": "b", "strength": "1", "reason": ""})
        self.assertContains(response, "say why this is the final label", status_code=400)
        self.assertFalse(FinalLabel.objects.exists())

"""Issue 13: guideline changes that guide. After a minor version the evaluator's submit is
"Saved." with an in-place acknowledge; before a major version the lead sees whom it blocks
per language and whether calibration can take them back; "Read in:" offers translations only."""

from __future__ import annotations

from django.urls import reverse

from annotation.models import Judgment, Qualification, QualificationStatus
from annotation.qualification import qualification_set
from guidelines.models import CalibrationRound, CalibrationRoundStatus
from guidelines.selectors import calibration_round_for
from guidelines.services import guideline_acknowledge, guideline_publish, guideline_translation_save
from tests.annotation.test_evaluator_pages import HTMX, submit_url, work_url
from tests.base import ParityTestCase
from tests.factories import ItemFactory
from tests.guidelines.support import make_gold, make_round

GUIDE = "/p/mt-rating/lead/guideline/"


class MinorBumpTests(ParityTestCase):
    def test_a_submit_after_a_minor_bump_is_saved_and_offers_the_acknowledge_in_place(self):
        guideline_publish(project=self.project, body="# Rules\nBe fair.", actor=self.lead)
        guideline_acknowledge(project=self.project, evaluator=self.alice, version="1.0.0")
        ItemFactory.create_batch(2, project=self.project, language=self.de)
        self.client.force_login(self.alice)
        self.client.get(work_url(self.project, "de"))
        assignment = self.alice.assignments.get()
        guideline_publish(
            project=self.project,
            body="# Rules\nBe fair and kind.",
            changelog="Kindness.",
            bump="minor",
            actor=self.lead,
        )

        response = self.client.post(
            submit_url(assignment.pk), {"score": "4", "language": "de"}, **HTMX
        )

        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Saved.")
        self.assertNotContains(response, "You are not qualified")
        self.assertTrue(Judgment.objects.filter(assignment=assignment).exists())
        self.assertContains(response, 'id="acknowledge-in-place"')
        self.assertContains(
            response, '<input type="hidden" name="version" value="1.1.0">', html=True
        )
        self.assertContains(
            response,
            '<input type="hidden" name="next" value="/p/mt-rating/work/?language=de">',
            html=True,
        )
        # The acknowledge takes them straight back to the next item.
        ack = self.client.post(
            "/p/mt-rating/guideline/", {"version": "1.1.0", "next": work_url(self.project, "de")}
        )
        self.assertRedirects(ack, work_url(self.project, "de"), fetch_redirect_response=False)
        self.assertEqual(self.client.get(work_url(self.project, "de")).status_code, 200)

    def test_a_blocked_evaluator_sees_why_and_the_way_on(self):
        guideline_publish(project=self.project, body="# Rules", actor=self.lead)
        qualification_set(
            project=self.project,
            evaluator=self.alice,
            language=self.de,
            status=QualificationStatus.REQUALIFY,
        )
        self.client.force_login(self.alice)
        response = self.client.get(work_url(self.project, "de"))
        self.assertContains(response, "asks for a new calibration round", status_code=403)
        self.assertContains(
            response, reverse("guidelines:calibration", args=["mt-rating", "de"]), status_code=403
        )


class MajorBumpWarningTests(ParityTestCase):
    def setUp(self) -> None:
        guideline_publish(project=self.project, body="# Rules", actor=self.lead)
        self.client.force_login(self.lead)

    def _publish_major(self, **extra):
        return self.client.post(
            GUIDE,
            {
                "body": "# New rules",
                "changelog": "Rewritten.",
                "bump": "major",
                "source_language": "en",
                **extra,
            },
        )

    def test_it_shows_who_is_blocked_per_language_and_publishes_nothing_until_confirmed(self):
        response = self._publish_major()
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'id="major-warning"')
        self.assertContains(response, self.alice.evaluator_profile.pseudonym)
        self.assertContains(response, self.bashir.evaluator_profile.pseudonym)
        self.assertNotContains(response, ">alice<")
        self.assertContains(response, "No round with gold items", count=3)  # de, ar, zh
        self.assertContains(response, "2 qualified evaluators must pass")
        self.project.refresh_from_db()
        self.assertEqual(self.project.guideline_version, "1.0.0")
        self.assertEqual(
            Qualification.objects.get(evaluator=self.alice).status, QualificationStatus.QUALIFIED
        )

    def test_confirming_publishes_and_renews_the_rounds_that_have_gold_items(self):
        gold = [make_gold(self.project, self.ar, f"ar-g{i}", score=3) for i in range(2)]
        make_round(self.project, self.ar, gold, pass_mark=0.6)
        warning = self._publish_major()
        self.assertContains(
            warning, "A new round can open with the 2 gold items of the last round."
        )
        response = self._publish_major(confirm_major="1", renew_rounds="1")
        self.assertRedirects(response, GUIDE, fetch_redirect_response=False)
        self.project.refresh_from_db()
        self.assertEqual(self.project.guideline_version, "2.0.0")
        renewed = CalibrationRound.objects.get(
            project=self.project, language=self.ar, status=CalibrationRoundStatus.OPEN
        )
        self.assertEqual((renewed.guideline_version, renewed.pass_mark), ("2.0.0", 0.6))
        self.assertEqual(set(renewed.gold_items.all()), set(gold))
        page = self.client.get(GUIDE)
        self.assertContains(page, "Opened a calibration round for Arabic")
        self.assertContains(page, "No calibration round is open for German, Chinese")
        # Arabic evaluators are routed to the new round.
        self.assertEqual(calibration_round_for(project=self.project, language=self.ar), renewed)


class ReadInTests(ParityTestCase):
    def test_read_in_offers_only_the_source_and_the_translations(self):
        version = guideline_publish(project=self.project, body="# Rules", actor=self.lead)
        self.client.force_login(self.alice)
        alone = self.client.get("/p/mt-rating/guideline/")
        self.assertNotContains(alone, "Read in:")
        guideline_translation_save(
            project=self.project, version=version, language="de", body="# Regeln", actor=self.lead
        )
        both = self.client.get("/p/mt-rating/guideline/")
        self.assertContains(both, "Read in:")
        self.assertContains(both, '<a href="?language=de" lang="de"')
        self.assertNotContains(both, 'lang="ar">Arabic</a>')
        self.assertNotContains(both, 'lang="zh">')

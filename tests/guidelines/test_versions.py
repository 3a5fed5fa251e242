from __future__ import annotations

from django.core.exceptions import ValidationError

from annotation.models import Qualification, QualificationStatus
from annotation.queue import NotQualified, item_claim_next, judgment_submit
from guidelines.models import GuidelineAcknowledgement, GuidelineTranslation
from guidelines.selectors import guideline_current, guideline_text, version_diff
from guidelines.services import guideline_acknowledge, guideline_publish, guideline_translation_save
from tests.base import ParityTestCase
from tests.factories import ItemFactory

V1 = "# Rating\n\nRate fluency from 1 to 5.\n"
V2 = "# Rating\n\nRate fluency from 1 to 5.\n\nA wrong script is always 1.\n"
V3 = "# Rating\n\nRate adequacy, then fluency.\n"


class GuidelineVersionTests(ParityTestCase):
    def _qualification(self, user, language):
        return Qualification.objects.get(evaluator=user, project=self.project, language=language)

    def test_the_first_version_is_1_0_0_and_must_be_acknowledged_before_claiming(self):
        ItemFactory(project=self.project, language=self.de)
        version = guideline_publish(project=self.project, body=V1, actor=self.lead)
        self.assertEqual(version.version, "1.0.0")
        self.project.refresh_from_db()
        self.assertEqual(self.project.guideline_version, "1.0.0")
        with self.assertRaises(NotQualified):
            item_claim_next(evaluator=self.alice, project=self.project)
        guideline_acknowledge(project=self.project, evaluator=self.alice, version="1.0.0")
        self.assertEqual(self._qualification(self.alice, self.de).acknowledged_version, "1.0.0")
        self.assertTrue(GuidelineAcknowledgement.objects.filter(evaluator=self.alice).exists())
        self.assertIsNotNone(item_claim_next(evaluator=self.alice, project=self.project))

    def test_a_minor_bump_asks_for_acknowledgement_only(self):
        ItemFactory.create_batch(2, project=self.project, language=self.de)
        guideline_publish(project=self.project, body=V1, actor=self.lead)
        guideline_acknowledge(project=self.project, evaluator=self.alice, version="1.0.0")
        version = guideline_publish(
            project=self.project,
            body=V2,
            changelog="Wrong script rule.",
            bump="minor",
            actor=self.lead,
        )
        self.assertEqual(version.version, "1.1.0")
        qualification = self._qualification(self.alice, self.de)
        self.assertEqual(qualification.status, QualificationStatus.QUALIFIED)
        self.project.refresh_from_db()
        with self.assertRaises(NotQualified):
            item_claim_next(evaluator=self.alice, project=self.project)
        guideline_acknowledge(project=self.project, evaluator=self.alice, version="1.1.0")
        self.assertIsNotNone(item_claim_next(evaluator=self.alice, project=self.project))

    def test_a_major_bump_moves_qualified_evaluators_to_requalify(self):
        guideline_publish(project=self.project, body=V1, actor=self.lead)
        guideline_acknowledge(project=self.project, evaluator=self.alice, version="1.0.0")
        version = guideline_publish(
            project=self.project,
            body=V3,
            changelog="Adequacy first.",
            bump="major",
            actor=self.lead,
        )
        self.assertEqual(version.version, "2.0.0")
        for user, language in ((self.alice, self.de), (self.bashir, self.ar)):
            qualification = self._qualification(user, language)
            self.assertEqual(qualification.status, QualificationStatus.REQUALIFY)
            self.assertIn("2.0.0", qualification.reason)
        # Acknowledging alone does not let them claim: they must pass calibration again.
        self.project.refresh_from_db()
        guideline_acknowledge(project=self.project, evaluator=self.alice, version="2.0.0")
        ItemFactory(project=self.project, language=self.de)
        with self.assertRaises(NotQualified):
            item_claim_next(evaluator=self.alice, project=self.project)
        # And the page routes them to the calibration round.
        self.client.force_login(self.alice)
        response = self.client.post("/p/mt-rating/guideline/", {"version": "2.0.0"})
        self.assertRedirects(
            response, "/p/mt-rating/calibration/de/", fetch_redirect_response=False
        )

    def test_a_patch_bump_keeps_acknowledgements(self):
        guideline_publish(project=self.project, body=V1, actor=self.lead)
        guideline_acknowledge(project=self.project, evaluator=self.alice, version="1.0.0")
        guideline_publish(
            project=self.project,
            body=V1 + "\nTypo fixed.\n",
            changelog="Typo.",
            bump="patch",
            actor=self.lead,
        )
        self.assertEqual(self._qualification(self.alice, self.de).acknowledged_version, "1.0.1")
        # Bashir never acknowledged 1.0.0, so the patch does not acknowledge for him.
        self.assertEqual(self._qualification(self.bashir, self.ar).acknowledged_version, "")
        self.assertEqual(
            self._qualification(self.alice, self.de).status, QualificationStatus.QUALIFIED
        )

    def test_judgments_record_the_guideline_version_they_were_made_under(self):
        ItemFactory.create_batch(2, project=self.project, language=self.de)
        guideline_publish(project=self.project, body=V1, actor=self.lead)
        guideline_acknowledge(project=self.project, evaluator=self.alice, version="1.0.0")
        self.project.refresh_from_db()
        first = item_claim_next(evaluator=self.alice, project=self.project)
        j1 = judgment_submit(assignment=first, evaluator=self.alice, value={"score": 4})
        guideline_publish(
            project=self.project, body=V2, changelog="Wrong script rule.", actor=self.lead
        )
        self.project.refresh_from_db()
        guideline_acknowledge(project=self.project, evaluator=self.alice, version="1.1.0")
        second = item_claim_next(evaluator=self.alice, project=self.project)
        j2 = judgment_submit(assignment=second, evaluator=self.alice, value={"score": 2})
        self.assertEqual((j1.guideline_version, j2.guideline_version), ("1.0.0", "1.1.0"))

    def test_it_refuses_a_stale_acknowledgement_and_an_unchanged_or_unexplained_version(self):
        guideline_publish(project=self.project, body=V1, actor=self.lead)
        guideline_publish(project=self.project, body=V2, changelog="More.", actor=self.lead)
        with self.assertRaisesMessage(ValidationError, "1.1.0 was published since"):
            guideline_acknowledge(project=self.project, evaluator=self.alice, version="1.0.0")
        with self.assertRaisesMessage(ValidationError, "the same as version 1.1.0"):
            guideline_publish(project=self.project, body=V2, changelog="Nothing.", actor=self.lead)
        with self.assertRaisesMessage(ValidationError, "say what changed since version 1.1.0"):
            guideline_publish(project=self.project, body=V3, changelog="", actor=self.lead)
        with self.assertRaisesMessage(ValidationError, "bump: choose one of"):
            guideline_publish(
                project=self.project, body=V3, changelog="x", bump="huge", actor=self.lead
            )
        self.assertEqual(guideline_current(project=self.project).version, "1.1.0")
        with self.assertRaisesMessage(ValidationError, "do not work on this project"):
            guideline_acknowledge(project=self.project, evaluator=self.outsider, version="1.1.0")

    def test_the_diff_shows_added_and_removed_lines_against_the_previous_version(self):
        guideline_publish(project=self.project, body=V1, actor=self.lead)
        v2 = guideline_publish(
            project=self.project, body=V3, changelog="Adequacy.", bump="major", actor=self.lead
        )
        previous, lines = version_diff(version=v2)
        self.assertEqual(previous.version, "1.0.0")
        self.assertIn(("removed", "Rate fluency from 1 to 5."), [(d.op, d.text) for d in lines])
        self.assertIn(("added", "Rate adequacy, then fluency."), [(d.op, d.text) for d in lines])
        self.assertIn(("same", "# Rating"), [(d.op, d.text) for d in lines])


class TranslationTests(ParityTestCase):
    def test_a_translation_is_shown_in_its_language_and_others_fall_back_to_the_source(self):
        version = guideline_publish(project=self.project, body=V1, actor=self.lead)
        guideline_translation_save(
            project=self.project,
            version=version,
            language="ar",
            body="# التقييم\n\nقيّم الطلاقة.",
            actor=self.lead,
        )
        arabic = guideline_text(version=version, language=self.ar)
        self.assertFalse(arabic.is_fallback)
        self.assertEqual(arabic.language, self.ar)
        self.assertIn("قيّم الطلاقة", arabic.html)
        german = guideline_text(version=version, language=self.de)
        self.assertTrue(german.is_fallback)
        self.assertEqual(german.language.tag, "en")
        self.assertIn("Rate fluency", german.html)

    def test_the_panel_wraps_the_text_in_its_language_and_direction(self):
        version = guideline_publish(project=self.project, body=V1, actor=self.lead)
        guideline_translation_save(
            project=self.project,
            version=version,
            language="ar",
            body="قيّم الطلاقة.",
            actor=self.lead,
        )
        self.client.force_login(self.bashir)
        response = self.client.get("/p/mt-rating/guideline/panel/?language=ar")
        self.assertContains(response, '<div class="guideline-body" lang="ar" dir="rtl">')
        self.assertContains(response, "Guideline 1.0.0")
        self.assertNotContains(response, "<html")
        response = self.client.get("/p/mt-rating/guideline/panel/?language=de")
        self.assertContains(response, '<div class="guideline-body" lang="en" dir="ltr">')
        self.assertContains(response, "Not translated into German yet")
        self.assertEqual(
            self.client.get("/p/mt-rating/guideline/panel/?language=fr").status_code, 400
        )
        self.client.force_login(self.outsider)
        self.assertEqual(
            self.client.get("/p/mt-rating/guideline/panel/?language=ar").status_code, 403
        )

    def test_it_refuses_a_translation_for_a_language_the_project_does_not_have(self):
        version = guideline_publish(project=self.project, body=V1, actor=self.lead)
        with self.assertRaisesMessage(
            ValidationError, "Project mt-rating has no language 'fr' (its languages: ar, de, zh)"
        ):
            guideline_translation_save(
                project=self.project, version=version, language="fr", body="Notez.", actor=self.lead
            )
        with self.assertRaisesMessage(ValidationError, "en is the guideline's source language"):
            guideline_translation_save(
                project=self.project, version=version, language="en", body="x", actor=self.lead
            )
        with self.assertRaisesMessage(ValidationError, "not a valid BCP 47 language tag"):
            guideline_translation_save(
                project=self.project, version=version, language="no such", body="x", actor=self.lead
            )
        self.assertFalse(GuidelineTranslation.objects.exists())

    def test_the_lead_page_refuses_it_with_the_message(self):
        guideline_publish(project=self.project, body=V1, actor=self.lead)
        self.client.force_login(self.lead)
        response = self.client.post(
            "/p/mt-rating/lead/guideline/translation/", {"language": "fr", "body": "Notez."}
        )
        self.assertContains(response, "has no language &#x27;fr&#x27;", status_code=400)
        self.assertFalse(GuidelineTranslation.objects.exists())

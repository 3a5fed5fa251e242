"""`python manage.py demo_guidelines` (run by `demo`): guideline 1.0.0 per demo project with
an Arabic translation, acknowledgements, and an open Japanese calibration round that the
pending evaluator can pass before working production items."""

from __future__ import annotations

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import TestCase

from annotation.models import (
    AuditEvent,
    GoldAnswer,
    Item,
    Project,
    Qualification,
    QualificationStatus,
)
from annotation.queue import item_claim_next
from guidelines.models import (
    AttemptVerdict,
    CalibrationRound,
    CalibrationRoundStatus,
    GuidelineAcknowledgement,
    GuidelineTranslation,
    GuidelineVersion,
)
from guidelines.selectors import guideline_text
from guidelines.services import (
    calibration_answer,
    calibration_attempt_start,
    calibration_step_next,
    guideline_acknowledge,
)

PASSWORD = "demo-pw-in-tests"


def counts() -> dict[str, int]:
    return {
        "versions": GuidelineVersion.objects.count(),
        "translations": GuidelineTranslation.objects.count(),
        "acknowledgements": GuidelineAcknowledgement.objects.count(),
        "rounds": CalibrationRound.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


class DemoGuidelinesTests(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        call_command("demo", "--limit", "2", "--password", PASSWORD, stdout=StringIO())
        cls.users = {u.username: u for u in get_user_model().objects.all()}
        cls.udhr = Project.objects.get(slug="udhr-labels")

    def test_it_publishes_a_real_guideline_per_demo_project(self) -> None:
        versions = {
            v.guideline.project.slug: v
            for v in GuidelineVersion.objects.select_related("guideline__project")
        }
        self.assertEqual(set(versions), {"mlqe-da", "mlqe-pool", "wmt23-sxs", "udhr-labels"})
        for version in versions.values():
            self.assertEqual(version.version, "1.0.0")
            self.assertEqual(version.guideline.source_language.tag, "en")
        self.assertIn("## The scale", versions["mlqe-da"].body)
        self.assertIn("both bad", versions["wmt23-sxs"].body)
        self.assertIn("wrong_language", versions["udhr-labels"].body)
        self.assertIn("Chinese is not Japanese", versions["udhr-labels"].body)

    def test_it_translates_the_udhr_guideline_into_arabic(self) -> None:
        version = GuidelineVersion.objects.get(guideline__project=self.udhr)
        arabic = guideline_text(version=version, language=self.udhr.languages.get(tag="ar"))
        self.assertEqual((arabic.language.tag, arabic.language.direction), ("ar", "rtl"))
        self.assertIn("المادة الأولى", arabic.html)
        # Languages without a translation read the English source.
        german = guideline_text(version=version, language=self.udhr.languages.get(tag="de"))
        self.assertEqual(german.language.tag, "en")

    def test_it_opens_a_japanese_round_of_look_alikes_and_the_real_text(self) -> None:
        calibration_round = CalibrationRound.objects.get(project=self.udhr)
        self.assertEqual(calibration_round.language.tag, "ja")
        self.assertEqual(calibration_round.status, CalibrationRoundStatus.OPEN)
        self.assertEqual(calibration_round.guideline_version, "1.0.0")
        self.assertEqual(calibration_round.gold_items.count(), 4)
        self.assertEqual(
            calibration_round.gold_items.filter(gold__value={"labels": ["correct"]}).count(), 1
        )

    def test_it_takes_yuki_through_acknowledgement_and_calibration_to_production(self) -> None:
        yuki = self.users["yuki"]
        calibration_round = CalibrationRound.objects.get(project=self.udhr)
        guideline_acknowledge(project=self.udhr, evaluator=yuki, version="1.0.0")
        attempt = calibration_attempt_start(calibration_round=calibration_round, evaluator=yuki)
        while (step := calibration_step_next(attempt=attempt)) is not None:
            gold = GoldAnswer.objects.get(item=step.assignment.item)
            calibration_answer(
                attempt=attempt, assignment=step.assignment, evaluator=yuki, value=gold.value
            )
        self.assertEqual(attempt.verdict, AttemptVerdict.PASSED)
        qualification = Qualification.objects.get(evaluator=yuki, project=self.udhr)
        self.assertEqual(qualification.status, QualificationStatus.QUALIFIED)
        assignment = item_claim_next(evaluator=yuki, project=self.udhr)
        self.assertFalse(assignment.item.is_gold)
        self.assertEqual(assignment.item.language.tag, "ja")

    def test_it_changes_nothing_on_a_second_run(self) -> None:
        before = counts()
        out = StringIO()
        call_command("demo_guidelines", "--lead", "lead", stdout=out)
        self.assertEqual(counts(), before)
        self.assertIn("Nothing to do", out.getvalue())

    def test_it_never_overwrites_a_guideline_the_lead_has_edited(self) -> None:
        GuidelineVersion.objects.filter(guideline__project=self.udhr).update(body="# Our own words")
        call_command("demo_guidelines", "--lead", "lead", stdout=StringIO())
        self.assertEqual(
            GuidelineVersion.objects.get(guideline__project=self.udhr).body, "# Our own words"
        )


class DemoGuidelinesInputTests(TestCase):
    def test_it_refuses_an_unknown_lead(self) -> None:
        with self.assertRaisesMessage(CommandError, "--lead: there is no user 'nobody'"):
            call_command("demo_guidelines", "--lead", "nobody", stdout=StringIO())

    def test_it_refuses_to_run_without_the_demo_projects(self) -> None:
        get_user_model().objects.create_user(username="lead")
        with self.assertRaisesMessage(CommandError, "none of the demo projects exists"):
            call_command("demo_guidelines", "--lead", "lead", stdout=StringIO())

    def test_it_refuses_a_calibration_round_without_gold_and_writes_nothing(self) -> None:
        call_command("demo", "--limit", "1", "--password", PASSWORD, stdout=StringIO())
        CalibrationRound.objects.all().delete()
        Item.objects.filter(project__slug="udhr-labels", is_gold=True).delete()
        before = counts()
        with self.assertRaisesMessage(CommandError, "udhr-labels has no gold items in ja"):
            call_command("demo_guidelines", "--lead", "lead", stdout=StringIO())
        self.assertEqual(counts(), before)

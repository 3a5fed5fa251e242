from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from annotation.models import Assignment, AssignmentKind, Item, Qualification, QualificationStatus
from annotation.qualification import qualification_set
from guidelines.models import (
    AttemptVerdict,
    CalibrationAttempt,
    CalibrationRound,
    CalibrationRoundStatus,
)
from guidelines.services import (
    CooldownActive,
    calibration_answer,
    calibration_attempt_start,
    calibration_round_create,
    calibration_round_items_set,
    calibration_round_open,
    calibration_step_next,
)
from tests.base import ParityTestCase
from tests.factories import ItemFactory, UserFactory
from tests.guidelines.support import gold_score, make_gold, make_round


class CalibrationSetup(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        # Carol speaks Arabic and has not qualified yet.
        cls.carol = UserFactory(username="carol")
        qualification_set(
            project=cls.project,
            evaluator=cls.carol,
            language=cls.ar,
            status=QualificationStatus.PENDING,
        )
        cls.gold = [make_gold(cls.project, cls.ar, f"ar-g{i}", score=1 + i % 5) for i in range(5)]

    def _take(self, attempt, *, right: int):
        """Answer the attempt's items: the first `right` correctly, the rest wrong."""
        answered = 0
        while (step := calibration_step_next(attempt=attempt)) is not None:
            gold = gold_score(step.assignment.item)
            score = gold if answered < right else (gold % 5) + 1
            calibration_answer(
                attempt=attempt,
                assignment=step.assignment,
                evaluator=attempt.evaluator,
                value={"score": score},
            )
            answered += 1
            attempt.refresh_from_db()
        return attempt


class CalibrationRoundTests(CalibrationSetup):
    def test_it_refuses_a_round_with_no_gold_items(self):
        with self.assertRaisesMessage(ValidationError, "needs at least one gold item"):
            calibration_round_create(
                project=self.project,
                language="ar",
                pass_mark=0.8,
                cooldown_seconds=60,
                gold_item_ids=[],
            )
        self.assertFalse(CalibrationRound.objects.exists())

    def test_it_refuses_a_pass_mark_outside_0_to_1(self):
        for mark in (1.5, -0.1, "80%", float("nan")):
            with self.subTest(mark=mark), self.assertRaisesMessage(ValidationError, "pass mark:"):
                calibration_round_create(
                    project=self.project,
                    language="ar",
                    pass_mark=mark,
                    cooldown_seconds=60,
                    gold_item_ids=[self.gold[0].pk],
                )
        with self.assertRaisesMessage(
            ValidationError,
            "must be between 0 and 1 (the share of gold items answered right), not 1.5",
        ):
            calibration_round_create(
                project=self.project,
                language="ar",
                pass_mark=1.5,
                cooldown_seconds=60,
                gold_item_ids=[self.gold[0].pk],
            )
        self.assertFalse(CalibrationRound.objects.exists())

    def test_it_refuses_items_that_are_not_gold_of_that_language_and_languages_outside_the_project(
        self,
    ):
        production = ItemFactory(project=self.project, language=self.ar)
        german_gold = make_gold(self.project, self.de, "de-g", 3)
        for ids in ([production.pk], [german_gold.pk], [self.gold[0].pk, 10**9]):
            with (
                self.subTest(ids=ids),
                self.assertRaisesMessage(ValidationError, "of this project in ar"),
            ):
                calibration_round_create(
                    project=self.project,
                    language="ar",
                    pass_mark=0.8,
                    cooldown_seconds=60,
                    gold_item_ids=ids,
                )
        with self.assertRaisesMessage(ValidationError, "has no language 'fr'"):
            calibration_round_create(
                project=self.project,
                language="fr",
                pass_mark=0.8,
                cooldown_seconds=60,
                gold_item_ids=[self.gold[0].pk],
            )
        with self.assertRaisesMessage(ValidationError, "cool-down: must be between 0"):
            calibration_round_create(
                project=self.project,
                language="ar",
                pass_mark=0.8,
                cooldown_seconds=-5,
                gold_item_ids=[self.gold[0].pk],
            )

    def test_opening_a_round_closes_the_languages_previous_one(self):
        first = make_round(self.project, self.ar, self.gold[:2])
        second = make_round(self.project, self.ar, self.gold[2:])
        first.refresh_from_db()
        self.assertEqual(
            (first.status, second.status),
            (CalibrationRoundStatus.CLOSED, CalibrationRoundStatus.OPEN),
        )

    def test_its_items_are_fixed_once_someone_took_it(self):
        calibration_round = make_round(self.project, self.ar, self.gold[:2])
        calibration_round_items_set(
            calibration_round=calibration_round, gold_item_ids=[g.pk for g in self.gold[:3]]
        )
        calibration_attempt_start(calibration_round=calibration_round, evaluator=self.carol)
        with self.assertRaisesMessage(ValidationError, "already taken this round"):
            calibration_round_items_set(
                calibration_round=calibration_round, gold_item_ids=[self.gold[0].pk]
            )
        self.assertEqual(calibration_round.gold_items.count(), 3)


class CalibrationAttemptTests(CalibrationSetup):
    def test_it_passes_exactly_at_the_pass_mark_and_fails_just_below(self):
        calibration_round = make_round(self.project, self.ar, self.gold, pass_mark=0.8, cooldown=0)
        attempt = calibration_attempt_start(
            calibration_round=calibration_round, evaluator=self.carol
        )
        attempt = self._take(attempt, right=3)  # 3/5 = 0.6 < 0.8
        self.assertEqual(
            (attempt.verdict, attempt.correct, attempt.total), (AttemptVerdict.FAILED, 3, 5)
        )
        self.assertEqual(
            Qualification.objects.get(evaluator=self.carol, project=self.project).status, "pending"
        )
        attempt = calibration_attempt_start(
            calibration_round=calibration_round, evaluator=self.carol
        )
        attempt = self._take(attempt, right=4)  # 4/5 = 0.8, exactly the pass mark
        self.assertEqual(attempt.verdict, AttemptVerdict.PASSED)
        self.assertAlmostEqual(attempt.score, 0.8)
        qualification = Qualification.objects.get(evaluator=self.carol, project=self.project)
        self.assertEqual(qualification.status, QualificationStatus.QUALIFIED)
        self.assertIn("Passed calibration", qualification.reason)

    def test_a_pass_mark_of_0_7_over_ten_items_passes_at_seven(self):
        items = self.gold + [make_gold(self.project, self.ar, f"ar-x{i}", 3) for i in range(5)]
        calibration_round = make_round(self.project, self.ar, items, pass_mark=0.7, cooldown=0)
        attempt = self._take(
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.carol),
            right=6,
        )
        self.assertEqual(attempt.verdict, AttemptVerdict.FAILED)
        attempt = self._take(
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.carol),
            right=7,
        )
        self.assertEqual(attempt.verdict, AttemptVerdict.PASSED)

    def test_a_retry_waits_out_the_cool_down(self):
        calibration_round = make_round(
            self.project, self.ar, self.gold, pass_mark=1.0, cooldown=600
        )
        failed = self._take(
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.carol),
            right=0,
        )
        with self.assertRaises(CooldownActive) as caught:
            calibration_attempt_start(
                calibration_round=calibration_round,
                evaluator=self.carol,
                now=failed.finished_at + timedelta(seconds=599),
            )
        self.assertEqual(caught.exception.retry_at, failed.finished_at + timedelta(seconds=600))
        self.assertIn("after the cool-down", caught.exception.messages[0])
        retry = calibration_attempt_start(
            calibration_round=calibration_round,
            evaluator=self.carol,
            now=failed.finished_at + timedelta(seconds=600),
        )
        self.assertEqual(retry.number, 2)

    def test_each_attempt_has_its_own_shuffled_order_and_a_retry_gets_another(self):
        calibration_round = make_round(self.project, self.ar, self.gold, pass_mark=1.0, cooldown=0)
        attempt = calibration_attempt_start(
            calibration_round=calibration_round, evaluator=self.carol
        )
        self.assertCountEqual(attempt.order, [g.pk for g in self.gold])
        # The order is the seeded shuffle, and a reload resumes it rather than starting again.
        self.assertEqual(
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.carol).pk,
            attempt.pk,
        )
        seen = [calibration_step_next(attempt=attempt).assignment.item_id]
        self.assertEqual(seen[0], attempt.order[0])
        orders = {tuple(attempt.order)}
        previous = self._take(attempt, right=0)
        for _ in range(4):
            retry = calibration_attempt_start(
                calibration_round=calibration_round, evaluator=self.carol
            )
            self.assertNotEqual(retry.order, previous.order)
            orders.add(tuple(retry.order))
            previous = self._take(retry, right=0)
        # Five attempts over 120 possible orders: not one order replayed over and over.
        self.assertGreaterEqual(len(orders), 3)
        # Evaluators get independent orders too.
        other = UserFactory(username="dana")
        qualification_set(project=self.project, evaluator=other, language=self.ar, status="pending")
        dana = calibration_attempt_start(calibration_round=calibration_round, evaluator=other)
        self.assertNotEqual(dana.seed, attempt.seed)

    def test_the_same_gold_item_is_a_new_assignment_in_each_attempt(self):
        calibration_round = make_round(
            self.project, self.ar, self.gold[:1], pass_mark=1.0, cooldown=0
        )
        self._take(
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.carol),
            right=0,
        )
        self._take(
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.carol),
            right=1,
        )
        assignments = Assignment.objects.filter(
            evaluator=self.carol, kind=AssignmentKind.CALIBRATION
        )
        self.assertEqual(assignments.count(), 2)
        self.assertEqual(len({a.calibration_attempt_id for a in assignments}), 2)

    def test_only_pending_or_requalifying_evaluators_with_the_current_guideline_take_it(self):
        calibration_round = make_round(self.project, self.ar, self.gold)
        with self.assertRaisesMessage(ValidationError, "already qualified"):
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.bashir)
        with self.assertRaises(PermissionDenied):
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.outsider)
        qualification_set(
            project=self.project,
            evaluator=self.bashir,
            language=self.ar,
            status=QualificationStatus.SUSPENDED,
            reason="Honeypot accuracy 20%.",
        )
        with self.assertRaisesMessage(
            ValidationError, "suspended for Arabic: Honeypot accuracy 20%."
        ):
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.bashir)
        self.assertFalse(CalibrationAttempt.objects.exists())

    def test_a_closed_round_cannot_be_started(self):
        calibration_round = make_round(self.project, self.ar, self.gold, open_it=False)
        with self.assertRaisesMessage(ValidationError, "not open"):
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.carol)
        calibration_round_open(calibration_round=calibration_round)
        self.assertIsNotNone(
            calibration_attempt_start(calibration_round=calibration_round, evaluator=self.carol)
        )


class CalibrationPageTests(CalibrationSetup):
    def setUp(self) -> None:
        self.client.force_login(self.carol)
        self.url = "/p/mt-rating/calibration/ar/"

    def test_a_translation_source_is_marked_up_in_its_own_language_as_on_the_item_card(self):
        Item.objects.filter(pk__in=[g.pk for g in self.gold]).update(
            prompt="The weather stays warm.", metadata={"source_language": "en"}
        )
        make_round(self.project, self.ar, self.gold, pass_mark=0.6, cooldown=0)
        self.client.post(self.url + "start/")
        self.assertContains(
            self.client.get(self.url), 'lang="en" dir="ltr">The weather stays warm.</div>'
        )

    def test_an_item_has_the_production_cards_inputs_and_keys(self):
        make_round(self.project, self.ar, self.gold, pass_mark=0.6, cooldown=0)
        self.client.post(self.url + "start/")
        page = self.client.get(self.url)
        self.assertContains(
            page,
            'class="judgment"\n          data-task="rating" data-min="1" data-max="5"',
            html=False,
        )
        self.assertContains(page, 'id="shortcut-help"')
        self.assertContains(page, "/static/parity/work.js")
        self.assertContains(page, '<span class="point-n">1</span>')

    def test_feedback_shows_the_gold_answer_and_explanation_only_after_answering(self):
        make_round(self.project, self.ar, self.gold, pass_mark=0.6, cooldown=0)
        self.assertEqual(self.client.post(self.url + "start/").status_code, 302)
        page = self.client.get(self.url)
        attempt = CalibrationAttempt.objects.get(evaluator=self.carol)
        first = attempt.order[0]
        assignment = Assignment.objects.get(
            evaluator=self.carol, item_id=first, calibration_attempt_id=attempt.pk
        )
        gold = self.gold[[g.pk for g in self.gold].index(first)]
        explanation = f"Because {gold.external_id} deserves"
        self.assertContains(page, gold.response)
        self.assertContains(page, 'lang="ar" dir="rtl"')
        self.assertNotContains(page, explanation)
        self.assertNotContains(page, "Expected answer")
        # Asking for the feedback before answering shows nothing of the gold.
        early = self.client.get(f"{self.url}feedback/{assignment.pk}/")
        self.assertRedirects(early, self.url, fetch_redirect_response=False)
        wrong = (gold_score(gold) % 5) + 1
        response = self.client.post(f"{self.url}answer/{assignment.pk}/", {"score": str(wrong)})
        self.assertRedirects(
            response, f"{self.url}feedback/{assignment.pk}/", fetch_redirect_response=False
        )
        feedback = self.client.get(f"{self.url}feedback/{assignment.pk}/")
        self.assertContains(feedback, explanation)
        self.assertContains(feedback, f'<dd id="your-answer"><bdi>{wrong}</bdi>')
        self.assertContains(feedback, f'<dd id="gold-answer"><bdi>{gold_score(gold)}</bdi>')
        self.assertContains(feedback, "not right")
        # A second submit of the same item shows its feedback instead of storing anything.
        again = self.client.post(f"{self.url}answer/{assignment.pk}/", {"score": "1"})
        self.assertRedirects(
            again, f"{self.url}feedback/{assignment.pk}/", fetch_redirect_response=False
        )
        # Someone else cannot read it.
        self.client.force_login(self.bashir)
        self.assertEqual(self.client.get(f"{self.url}feedback/{assignment.pk}/").status_code, 403)

    def test_the_whole_round_ends_with_score_and_verdict(self):
        make_round(self.project, self.ar, self.gold, pass_mark=0.6, cooldown=0)
        self.client.post(self.url + "start/")
        attempt = CalibrationAttempt.objects.get(evaluator=self.carol)
        for item_id in attempt.order:
            page = self.client.get(self.url)
            assignment = Assignment.objects.get(
                evaluator=self.carol, item_id=item_id, calibration_attempt_id=attempt.pk
            )
            self.assertContains(page, f"/answer/{assignment.pk}/")
            score = gold_score(assignment.item)
            self.client.post(f"{self.url}answer/{assignment.pk}/", {"score": str(score)})
        result = self.client.get(self.url)
        self.assertContains(result, "Passed: 5 of 5 right.")
        self.assertContains(result, "/p/mt-rating/work/?language=ar")

    def test_a_bad_answer_is_refused_with_the_reason_and_nothing_is_stored(self):
        make_round(self.project, self.ar, self.gold)
        self.client.post(self.url + "start/")
        step = calibration_step_next(attempt=CalibrationAttempt.objects.get(evaluator=self.carol))
        response = self.client.post(f"{self.url}answer/{step.assignment.pk}/", {"score": "7"})
        self.assertContains(response, "score: 7 is outside the scale 1–5", status_code=400)
        # Refused as the production card refuses it.
        self.assertContains(
            self.client.post(f"{self.url}answer/{step.assignment.pk}/", {}),
            "Choose a score.",
            status_code=400,
        )
        self.assertContains(
            self.client.post(f"{self.url}answer/{step.assignment.pk}/", {"score": "four"}),
            "score: &#x27;four&#x27; is not a whole number.",
            status_code=400,
        )
        self.assertFalse(step.assignment.judgments.exists())

    def test_the_cool_down_is_shown_and_a_start_during_it_is_refused(self):
        make_round(self.project, self.ar, self.gold[:1], pass_mark=1.0, cooldown=300)
        self.client.post(self.url + "start/")
        attempt = CalibrationAttempt.objects.get(evaluator=self.carol)
        self._take(attempt, right=0)
        page = self.client.get(self.url)
        self.assertContains(page, "Not passed: 0 of 1 right.")
        self.assertContains(page, 'id="cooldown"')
        self.assertContains(page, '<meta http-equiv="refresh"')
        response = self.client.post(self.url + "start/")
        self.assertContains(response, "after the cool-down", status_code=400)
        CalibrationAttempt.objects.filter(pk=attempt.pk).update(
            finished_at=timezone.now() - timedelta(seconds=301)
        )
        self.assertContains(self.client.get(self.url), 'id="start-calibration"')

    def test_an_unacknowledged_guideline_sends_the_evaluator_to_read_it_first(self):
        from guidelines.services import guideline_publish

        guideline_publish(project=self.project, body="# Rules", actor=self.lead)
        make_round(self.project, self.ar, self.gold)
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(
            response["Location"].startswith("/p/mt-rating/guideline/?language=ar&next=")
        )
        ack = self.client.post("/p/mt-rating/guideline/", {"version": "1.0.0", "next": self.url})
        self.assertRedirects(ack, self.url, fetch_redirect_response=False)
        self.assertContains(self.client.get(self.url), 'id="start-calibration"')

    def test_no_open_round_and_outsiders_get_clear_answers(self):
        self.assertContains(
            self.client.get(self.url), "No calibration round is open for Arabic yet"
        )
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(self.url).status_code, 403)
        self.assertEqual(self.client.get("/p/mt-rating/calibration/fr/").status_code, 404)

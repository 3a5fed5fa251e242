from __future__ import annotations

import random
from unittest import mock

from django.core.exceptions import ValidationError
from scipy.stats import binom

from annotation.agreement import agreement_report, item_labels
from annotation.exports import judgment_export
from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    Judgment,
    Qualification,
    QualificationStatus,
)
from annotation.qualification import (
    qualification_grant,
    qualification_reinstate,
    qualification_send_to_calibration,
)
from annotation.queue import NotQualified, item_claim_next, judgment_submit
from tests.base import ParityTestCase
from tests.factories import ItemFactory, UserFactory
from tests.guidelines.support import gold_score, make_gold


class HoneypotMixingTests(ParityTestCase):
    def test_over_2000_claims_the_honeypot_share_is_within_the_binomial_99_interval(self):
        rate, evaluators, claims_each = 0.15, 40, 50
        self.project.honeypot_rate = rate
        self.project.overlap = evaluators
        self.project.save(update_fields=["honeypot_rate", "overlap"])
        ItemFactory.create_batch(60, project=self.project, language=self.de)
        for i in range(30):
            make_gold(self.project, self.de, f"de-g{i}", score=3)
        users = [UserFactory(username=f"ev{i}") for i in range(evaluators)]
        for user in users:
            qualification_grant(project=self.project, evaluator=user, language=self.de)
        slots_before = sum(
            Item.objects.filter(project=self.project, is_gold=False).values_list(
                "open_slots", flat=True
            )
        )
        # A seeded generator: the test is repeatable, and the property is the rate's.
        with mock.patch("annotation.queue.claim._rng", random.Random(20240501)):
            for user in users:
                for _ in range(claims_each):
                    assignment = item_claim_next(evaluator=user, project=self.project)
                    # Release the lease without a judgment: only the mixing is under test.
                    Assignment.objects.filter(pk=assignment.pk).update(
                        status=AssignmentStatus.SUBMITTED
                    )
        n = evaluators * claims_each
        kinds = Assignment.objects.filter(project=self.project).values_list("kind", flat=True)
        self.assertEqual(len(kinds), n)
        honeypots = sum(1 for kind in kinds if kind == AssignmentKind.HONEYPOT)
        low, high = binom.interval(0.99, n, rate)
        self.assertTrue(
            low <= honeypots <= high, f"{honeypots} honeypots in {n} claims, expected {low}–{high}"
        )
        # Honeypots never took a production slot; every production claim took exactly one.
        slots_after = sum(
            Item.objects.filter(project=self.project, is_gold=False).values_list(
                "open_slots", flat=True
            )
        )
        self.assertEqual(slots_before - slots_after, n - honeypots)
        self.assertFalse(
            Assignment.objects.filter(kind=AssignmentKind.HONEYPOT, item__is_gold=False).exists()
        )
        self.assertFalse(
            Assignment.objects.filter(kind=AssignmentKind.PRODUCTION, item__is_gold=True).exists()
        )

    def test_an_evaluator_never_gets_a_gold_item_they_saw_in_calibration_or_before(self):
        self.project.honeypot_rate = 1.0
        self.project.save(update_fields=["honeypot_rate"])
        gold = make_gold(self.project, self.de, "de-g", 2)
        ItemFactory(project=self.project, language=self.de)
        first = item_claim_next(evaluator=self.alice, project=self.project)
        self.assertEqual((first.kind, first.item), (AssignmentKind.HONEYPOT, gold))
        judgment_submit(assignment=first, evaluator=self.alice, value={"score": 2})
        # The only gold item is used up: production follows.
        second = item_claim_next(evaluator=self.alice, project=self.project)
        self.assertEqual(second.kind, AssignmentKind.PRODUCTION)

    def test_an_empty_queue_serves_no_honeypot(self):
        # An item turning up where the queue said "nothing waits" would give the check away.
        self.project.honeypot_rate = 1.0
        self.project.save(update_fields=["honeypot_rate"])
        make_gold(self.project, self.de, "de-g", 2)
        self.assertIsNone(item_claim_next(evaluator=self.alice, project=self.project))
        self.assertFalse(Assignment.objects.exists())
        ItemFactory(project=self.project, language=self.de)
        self.assertEqual(
            item_claim_next(evaluator=self.alice, project=self.project).kind,
            AssignmentKind.HONEYPOT,
        )


class HoneypotNotProductionDataTests(ParityTestCase):
    def test_honeypot_judgments_never_reach_agreement_labels_or_exports(self):
        item = ItemFactory(project=self.project, language=self.de, external_id="prod", priority=1.0)
        # A second ordinary item keeps the queue from running dry (no honeypot into an empty queue).
        ItemFactory(project=self.project, language=self.de, external_id="waiting", open_slots=3)
        gold = make_gold(self.project, self.de, "de-g", 2)
        raters = [UserFactory(username=f"r{i}") for i in range(3)]
        for user in raters:
            qualification_grant(project=self.project, evaluator=user, language=self.de)
        # Production: three judgments on the ordinary item.
        for user in raters:
            assignment = item_claim_next(evaluator=user, project=self.project)
            self.assertEqual(assignment.item, item)
            judgment_submit(assignment=assignment, evaluator=user, value={"score": 4})
        # Honeypots: the same raters judge the gold item, one of them disagreeing.
        self.project.honeypot_rate = 1.0
        self.project.save(update_fields=["honeypot_rate"])
        for user, score in zip(raters, (2, 2, 5), strict=True):
            assignment = item_claim_next(evaluator=user, project=self.project)
            self.assertEqual((assignment.kind, assignment.item), (AssignmentKind.HONEYPOT, gold))
            judgment_submit(assignment=assignment, evaluator=user, value={"score": score})
        self.assertEqual(Judgment.objects.filter(kind="honeypot").count(), 3)

        report = agreement_report(project=self.project, resamples=0)
        self.assertEqual(report["judgments"], 3)
        self.assertEqual(report["units"], 1)
        self.assertNotIn(gold.pk, item_labels(project=self.project))
        self.assertIn(item.pk, item_labels(project=self.project))
        rows = list(judgment_export(project=self.project))
        self.assertEqual(len(rows), 3)
        self.assertEqual({row["kind"] for row in rows}, {"production"})
        self.assertEqual({row["item_id"] for row in rows}, {item.external_id})
        gold.refresh_from_db()
        self.assertEqual(gold.open_slots, 0)


class HoneypotAccuracyTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.project.honeypot_rate = 1.0
        cls.project.honeypot_window = 5
        cls.project.honeypot_min_judged = 4
        cls.project.honeypot_threshold = 0.6
        cls.project.save()
        cls.gold = [make_gold(cls.project, cls.de, f"de-g{i}", score=1 + i % 5) for i in range(12)]
        # Honeypots come only while production items wait.
        ItemFactory.create_batch(12, project=cls.project, language=cls.de)

    def _honeypot(self, *, right: bool, user=None):
        user = user or self.alice
        assignment = item_claim_next(evaluator=user, project=self.project)
        self.assertEqual(assignment.kind, AssignmentKind.HONEYPOT)
        score = gold_score(assignment.item)
        judgment_submit(
            assignment=assignment,
            evaluator=user,
            value={"score": score if right else score % 5 + 1},
        )

    def _qualification(self):
        return Qualification.objects.get(
            evaluator=self.alice, project=self.project, language=self.de
        )

    def test_rolling_accuracy_over_the_last_n_suspends_below_the_threshold(self):
        for right in (False, False, True):
            self._honeypot(right=right)
        # Below the threshold, but fewer than honeypot_min_judged: still qualified.
        self.assertEqual(self._qualification().status, QualificationStatus.QUALIFIED)
        self.assertAlmostEqual(self._qualification().honeypot_accuracy, 1 / 3)
        self._honeypot(right=True)  # 2 of 4 = 0.5 < 0.6
        qualification = self._qualification()
        self.assertEqual(qualification.status, QualificationStatus.SUSPENDED)
        self.assertIn("50%", qualification.reason)
        self.assertIn("below the project's threshold of 60%", qualification.reason)
        with self.assertRaises(NotQualified):
            item_claim_next(evaluator=self.alice, project=self.project)

    def test_only_the_last_n_count(self):
        for right in (False, True, True, True, True, True):
            self._honeypot(right=right)
        # The window is 5: the early miss dropped out (3 of 4 and 4 of 5 never went below).
        qualification = self._qualification()
        self.assertEqual(qualification.status, QualificationStatus.QUALIFIED)
        self.assertEqual(qualification.honeypot_accuracy, 1.0)

    def test_a_lead_reinstates_with_a_fresh_window_or_sends_back_to_calibration(self):
        for _ in range(4):
            self._honeypot(right=False)
        qualification = self._qualification()
        self.assertEqual(qualification.status, QualificationStatus.SUSPENDED)
        reinstated = qualification_reinstate(
            qualification=qualification, actor=self.lead, reason="Talked it over."
        )
        self.assertEqual(reinstated.status, QualificationStatus.QUALIFIED)
        self.assertIsNone(reinstated.honeypot_accuracy)
        # The misses before the reinstatement no longer count: one right answer is 100%.
        self._honeypot(right=True)
        self.assertEqual(self._qualification().status, QualificationStatus.QUALIFIED)
        self.assertEqual(self._qualification().honeypot_accuracy, 1.0)
        for _ in range(3):
            self._honeypot(right=False)
        qualification = self._qualification()
        self.assertEqual(qualification.status, QualificationStatus.SUSPENDED)
        sent = qualification_send_to_calibration(qualification=qualification, actor=self.lead)
        self.assertEqual(sent.status, QualificationStatus.REQUALIFY)
        with self.assertRaisesMessage(
            ValidationError, "Only a suspended evaluator can be reinstated"
        ):
            qualification_reinstate(qualification=sent, actor=self.lead)

    def test_the_lead_sees_who_is_suspended_and_why_and_acts_on_the_page(self):
        for _ in range(4):
            self._honeypot(right=False)
        qualification = self._qualification()
        self.client.force_login(self.alice)
        self.assertContains(self.client.get("/"), "below the project&#x27;s threshold")
        self.assertEqual(self.client.get("/p/mt-rating/lead/honeypots/").status_code, 403)
        self.client.force_login(self.lead)
        page = self.client.get("/p/mt-rating/lead/honeypots/")
        self.assertContains(page, f'id="suspended-{qualification.pk}"')
        self.assertContains(page, self.alice.evaluator_profile.pseudonym)  # never the username
        self.assertNotContains(page, "alice")
        self.assertContains(page, "below the project&#x27;s threshold of 60%")
        response = self.client.post(
            "/p/mt-rating/lead/honeypots/",
            {"qualification": qualification.pk, "action": "calibrate"},
        )
        self.assertRedirects(response, "/p/mt-rating/lead/honeypots/")
        self.assertEqual(self._qualification().status, QualificationStatus.REQUALIFY)
        response = self.client.post(
            "/p/mt-rating/lead/honeypots/",
            {"qualification": qualification.pk, "action": "reinstate"},
        )
        self.assertContains(
            response, "Only a suspended evaluator can be reinstated", status_code=400
        )

"""Calibration gates the production queue: through the page and through the API."""

from __future__ import annotations

import json
import random
import re
from unittest import mock

from annotation.models import Assignment, AssignmentKind, QualificationStatus
from annotation.qualification import qualification_set
from guidelines.services import calibration_answer, calibration_attempt_start, calibration_step_next
from tests.base import ParityTestCase
from tests.factories import ItemFactory, UserFactory
from tests.guidelines.support import gold_score, make_gold, make_round

WORK = "/p/mt-rating/work/?language=ar"
CLAIM = "/api/v1/projects/mt-rating/queue/claim/"


class GatingTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.carol = UserFactory(username="carol")
        qualification_set(
            project=cls.project,
            evaluator=cls.carol,
            language=cls.ar,
            status=QualificationStatus.PENDING,
        )
        cls.items = ItemFactory.create_batch(3, project=cls.project, language=cls.ar)
        cls.gold = [make_gold(cls.project, cls.ar, f"ar-g{i}", score=2 + i) for i in range(2)]

    def _claim_api(self):
        return self.client.post(
            CLAIM, data=json.dumps({"language": "ar"}), content_type="application/json"
        )

    def _production(self, user):
        return Assignment.objects.filter(evaluator=user, kind=AssignmentKind.PRODUCTION)

    def test_an_unqualified_evaluator_gets_no_production_item_from_the_page_or_the_api(self):
        self.client.force_login(self.carol)
        page = self.client.get(WORK)
        self.assertEqual(page.status_code, 403)
        self.assertContains(page, "not qualified for Arabic", status_code=403)
        api = self._claim_api()
        self.assertEqual(api.status_code, 403)
        self.assertIn("not qualified", api.json()["errors"][0]["message"])
        self.assertFalse(Assignment.objects.filter(evaluator=self.carol).exists())

    def test_a_qualified_evaluator_gets_one_from_both(self):
        self.client.force_login(self.bashir)
        page = self.client.get(WORK)
        self.assertEqual(page.status_code, 200)
        first = self._production(self.bashir).get()
        self.assertContains(page, first.item.response)
        Assignment.objects.filter(pk=first.pk).update(status="submitted")
        api = self._claim_api()
        self.assertEqual(api.status_code, 200)
        self.assertEqual(api.json()["item"]["language"], "ar")
        self.assertEqual(self._production(self.bashir).count(), 2)

    def test_a_suspended_evaluator_gets_none(self):
        qualification_set(
            project=self.project,
            evaluator=self.bashir,
            language=self.ar,
            status=QualificationStatus.SUSPENDED,
            reason="Honeypot accuracy 40% is below 70%.",
        )
        self.client.force_login(self.bashir)
        self.assertEqual(self.client.get(WORK).status_code, 403)
        self.assertEqual(self._claim_api().status_code, 403)
        self.assertFalse(Assignment.objects.filter(evaluator=self.bashir).exists())
        # The queue home says why.
        self.assertContains(self.client.get("/"), "Honeypot accuracy 40% is below 70%.")

    def test_passing_calibration_opens_the_production_queue(self):
        calibration_round = make_round(self.project, self.ar, self.gold, pass_mark=1.0)
        attempt = calibration_attempt_start(
            calibration_round=calibration_round, evaluator=self.carol
        )
        while (step := calibration_step_next(attempt=attempt)) is not None:
            calibration_answer(
                attempt=attempt,
                assignment=step.assignment,
                evaluator=self.carol,
                value={"score": gold_score(step.assignment.item)},
            )
        self.client.force_login(self.carol)
        self.assertEqual(self.client.get(WORK).status_code, 200)
        self.assertEqual(self._production(self.carol).count(), 1)

    def test_a_honeypot_card_looks_like_any_other_card(self):
        self.client.force_login(self.bashir)
        with mock.patch("annotation.queue.claim._rng", random.Random(1)):
            self.project.honeypot_rate = 1.0
            self.project.save(update_fields=["honeypot_rate"])
            honeypot_page = self.client.get(WORK)
            honeypot = Assignment.objects.get(evaluator=self.bashir)
            self.assertEqual(honeypot.kind, AssignmentKind.HONEYPOT)
            Assignment.objects.filter(pk=honeypot.pk).update(status="submitted")
            honeypot_api = self._claim_api().json()
            Assignment.objects.filter(evaluator=self.bashir).update(status="submitted")
            self.project.honeypot_rate = 0.0
            self.project.save(update_fields=["honeypot_rate"])
            production_page = self.client.get(WORK)
            production = Assignment.objects.get(
                evaluator=self.bashir, kind=AssignmentKind.PRODUCTION
            )
            Assignment.objects.filter(pk=production.pk).update(status="submitted")
            production_api = self._claim_api().json()
        for html in (honeypot_page.content.decode(), production_page.content.decode()):
            lowered = html.lower()
            for leak in ("honeypot", "gold", "because ar-g", "calibration"):
                self.assertNotIn(leak, lowered)
        # The same card: the same markup around a different text, the same kind of id.
        self.assertContains(honeypot_page, f'data-assignment="{honeypot.pk}"')
        self.assertContains(production_page, f'data-assignment="{production.pk}"')
        self.assertEqual(
            _shape(honeypot_page.content.decode(), honeypot),
            _shape(production_page.content.decode(), production),
        )
        self.assertEqual(set(honeypot_api), set(production_api))
        self.assertEqual(set(honeypot_api["item"]), set(production_api["item"]))
        self.assertNotIn("kind", json.dumps(honeypot_api))


def _shape(html: str, assignment: Assignment) -> str:
    """The card with the item's own text, ids and token taken out."""
    item = assignment.item
    for text in (item.prompt, item.response, item.external_id):
        if text:
            html = html.replace(text, "")
    html = re.sub(rf'(assignments/|data-assignment="|comment-){assignment.pk}(?=\D)', r"\1N", html)
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", html)

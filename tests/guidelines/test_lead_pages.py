from __future__ import annotations

from annotation.models import QualificationStatus, TaskType
from annotation.qualification import qualification_set
from annotation.queue import item_claim_next, judgment_submit
from guidelines.models import (
    CalibrationRound,
    CalibrationRoundStatus,
    GuidelineVersion,
    WorkedExample,
)
from guidelines.services import (
    calibration_answer,
    calibration_attempt_start,
    calibration_step_next,
    guideline_publish,
)
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory, UserFactory
from tests.guidelines.support import gold_score, make_gold, make_round

LEAD_PAGES = [
    "/p/mt-rating/lead/guideline/",
    "/p/mt-rating/lead/guideline/translation/",
    "/p/mt-rating/lead/gold/",
    "/p/mt-rating/lead/calibration/",
    "/p/mt-rating/lead/honeypots/",
    "/p/mt-rating/lead/too-fast/",
]


class LeadAccessTests(ParityTestCase):
    def test_evaluators_and_outsiders_get_403_and_anonymous_users_the_login(self):
        guideline_publish(project=self.project, body="# Rules", actor=self.lead)
        calibration_round = make_round(
            self.project, self.ar, [make_gold(self.project, self.ar, "g", 3)]
        )
        pages = [
            *LEAD_PAGES,
            f"/p/mt-rating/lead/calibration/{calibration_round.pk}/",
            "/p/mt-rating/lead/guideline/diff/1.0.0/",
        ]
        for user in (self.alice, self.outsider):
            self.client.force_login(user)
            for url in pages:
                with self.subTest(user=user.username, url=url):
                    self.assertEqual(self.client.get(url).status_code, 403)
            post = self.client.post(
                "/p/mt-rating/lead/guideline/",
                {"body": "# Mine", "changelog": "x", "bump": "major"},
            )
            self.assertEqual(post.status_code, 403)
        self.assertEqual(GuidelineVersion.objects.count(), 1)
        self.client.logout()
        self.assertEqual(self.client.get(LEAD_PAGES[0]).status_code, 302)
        self.client.force_login(self.lead)
        for url in pages:
            with self.subTest(user="lead", url=url):
                self.assertEqual(self.client.get(url).status_code, 200)


class GuidelineEditorTests(ParityTestCase):
    def setUp(self) -> None:
        self.client.force_login(self.lead)

    def test_the_lead_forms_take_a_judgment_without_the_cards_key_hints(self):
        pairs = ProjectFactory(slug="pairs", task_type=TaskType.PAIRWISE)
        pairs.leads.add(self.lead)
        # The worked-example form appears once a version is published.
        self.client.post(
            "/p/pairs/lead/guideline/",
            {"body": "# Rules", "changelog": "", "bump": "minor", "source_language": "en"},
        )
        for url in ("/p/pairs/lead/guideline/", "/p/pairs/lead/gold/"):
            page = self.client.get(url).content.decode()
            self.assertEqual(page.count('name="choice"'), 4, url)
            self.assertNotIn("<kbd", page, url)  # no keyboard handling on these pages
            self.assertNotIn('name="comment"', page, url)

    def test_the_lead_publishes_previews_and_diffs(self):
        response = self.client.post(
            "/p/mt-rating/lead/guideline/",
            {
                "body": "# Rules\n\nRate 1–5.",
                "changelog": "",
                "bump": "minor",
                "source_language": "en",
            },
        )
        self.assertRedirects(response, "/p/mt-rating/lead/guideline/")
        self.project.refresh_from_db()
        self.assertEqual(self.project.guideline_version, "1.0.0")
        response = self.client.post(
            "/p/mt-rating/lead/guideline/",
            {
                "body": "# Rules\n\nRate 1–5.\n\n<script>alert(1)</script> Never <b onclick='x()'>guess</b>.",
                "changelog": "No guessing.",
                "bump": "major",
                "source_language": "en",
                "confirm_major": "1",
            },
        )
        self.assertRedirects(response, "/p/mt-rating/lead/guideline/")
        self.project.refresh_from_db()
        self.assertEqual(self.project.guideline_version, "2.0.0")
        self.assertEqual(
            set(self.project.qualifications.values_list("status", flat=True)),
            {QualificationStatus.REQUALIFY},
        )
        preview = self.client.post(
            "/p/mt-rating/lead/guideline/preview/",
            {"body": "**bold** <img src=x onerror=alert(1)>"},
            HTTP_HX_REQUEST="true",
        )
        self.assertContains(preview, "<strong>bold</strong>")
        self.assertNotContains(preview, "onerror")
        self.assertNotContains(preview, "<html")
        diff = self.client.get("/p/mt-rating/lead/guideline/diff/2.0.0/")
        self.assertContains(
            diff, '<span class="diff-added">+ &lt;script&gt;alert(1)&lt;/script&gt;'
        )
        self.assertNotContains(diff, "<script>alert")
        self.assertEqual(
            self.client.get("/p/mt-rating/lead/guideline/diff/9.9.9/").status_code, 404
        )

    def test_a_refused_publication_says_why_and_changes_nothing(self):
        guideline_publish(project=self.project, body="# Rules", actor=self.lead)
        response = self.client.post(
            "/p/mt-rating/lead/guideline/", {"body": "# Rules 2", "changelog": "", "bump": "minor"}
        )
        self.assertContains(response, "say what changed since version 1.0.0", status_code=400)
        self.assertEqual(GuidelineVersion.objects.count(), 1)

    def test_worked_examples_are_added_and_shown_to_evaluators(self):
        guideline_publish(project=self.project, body="# Rules", actor=self.lead)
        ItemFactory(
            project=self.project, language=self.ar, external_id="ex-1", response="جملة جيدة"
        )
        bad = self.client.post(
            "/p/mt-rating/lead/guideline/examples/",
            {"external_id": "ex-1", "score": "8", "explanation": "x"},
            follow=True,
        )
        self.assertContains(bad, "8 is outside the scale 1–5")
        self.client.post(
            "/p/mt-rating/lead/guideline/examples/",
            {"external_id": "ex-1", "score": "5", "explanation": "Natural and faithful."},
        )
        self.assertEqual(WorkedExample.objects.get().value, {"score": 5})
        self.client.force_login(self.bashir)
        page = self.client.get("/p/mt-rating/guideline/?language=ar")
        self.assertContains(
            page,
            '<div class="text response" tabindex="0" role="region" aria-label="Response" '
            'lang="ar" dir="rtl">جملة جيدة</div>',
            html=True,
        )
        self.assertContains(page, "Natural and faithful.")


class RoundPageTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.gold = [make_gold(cls.project, cls.ar, f"ar-g{i}", score=2 + i) for i in range(3)]

    def setUp(self) -> None:
        self.client.force_login(self.lead)

    def test_bad_rounds_are_refused_with_a_clear_message(self):
        base = {
            "language": "ar",
            "pass_mark": "0.8",
            "cooldown_seconds": "60",
            "gold_items": [self.gold[0].pk],
        }
        cases = [
            ({"pass_mark": "1.5"}, "pass mark: must be between 0 and 1"),
            ({"pass_mark": "-1"}, "pass mark: must be between 0 and 1"),
            ({"gold_items": []}, "needs at least one gold item"),
            ({"language": "fr"}, "has no language &#x27;fr&#x27;"),
        ]
        for change, message in cases:
            with self.subTest(change=change):
                response = self.client.post("/p/mt-rating/lead/calibration/", {**base, **change})
                self.assertContains(response, message, status_code=400)
        self.assertFalse(CalibrationRound.objects.exists())

    def test_the_round_report_shows_attempts_and_what_people_missed(self):
        response = self.client.post(
            "/p/mt-rating/lead/calibration/",
            {
                "name": "Arabic round 1",
                "language": "ar",
                "pass_mark": "0.6",
                "cooldown_seconds": "0",
                "gold_items": [g.pk for g in self.gold],
                "open_now": "1",
            },
        )
        calibration_round = CalibrationRound.objects.get()
        self.assertRedirects(response, f"/p/mt-rating/lead/calibration/{calibration_round.pk}/")
        self.assertEqual(calibration_round.status, CalibrationRoundStatus.OPEN)
        missed = self.gold[0]
        for name in ("carol", "dana"):
            user = UserFactory(username=name)
            qualification_set(
                project=self.project, evaluator=user, language=self.ar, status="pending"
            )
            attempt = calibration_attempt_start(calibration_round=calibration_round, evaluator=user)
            while (step := calibration_step_next(attempt=attempt)) is not None:
                score = gold_score(step.assignment.item)
                if step.assignment.item == missed:
                    score = 5
                calibration_answer(
                    attempt=attempt,
                    assignment=step.assignment,
                    evaluator=user,
                    value={"score": score},
                )
        page = self.client.get(f"/p/mt-rating/lead/calibration/{calibration_round.pk}/")
        carol = UserFactory(username="carol").evaluator_profile.pseudonym
        self.assertContains(page, carol)
        self.assertNotContains(page, "carol")
        self.assertContains(page, "#1: 2/3 (67%) passed")
        # The item everyone missed comes first, with the answer they gave instead.
        content = page.content.decode()
        stats = content[content.index("Per gold item") :]
        self.assertLess(stats.index("ar-g0"), stats.index("ar-g1"))
        self.assertIn('100% <span class="muted">(2/2)</span>', stats)
        self.assertIn('<span class="answer wrong"><bdi>5</bdi> × 2</span>', stats)
        close = self.client.post(
            f"/p/mt-rating/lead/calibration/{calibration_round.pk}/", {"action": "close"}
        )
        self.assertEqual(close.status_code, 302)
        calibration_round.refresh_from_db()
        self.assertEqual(calibration_round.status, CalibrationRoundStatus.CLOSED)
        items = self.client.post(
            f"/p/mt-rating/lead/calibration/{calibration_round.pk}/",
            {"action": "items", "gold_items": [self.gold[0].pk]},
        )
        self.assertContains(items, "already taken this round", status_code=400)


class TooFastPageTests(ParityTestCase):
    def test_the_lead_sees_flagged_judgments_per_evaluator_and_language(self):
        self.project.max_chars_per_second = 20.0
        self.project.save(update_fields=["max_chars_per_second"])
        ItemFactory(
            project=self.project,
            language=self.de,
            prompt="",
            response="x" * 200,
            external_id="long",
        )
        ItemFactory(
            project=self.project,
            language=self.ar,
            prompt="",
            response="y" * 10,
            external_id="short",
        )
        fast = judgment_submit(
            assignment=item_claim_next(evaluator=self.alice, project=self.project),
            evaluator=self.alice,
            value={"score": 3},
            seconds=2,
        )  # 100 chars/s
        slow = judgment_submit(
            assignment=item_claim_next(evaluator=self.bashir, project=self.project),
            evaluator=self.bashir,
            value={"score": 3},
            seconds=2,
        )  # 5 chars/s
        self.assertTrue(fast.too_fast)
        self.assertFalse(slow.too_fast)
        self.client.force_login(self.lead)
        page = self.client.get("/p/mt-rating/lead/too-fast/")
        # Evaluators by pseudonym on every lead page (as in adjudication), never by username.
        alice, bashir = (
            self.alice.evaluator_profile.pseudonym,
            self.bashir.evaluator_profile.pseudonym,
        )
        self.assertContains(
            page, f"<td>{alice}</td><td>de</td><td>1</td><td>1</td><td>100%</td>", html=True
        )
        self.assertNotContains(page, bashir)
        self.assertNotContains(page, "alice")
        self.assertContains(page, "<code>long</code>")
        self.assertNotContains(self.client.get("/p/mt-rating/lead/too-fast/?language=ar"), alice)
        self.assertEqual(
            self.client.get("/p/mt-rating/lead/too-fast/?language=xx-invalid-").status_code, 400
        )

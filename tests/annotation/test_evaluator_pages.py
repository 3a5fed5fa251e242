"""The evaluator's pages through the Django test client: queue home, item card, submit,
skip, my judgments and revise — and every refusal with its message, nothing changed."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import translation

from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    GoldAnswer,
    Item,
    Judgment,
    Qualification,
    QualificationStatus,
    TaskType,
)
from annotation.qualification import qualification_grant, qualification_set
from annotation.queue import item_claim_next, judgment_submit
from annotation.schema import schema_validate
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory, UserFactory

HTMX = {"HTTP_HX_REQUEST": "true"}
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class _Elements(HTMLParser):
    """Every element of a page with its attributes and its text content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": {k: v or "" for k, v in attrs}, "text": ""}
        self.found.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data


def elements(
    response, *, tag: str | None = None, cls: str | None = None, **attrs: str
) -> list[dict[str, Any]]:
    parser = _Elements()
    parser.feed(response.content.decode())
    out = []
    for el in parser.found:
        if tag and el["tag"] != tag:
            continue
        if cls and cls not in el["attrs"].get("class", "").split():
            continue
        if any(el["attrs"].get(k.rstrip("_")) != v for k, v in attrs.items()):
            continue
        out.append(el)
    return out


def work_url(project, tag: str | None = None) -> str:
    url = reverse("annotation:work", args=[project.slug])
    return f"{url}?language={tag}" if tag else url


def submit_url(assignment_id: int) -> str:
    return reverse("annotation:assignment_submit", args=[assignment_id])


class EvaluatorPagesTestCase(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.pairwise = ProjectFactory(
            slug="mt-pairwise", task_type=TaskType.PAIRWISE, languages=["zh", "de"]
        )
        cls.labels = ProjectFactory(
            slug="udhr-labels",
            task_type=TaskType.LABELS,
            languages=["ar"],
            schema=schema_validate(
                task_type=TaskType.LABELS,
                schema={
                    "labels": ["fluent", "wrong_language", "garbled"],
                    "multi": True,
                    "issues": ["offensive"],
                },
            ),
        )
        cls.carol = UserFactory(username="carol")  # Chinese, pairwise
        qualification_grant(
            project=cls.pairwise, evaluator=cls.carol, language=cls.zh, actor=cls.lead
        )
        qualification_grant(
            project=cls.labels, evaluator=cls.bashir, language=cls.ar, actor=cls.lead
        )

    def login(self, user) -> None:
        self.client.force_login(user)

    def claim(self, user, project, tag: str) -> Assignment:
        self.login(user)
        response = self.client.get(work_url(project, tag))
        self.assertEqual(response.status_code, 200, response.content.decode()[:500])
        return Assignment.objects.get(
            evaluator=user, status=AssignmentStatus.LEASED, item__language__tag=tag, project=project
        )


class QueueHomeTests(EvaluatorPagesTestCase):
    def test_it_requires_login(self):
        response = self.client.get("/")
        self.assertRedirects(response, "/accounts/login/?next=/", fetch_redirect_response=False)

    def test_it_shows_only_the_qualified_languages_with_counts(self):
        ItemFactory.create_batch(3, project=self.project, language=self.de)
        ItemFactory.create_batch(2, project=self.project, language=self.ar)
        self.login(self.alice)
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        starts = [
            a["attrs"]["href"]
            for a in elements(response, tag="a")
            if "/work/" in a["attrs"].get("href", "")
        ]
        self.assertEqual(starts, [work_url(self.project, "de")])
        self.assertContains(response, "3 items waiting")
        self.assertNotContains(
            response, "<code>ar</code>"
        )  # no Arabic queue (the language menu names Arabic)
        self.assertNotContains(response, "mt-pairwise")

    def test_it_links_a_pending_qualification_to_calibration_with_its_reason(self):
        qualification_set(
            project=self.project,
            evaluator=self.alice,
            language=self.zh,
            status=QualificationStatus.SUSPENDED,
            reason="Honeypot accuracy 40% is below 70%.",
        )
        ItemFactory(project=self.project, language=self.zh)
        self.login(self.alice)
        response = self.client.get("/")
        self.assertContains(response, "Honeypot accuracy 40% is below 70%.")
        self.assertContains(response, 'href="/p/mt-rating/calibration/zh/"')
        self.assertNotContains(response, work_url(self.project, "zh"))

    def test_it_asks_to_acknowledge_a_new_guideline_before_work(self):
        self.project.guideline_version = "2.0.0"
        self.project.save(update_fields=["guideline_version"])
        ItemFactory(project=self.project, language=self.de)
        self.login(self.alice)
        response = self.client.get("/")
        self.assertContains(response, 'href="/p/mt-rating/guideline/"')
        self.assertContains(response, "2.0.0")
        self.assertNotContains(response, work_url(self.project, "de"))
        Qualification.objects.filter(evaluator=self.alice).update(acknowledged_version="2.0.0")
        response = self.client.get("/")
        self.assertContains(response, work_url(self.project, "de"))
        self.assertNotContains(response, 'href="/p/mt-rating/guideline/"')


class WorkPageTests(EvaluatorPagesTestCase):
    def test_it_renders_a_rating_card_with_the_items_lang_and_dir(self):
        ItemFactory(
            project=self.project,
            language=self.ar,
            prompt="Translate: peace",
            response="السلام عليكم\n  سطر ثان",
        )
        self.login(self.bashir)
        response = self.client.get(work_url(self.project, "ar"))
        self.assertEqual(response.status_code, 200)
        texts = elements(response, cls="text")
        self.assertEqual(len(texts), 2)
        for text in texts:
            self.assertEqual((text["attrs"]["lang"], text["attrs"]["dir"]), ("ar", "rtl"))
        self.assertEqual(elements(response, id="response")[0]["text"], "السلام عليكم\n  سطر ثان")
        # The default 1–5 scale as five buttons.
        self.assertEqual(
            [i["attrs"]["value"] for i in elements(response, tag="input", name="score")],
            ["1", "2", "3", "4", "5"],
        )
        # The import may say the prompt is in another language (a translation's source).
        for key in ("prompt_language", "source_language"):
            Item.objects.update(metadata={key: "en"})
            prompt = elements(self.client.get(work_url(self.project, "ar")), cls="prompt")[0][
                "attrs"
            ]
            self.assertEqual((prompt["lang"], prompt["dir"]), ("en", "ltr"))
        # The page itself stays in the interface direction.
        self.assertEqual(elements(response, tag="html")[0]["attrs"]["dir"], "ltr")

    def test_it_escapes_markup_in_model_output(self):
        ItemFactory(
            project=self.project,
            language=self.de,
            prompt="<b>hi</b>",
            response='<script>alert("x")</script><img src=x onerror=alert(1)>',
        )
        self.login(self.alice)
        response = self.client.get(work_url(self.project, "de"))
        html = response.content.decode()
        self.assertNotIn('<script>alert("x")', html)
        self.assertNotIn("<img src=x", html)
        self.assertIn("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;", html)
        self.assertEqual(
            elements(response, id="response")[0]["text"],
            '<script>alert("x")</script><img src=x onerror=alert(1)>',
        )

    def test_it_renders_pairwise_responses_side_by_side_in_their_language(self):
        ItemFactory(
            project=self.pairwise,
            language=self.zh,
            prompt="翻译：猫坐在垫子上。",
            response_a="猫坐在垫子上。",
            response_b="垫子猫。",
        )
        self.login(self.carol)
        response = self.client.get(work_url(self.pairwise, "zh"))
        self.assertEqual(response.status_code, 200)
        a, b = elements(response, id="response-a")[0], elements(response, id="response-b")[0]
        self.assertEqual(
            (a["attrs"]["lang"], a["attrs"]["dir"], a["text"]), ("zh", "ltr", "猫坐在垫子上。")
        )
        self.assertEqual(
            (b["attrs"]["lang"], b["attrs"]["dir"], b["text"]), ("zh", "ltr", "垫子猫。")
        )
        self.assertEqual(len(elements(response, cls="pair")), 1)
        self.assertEqual(
            [i["attrs"]["value"] for i in elements(response, tag="input", name="choice")],
            ["a", "b", "tie", "both_bad"],
        )
        self.assertEqual(
            [i["attrs"]["value"] for i in elements(response, tag="input", name="strength")],
            ["1", "2"],
        )

    def test_it_renders_multi_labels_as_checkboxes_and_single_labels_as_radios(self):
        ItemFactory(project=self.labels, language=self.ar, response="يولد جميع الناس أحراراً")
        self.login(self.bashir)
        response = self.client.get(work_url(self.labels, "ar"))
        inputs = elements(response, tag="input", name="labels")
        self.assertEqual(
            [(i["attrs"]["type"], i["attrs"]["value"]) for i in inputs],
            [("checkbox", "fluent"), ("checkbox", "wrong_language"), ("checkbox", "garbled")],
        )
        self.assertEqual(
            [i["attrs"]["value"] for i in elements(response, tag="input", name="issues")],
            ["offensive"],
        )

        single = ProjectFactory(slug="single-labels", task_type=TaskType.LABELS, languages=["de"])
        qualification_grant(project=single, evaluator=self.alice, language=self.de)
        ItemFactory(project=single, language=self.de)
        self.login(self.alice)
        response = self.client.get(work_url(single, "de"))
        self.assertEqual(
            {i["attrs"]["type"] for i in elements(response, tag="input", name="labels")}, {"radio"}
        )

    def test_it_renders_a_hundred_point_scale_as_slider_and_number(self):
        project = ProjectFactory(
            slug="mlqe-da",
            task_type=TaskType.RATING,
            languages=["de"],
            schema=schema_validate(
                task_type=TaskType.RATING,
                schema={
                    "scale": {"min": 0, "max": 100, "labels": {"0": "nonsense", "100": "perfect"}},
                    "issues": ["mistranslation"],
                },
            ),
        )
        qualification_grant(project=project, evaluator=self.alice, language=self.de)
        ItemFactory(project=project, language=self.de)
        self.login(self.alice)
        response = self.client.get(work_url(project, "de"))
        self.assertEqual(len(elements(response, tag="input", type="range")), 1)
        number = elements(response, tag="input", name="score")
        self.assertEqual(
            [(n["attrs"]["type"], n["attrs"]["min"], n["attrs"]["max"]) for n in number],
            [("number", "0", "100")],
        )
        self.assertContains(response, "nonsense")
        self.assertContains(response, "perfect")

    def test_it_refuses_a_language_the_evaluator_is_not_qualified_for(self):
        ItemFactory(project=self.project, language=self.ar)
        self.login(self.alice)
        response = self.client.get(work_url(self.project, "ar"))
        self.assertContains(
            response, "You are not qualified for Arabic in Mt Rating.", status_code=403
        )
        self.assertFalse(Assignment.objects.exists())

    def test_it_refuses_an_outsider(self):
        ItemFactory(project=self.project, language=self.de)
        self.login(self.outsider)
        response = self.client.get(work_url(self.project))
        self.assertContains(response, "not qualified for any language", status_code=403)
        self.assertFalse(Assignment.objects.exists())

    def test_it_refuses_an_unknown_language_tag(self):
        ItemFactory(project=self.project, language=self.de)
        self.login(self.alice)
        response = self.client.get(work_url(self.project, "no_such-tag!"))
        self.assertContains(response, "is not a valid BCP 47 language tag", status_code=400)
        response = self.client.get(work_url(self.project, "fr"))
        self.assertContains(response, "fr is not a language of Mt Rating.", status_code=400)
        self.assertFalse(Assignment.objects.exists())

    def test_it_refuses_a_language_that_only_another_project_has(self):
        ProjectFactory(languages=["sw"])
        ItemFactory(project=self.project, language=self.de)
        self.login(self.alice)
        response = self.client.get(work_url(self.project, "sw"))
        self.assertContains(response, "sw is not a language of Mt Rating.", status_code=400)
        self.assertFalse(Assignment.objects.exists())

    def test_a_project_that_does_not_exist_is_not_found(self):
        self.login(self.alice)
        self.assertEqual(self.client.get("/p/no-such-project/work/").status_code, 404)
        self.assertFalse(Assignment.objects.exists())

    def test_it_returns_the_card_fragment_to_htmx_and_varies_on_it(self):
        ItemFactory(project=self.project, language=self.de)
        self.login(self.alice)
        response = self.client.get(work_url(self.project, "de"), **HTMX)
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, "<html")
        self.assertTrue(response.content.decode().lstrip().startswith('<div id="card"'))
        self.assertIn("HX-Request", response["Vary"])

    def test_it_resumes_the_live_lease_on_reload(self):
        ItemFactory.create_batch(2, project=self.project, language=self.de)
        first = self.claim(self.alice, self.project, "de")
        self.client.get(work_url(self.project, "de"))
        self.assertEqual(Assignment.objects.filter(evaluator=self.alice).get(), first)

    def test_it_says_when_nothing_is_waiting(self):
        self.login(self.alice)
        response = self.client.get(work_url(self.project, "de"))
        self.assertContains(response, "Nothing is waiting for you in German right now.")
        self.assertEqual(elements(response, tag="form", cls="judgment"), [])

    def test_it_loads_the_guideline_panel_beside_the_card(self):
        self.project.guideline_version = "1.0.0"
        self.project.save(update_fields=["guideline_version"])
        Qualification.objects.filter(evaluator=self.alice).update(acknowledged_version="1.0.0")
        ItemFactory(project=self.project, language=self.de)
        self.login(self.alice)
        response = self.client.get(work_url(self.project, "de"))
        aside = elements(response, tag="aside")[0]
        self.assertEqual(aside["attrs"]["hx-get"], "/p/mt-rating/guideline/panel/?language=de")
        self.assertEqual(aside["attrs"]["hx-trigger"], "load")

    def test_it_shows_a_honeypot_exactly_like_a_production_item(self):
        self.project.honeypot_rate = 1.0
        self.project.save(update_fields=["honeypot_rate"])
        kwargs = {
            "project": self.project,
            "language": self.de,
            "prompt": "Same prompt",
            "response": "Same response",
        }
        gold = ItemFactory(is_gold=True, external_id="gold-1", **kwargs)
        GoldAnswer.objects.create(item=gold, value={"score": 5})
        ItemFactory(external_id="prod-1", **kwargs)
        self.login(self.alice)
        honeypot_card = self.client.get(work_url(self.project, "de"), **HTMX)
        honeypot = Assignment.objects.get(evaluator=self.alice)
        self.assertEqual(honeypot.kind, AssignmentKind.HONEYPOT)
        production_card = self.client.post(
            submit_url(honeypot.pk), {"score": "5", "language": "de"}, **HTMX
        )
        production = Assignment.objects.get(evaluator=self.alice, status=AssignmentStatus.LEASED)
        self.assertEqual(production.kind, AssignmentKind.PRODUCTION)

        def normalised(response, assignment_id):
            html = response.content.decode()
            for pattern in (r"/assignments/{}/", r'data-assignment="{}"', r'comment-{}"'):
                html = html.replace(pattern.format(assignment_id), pattern.format("N"))
            html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
            html = re.sub(r"Done today: \d+", "", html)  # one more is done by the second card
            return re.sub(r'<p class="notice".*?</p>', "", html, flags=re.S)

        self.assertEqual(
            normalised(honeypot_card, honeypot.pk), normalised(production_card, production.pk)
        )
        self.assertNotIn("gold", honeypot_card.content.decode().lower())
        self.assertNotIn("honeypot", honeypot_card.content.decode().lower())


class SubmitTests(EvaluatorPagesTestCase):
    def test_it_stores_the_judgment_and_returns_the_next_card_to_htmx(self):
        ItemFactory(project=self.project, language=self.de, response="Erste Antwort", priority=2)
        second = ItemFactory(
            project=self.project, language=self.de, response="Zweite Antwort", priority=1
        )
        assignment = self.claim(self.alice, self.project, "de")
        response = self.client.post(
            submit_url(assignment.pk),
            {"score": "4", "comment": "  gut  ", "seconds": "12.5", "language": "de"},
            **HTMX,
        )
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, "<html")
        judgment = Judgment.objects.get(assignment=assignment)
        self.assertEqual(judgment.value, {"score": 4, "comment": "gut"})
        self.assertEqual(judgment.seconds, 12.5)
        following = Assignment.objects.get(evaluator=self.alice, status=AssignmentStatus.LEASED)
        self.assertEqual(following.item, second)
        self.assertEqual(
            elements(response, id="card")[0]["attrs"]["data-assignment"], str(following.pk)
        )
        self.assertEqual(elements(response, id="response")[0]["text"], "Zweite Antwort")
        self.assertIn("HX-Request", response["Vary"])

    def test_it_redirects_a_plain_form_back_to_the_queue(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        response = self.client.post(submit_url(assignment.pk), {"score": "3", "language": "de"})
        self.assertRedirects(response, work_url(self.project, "de"), fetch_redirect_response=False)
        judgment = Judgment.objects.get(assignment=assignment)
        self.assertEqual(judgment.value, {"score": 3})
        # No time from the page: the lease time counts.
        self.assertGreaterEqual(judgment.seconds, 0)

    def test_it_stores_a_pairwise_choice_with_strength(self):
        ItemFactory(project=self.pairwise, language=self.zh)
        assignment = self.claim(self.carol, self.pairwise, "zh")
        self.client.post(
            submit_url(assignment.pk), {"choice": "b", "strength": "2", "language": "zh"}, **HTMX
        )
        self.assertEqual(
            Judgment.objects.get(assignment=assignment).value, {"choice": "b", "strength": 2}
        )

    def test_it_stores_several_labels_and_issues(self):
        ItemFactory(project=self.labels, language=self.ar)
        assignment = self.claim(self.bashir, self.labels, "ar")
        self.client.post(
            submit_url(assignment.pk),
            {"labels": ["garbled", "fluent"], "issues": ["offensive"], "language": "ar"},
            **HTMX,
        )
        self.assertEqual(
            Judgment.objects.get(assignment=assignment).value,
            {"labels": ["fluent", "garbled"], "issues": ["offensive"]},
        )

    def assertRefusedAndUnchanged(self, response, assignment, message, status=400):
        self.assertContains(response, message, status_code=status)
        self.assertFalse(Judgment.objects.filter(assignment=assignment).exists())
        assignment.refresh_from_db()
        self.assertEqual(assignment.status, AssignmentStatus.LEASED)

    def test_it_refuses_a_score_outside_the_schema_and_keeps_the_card(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        response = self.client.post(
            submit_url(assignment.pk),
            {"score": "9", "comment": "mein Kommentar", "language": "de"},
            **HTMX,
        )
        self.assertRefusedAndUnchanged(response, assignment, "score: 9 is outside the scale 1–5")
        # The same card comes back, with what the evaluator wrote.
        self.assertEqual(
            elements(response, id="card")[0]["attrs"]["data-assignment"], str(assignment.pk)
        )
        self.assertContains(response, "mein Kommentar", status_code=400)
        self.assertEqual(len(elements(response, tag="form", cls="judgment")), 1)

    def test_it_refuses_missing_or_malformed_fields(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        url = submit_url(assignment.pk)
        self.assertRefusedAndUnchanged(
            self.client.post(url, {}, **HTMX), assignment, "Choose a score."
        )
        self.assertRefusedAndUnchanged(
            self.client.post(url, {"score": "four"}),
            assignment,
            "score: &#x27;four&#x27; is not a whole number.",
        )
        self.assertRefusedAndUnchanged(
            self.client.post(url, {"score": "4", "seconds": "soon"}),
            assignment,
            "seconds: &#x27;soon&#x27; is not a number.",
        )
        self.assertRefusedAndUnchanged(
            self.client.post(url, {"score": "4", "seconds": "-3"}),
            assignment,
            "time on task must be between 0 and 86400",
        )
        self.assertRefusedAndUnchanged(
            self.client.post(url, {"score": "4", "issues": ["made_up"]}),
            assignment,
            "issues: &#x27;made_up&#x27; not in the project&#x27;s issue tags",
        )

    def test_it_refuses_a_pairwise_judgment_without_a_choice(self):
        ItemFactory(project=self.pairwise, language=self.zh)
        assignment = self.claim(self.carol, self.pairwise, "zh")
        response = self.client.post(submit_url(assignment.pk), {"strength": "1"}, **HTMX)
        self.assertRefusedAndUnchanged(response, assignment, "Choose A, B, tie or both bad.")
        response = self.client.post(submit_url(assignment.pk), {"choice": "c"}, **HTMX)
        self.assertRefusedAndUnchanged(
            response, assignment, "choice: must be one of a, b, tie, both_bad"
        )

    def test_it_refuses_a_second_submit_on_the_same_assignment(self):
        ItemFactory.create_batch(2, project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        self.client.post(submit_url(assignment.pk), {"score": "4", "language": "de"}, **HTMX)
        response = self.client.post(
            submit_url(assignment.pk), {"score": "1", "language": "de"}, **HTMX
        )
        # A stale card (second tab, after Back) is a conflict (409), swapped into the page.
        self.assertContains(
            response, "You already submitted a judgment for this item", status_code=409
        )
        self.assertEqual(Judgment.objects.get(assignment=assignment).value, {"score": 4})
        # No form for the closed assignment, only the way on.
        self.assertEqual(elements(response, tag="form", cls="judgment"), [])
        self.assertContains(response, work_url(self.project, "de"), status_code=409)

    def test_it_refuses_another_evaluators_assignment(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        self.login(self.bashir)
        response = self.client.post(submit_url(assignment.pk), {"score": "4"}, **HTMX)
        self.assertRefusedAndUnchanged(
            response, assignment, "This assignment is not yours.", status=403
        )
        response = self.client.post(
            reverse("annotation:assignment_skip", args=[assignment.pk]), {"reason": "cannot_judge"}
        )
        self.assertRefusedAndUnchanged(
            response, assignment, "This assignment is not yours.", status=403
        )
        # Nor can anyone tell whether an id exists.
        response = self.client.post(submit_url(assignment.pk + 1000), {"score": "4"})
        self.assertContains(response, "This assignment is not yours.", status_code=403)

    def test_it_refuses_a_get(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        self.assertEqual(self.client.get(submit_url(assignment.pk)).status_code, 405)


class SkipTests(EvaluatorPagesTestCase):
    def test_it_skips_with_a_reason_and_serves_the_next_item(self):
        ItemFactory(project=self.project, language=self.de, priority=2)
        second = ItemFactory(project=self.project, language=self.de, priority=1)
        assignment = self.claim(self.alice, self.project, "de")
        response = self.client.post(
            reverse("annotation:assignment_skip", args=[assignment.pk]),
            {"reason": "not_my_dialect", "language": "de"},
            **HTMX,
        )
        self.assertEqual(response.status_code, 200)
        assignment.refresh_from_db()
        self.assertEqual(
            (assignment.status, assignment.skip_reason),
            (AssignmentStatus.SKIPPED, "not_my_dialect"),
        )
        self.assertEqual(assignment.item.open_slots, 3)
        following = Assignment.objects.get(evaluator=self.alice, status=AssignmentStatus.LEASED)
        self.assertEqual(following.item, second)
        self.assertContains(response, f'data-assignment="{following.pk}"')

    def test_it_refuses_an_unknown_reason(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        response = self.client.post(
            reverse("annotation:assignment_skip", args=[assignment.pk]), {"reason": "bored"}, **HTMX
        )
        self.assertContains(response, "Choose a skip reason", status_code=400)
        assignment.refresh_from_db()
        self.assertEqual(assignment.status, AssignmentStatus.LEASED)


class MyJudgmentsTests(EvaluatorPagesTestCase):
    def judge(self, user, project, language, value, **item_kwargs):
        ItemFactory(project=project, language=language, **item_kwargs)
        assignment = item_claim_next(evaluator=user, project=project, language=language)
        return judgment_submit(assignment=assignment, evaluator=user, value=value)

    def test_it_lists_only_the_evaluators_own_judgments(self):
        self.judge(self.alice, self.project, self.de, {"score": 4}, response="Alices Antwort")
        self.judge(self.bashir, self.project, self.ar, {"score": 2}, response="إجابة بشير")
        self.login(self.alice)
        response = self.client.get(reverse("annotation:my_judgments"))
        self.assertContains(response, "Alices Antwort")
        self.assertNotContains(response, "إجابة بشير")
        snippet = elements(response, cls="snippet")[0]
        self.assertEqual((snippet["attrs"]["lang"], snippet["attrs"]["dir"]), ("de", "ltr"))

    def test_it_paginates(self):
        for n in range(27):
            self.judge(self.alice, self.project, self.de, {"score": 3}, response=f"Antwort {n}")
        self.login(self.alice)
        first = self.client.get(reverse("annotation:my_judgments"))
        self.assertEqual(len(elements(first, cls="judgment-row")), 25)
        self.assertContains(first, "Page 1 of 2")
        second = self.client.get(reverse("annotation:my_judgments") + "?page=2")
        self.assertEqual(len(elements(second, cls="judgment-row")), 2)

    def test_revise_adds_a_revision_and_keeps_the_history(self):
        judgment = self.judge(self.alice, self.project, self.de, {"score": 4})
        self.login(self.alice)
        url = reverse("annotation:judgment_revise", args=[judgment.pk])
        page = self.client.get(url)
        self.assertEqual(page.status_code, 200)
        checked = [
            i["attrs"]["value"]
            for i in elements(page, tag="input", name="score")
            if "checked" in i["attrs"]
        ]
        self.assertEqual(checked, ["4"])
        response = self.client.post(url, {"score": "2", "comment": "on second thought"})
        revisions = list(
            Judgment.objects.filter(assignment=judgment.assignment).order_by("revision")
        )
        self.assertEqual(
            [(j.revision, j.value["score"], j.is_current) for j in revisions],
            [(1, 4, False), (2, 2, True)],
        )
        self.assertRedirects(
            response, reverse("annotation:judgment_revise", args=[revisions[1].pk])
        )
        history = self.client.get(reverse("annotation:judgment_revise", args=[revisions[1].pk]))
        rows = elements(history, tag="tr")
        self.assertEqual(len(rows), 3)  # header + two revisions
        self.assertIn("on second thought", history.content.decode())
        # Revising from the old revision's page adds to the same history.
        self.client.post(url, {"score": "1"})
        self.assertEqual(Judgment.objects.filter(assignment=judgment.assignment).count(), 3)

    def test_revise_refuses_a_value_outside_the_schema(self):
        judgment = self.judge(self.alice, self.project, self.de, {"score": 4})
        self.login(self.alice)
        response = self.client.post(
            reverse("annotation:judgment_revise", args=[judgment.pk]), {"score": "0"}
        )
        self.assertContains(response, "score: 0 is outside the scale 1–5", status_code=400)
        self.assertEqual(Judgment.objects.filter(assignment=judgment.assignment).count(), 1)

    def test_revise_refuses_another_evaluators_judgment(self):
        judgment = self.judge(self.alice, self.project, self.de, {"score": 4}, response="privat")
        self.login(self.bashir)
        url = reverse("annotation:judgment_revise", args=[judgment.pk])
        response = self.client.get(url)
        self.assertContains(response, "This judgment is not yours.", status_code=403)
        self.assertNotContains(response, "privat", status_code=403)
        response = self.client.post(url, {"score": "1"})
        self.assertContains(response, "This judgment is not yours.", status_code=403)
        self.assertEqual(Judgment.objects.get(assignment=judgment.assignment).value, {"score": 4})


class InterfaceLanguageTests(EvaluatorPagesTestCase):
    def setUp(self) -> None:
        super().setUp()
        # The Arabic requests below leave Arabic active in this thread (LocaleMiddleware
        # activates, never deactivates): put the default back for whatever runs next.
        self.addCleanup(translation.activate, settings.LANGUAGE_CODE)

    def test_it_renders_an_arabic_interface_right_to_left(self):
        ItemFactory(project=self.project, language=self.de, response="Die Katze")
        self.login(self.alice)
        self.client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ar"
        home = self.client.get("/")
        html = elements(home, tag="html")[0]["attrs"]
        self.assertEqual((html["lang"], html["dir"]), ("ar", "rtl"))
        self.assertContains(home, "طوابيرك")  # "Your queues"
        card = self.client.get(work_url(self.project, "de"))
        self.assertContains(card, "إرسال")  # "Submit"
        # The item keeps its own direction inside the right-to-left page.
        response = elements(card, id="response")[0]["attrs"]
        self.assertEqual((response["lang"], response["dir"]), ("de", "ltr"))

    def test_the_language_switcher_sets_the_interface_language(self):
        self.login(self.alice)
        home = self.client.get("/")
        self.assertEqual(
            elements(home, tag="form", cls="setlang")[0]["attrs"]["action"], "/i18n/setlang/"
        )
        response = self.client.post("/i18n/setlang/", {"language": "ar", "next": "/"})
        self.assertRedirects(response, "/", fetch_redirect_response=False)
        self.assertEqual(self.client.get("/").headers["Content-Language"], "ar")

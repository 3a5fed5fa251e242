"""An Arabic evaluator's calibration in real Chromium: read and acknowledge the guideline,
take the round with feedback after each answer, fail, wait out the cool-down, pass, and
then get production items. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from annotation.gold import gold_create
from annotation.models import Assignment, AssignmentKind, QualificationStatus, TaskType
from annotation.qualification import evaluator_language_add, qualification_set
from annotation.schema import schema_validate
from guidelines.services import (
    calibration_answer,
    calibration_attempt_start,
    calibration_round_create,
    calibration_round_open,
    calibration_step_next,
    guideline_publish,
    guideline_translation_save,
)
from tests.browser.conftest import log_in, screenshot
from tests.factories import ItemFactory, ProjectFactory, UserFactory, language

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GUIDELINE_EN = (
    "# Rating translations\n\nRate **adequacy** first: does the Arabic say what the English says?\n"
)
GUIDELINE_AR = (
    "# تقييم الترجمات\n\nقيّم **الدقة** أولاً: هل يقول النص العربي ما يقوله النص الإنجليزي؟\n"
)
# (English source, Arabic response, gold score, explanation)
GOLD = [
    ("All human beings are born free.", "يولد جميع الناس أحرارًا.", 5, "Faithful and fluent: a 5."),
    (
        "The cat sits on the mat.",
        "الكلب نائم في الحديقة.",
        1,
        "A different sentence altogether: a 1.",
    ),
    (
        "Good morning, everyone.",
        "صباح الخير.",
        3,
        "Drops 'everyone': adequate but incomplete, a 3.",
    ),
]
PRODUCTION = ["لكل فرد الحق في الحياة والحرية.", "التعليم حق للجميع."]


def _setup():
    schema = schema_validate(
        task_type=TaskType.RATING,
        schema={
            "scale": {
                "min": 1,
                "max": 5,
                "labels": {"1": "unusable", "3": "acceptable", "5": "perfect"},
            }
        },
    )
    project = ProjectFactory(
        slug="calib-ar",
        name="Arabic MT",
        task_type=TaskType.RATING,
        languages=["ar"],
        schema=schema,
    )
    lead = UserFactory(username="lead")
    project.leads.add(lead)
    version = guideline_publish(project=project, body=GUIDELINE_EN, actor=lead)
    guideline_translation_save(
        project=project, version=version, language="ar", body=GUIDELINE_AR, actor=lead
    )
    arabic = language("ar")
    layla = UserFactory(username="layla")
    evaluator_language_add(user=layla, language=arabic)
    qualification_set(
        project=project, evaluator=layla, language=arabic, status=QualificationStatus.PENDING
    )
    gold_ids = []
    for n, (source, response, score, why) in enumerate(GOLD):
        gold = gold_create(
            project=project,
            external_id=f"gold-{n}",
            language="ar",
            prompt=source,
            prompt_language="en",
            response=response,
            value={"score": score},
            explanation=why,
            actor=lead,
        )
        gold_ids.append(gold.item.pk)
    for n, text in enumerate(PRODUCTION):
        ItemFactory(
            project=project,
            language=arabic,
            prompt="Translate",
            response=text,
            external_id=f"p-{n}",
            metadata={"prompt_language": "en"},
        )
    calibration_round = calibration_round_create(
        project=project,
        language="ar",
        pass_mark=1.0,
        cooldown_seconds=2,
        gold_item_ids=gold_ids,
        name="Arabic calibration",
        actor=lead,
    )
    calibration_round_open(calibration_round=calibration_round, actor=lead)
    return project, layla


def _answer_round(page: Page, *, right: bool, shot: str, keyboard: bool = False) -> None:
    by_response = {response: (score, why) for _, response, score, why in GOLD}
    for n in range(len(GOLD)):
        expect(page.locator(".progress")).to_have_text(f"Item {n + 1} of {len(GOLD)}")
        response = page.locator(".text.response")
        text = response.inner_text()
        score, why = by_response[text]
        assert response.get_attribute("lang") == "ar"
        assert response.evaluate("el => getComputedStyle(el).direction") == "rtl"
        # The English source keeps its own direction.
        assert (
            page.locator(".text.prompt").evaluate("el => getComputedStyle(el).direction") == "ltr"
        )
        # Nothing of the gold answer before answering.
        assert why not in page.content()
        expect(page.locator("#gold-answer")).to_have_count(0)
        answer = score if right else score % 5 + 1
        if keyboard:
            # The production card's keys: the digit chooses the scale point, Enter submits.
            page.keyboard.press(str(answer))
            expect(page.locator(f'input[name="score"][value="{answer}"]')).to_be_checked()
        else:
            page.locator(f'input[name="score"][value="{answer}"]').check(force=True)
        if n == 0:
            screenshot(page, f"{shot}-item")
        if keyboard:
            page.keyboard.press("Enter")
        else:
            page.click("#submit-answer")
        # After answering: their answer, the gold answer and why.
        expect(page.locator("#your-answer")).to_contain_text(str(answer))
        expect(page.locator("#gold-answer")).to_contain_text(str(score))
        expect(page.locator("#explanation")).to_have_text(why)
        expect(page.locator("#your-answer .verdict")).to_contain_text(
            "right" if right else "not right"
        )
        if n == 0:
            screenshot(page, f"{shot}-feedback")
        page.click("#next")


class CalibrationBrowserTests:
    def test_an_arabic_evaluator_fails_waits_out_the_cool_down_passes_and_works(self, page: Page):
        project, layla = _setup()
        log_in(page, "layla")
        # The queue home sends them to the guideline first.
        page.get_by_role("link", name="Read and acknowledge guideline 1.0.0 first").click()
        body = page.locator("article.guideline-body")
        expect(body).to_contain_text("قيّم الدقة أولاً")
        assert body.get_attribute("lang") == "ar"
        assert body.evaluate("el => getComputedStyle(el).direction") == "rtl"
        screenshot(page, "calibration-guideline-ar")
        page.click("#acknowledge")

        # Acknowledged: on to the calibration round of their language.
        expect(page.locator("#start-calibration")).to_be_visible()
        screenshot(page, "calibration-intro")
        page.click("#start-calibration")
        _answer_round(page, right=False, shot="calibration-attempt1")

        # Failed: the score and verdict, and the cool-down before a retry.
        expect(page.locator("#verdict")).to_have_text("Not passed: 0 of 3 right.")
        expect(page.locator("#cooldown")).to_be_visible()
        expect(page.locator("#start-calibration")).to_have_count(0)
        screenshot(page, "calibration-failed-cooldown")
        # The page reloads itself when the cool-down is over.
        expect(page.locator("#start-calibration")).to_be_visible(timeout=10_000)
        page.click("#start-calibration")
        _answer_round(page, right=True, shot="calibration-attempt2", keyboard=True)

        expect(page.locator("#verdict")).to_have_text("Passed: 3 of 3 right.")
        screenshot(page, "calibration-passed")
        page.click("#start-work")

        # Production items now, in Arabic, right to left.
        response = page.locator("#response")
        expect(response).to_be_visible()
        assert response.inner_text() in PRODUCTION
        assert response.evaluate("el => getComputedStyle(el).direction") == "rtl"
        expect(page.locator("aside.guideline")).to_contain_text("Guideline 1.0.0")
        screenshot(page, "calibration-then-production")
        assignment = Assignment.objects.get(evaluator=layla, status="leased")
        assert assignment.kind == AssignmentKind.PRODUCTION
        assert (
            Assignment.objects.filter(evaluator=layla, kind=AssignmentKind.CALIBRATION).count() == 6
        )

    def test_a_lead_previews_publishes_and_reads_the_round_report(self, page: Page):
        project, layla = _setup()
        lead_round = project.calibration_rounds.get()
        log_in(page, "lead")
        page.goto(f"/p/{project.slug}/lead/guideline/")
        # The preview follows the text as the lead types (htmx), sanitised.
        page.fill(
            "#id_body",
            GUIDELINE_EN + "\nNever **guess**. <img src=x onerror=\"document.title='x'\">\n",
        )
        expect(page.locator("#preview strong", has_text="guess")).to_be_visible()
        assert page.locator("#preview img").get_attribute("onerror") is None
        page.fill("#id_changelog", "Do not guess.")
        page.check('input[name="bump"][value="minor"]')
        screenshot(page, "lead-guideline-editor")
        page.click("#publish")
        expect(page.get_by_text("Published version 1.1.0.")).to_be_visible()
        assert page.title() != "x"
        page.get_by_role("link", name="Diff with the previous").first.click()
        expect(page.locator(".diff-added", has_text="Never **guess**.")).to_be_visible()
        screenshot(page, "lead-guideline-diff")
        # Layla takes the round and misses the incomplete translation (gold 3, she says 5).
        layla_ack = layla.qualifications.get()
        layla_ack.acknowledged_version = "1.1.0"
        layla_ack.save(update_fields=["acknowledged_version"])
        attempt = calibration_attempt_start(calibration_round=lead_round, evaluator=layla)
        while (step := calibration_step_next(attempt=attempt)) is not None:
            score = step.assignment.item.gold.value["score"]
            calibration_answer(
                attempt=attempt,
                assignment=step.assignment,
                evaluator=layla,
                value={"score": 5 if score == 3 else score},
            )
        page.goto(f"/p/{project.slug}/lead/calibration/{lead_round.pk}/")
        expect(page.locator(".attempts")).to_contain_text("#1: 2/3 (67%) failed")
        first_row = page.locator(".item-stats tbody tr").first
        expect(first_row).to_contain_text("gold-2")
        expect(first_row).to_contain_text("100%")
        screenshot(page, "lead-calibration-round")

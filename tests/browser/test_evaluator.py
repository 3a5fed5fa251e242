"""The evaluator's path in real Chromium: keyboard-only work, right-to-left and CJK text,
and the phone layout. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from playwright.sync_api import Page, expect

from annotation.models import Assignment, AssignmentStatus, Judgment, TaskType
from annotation.qualification import qualification_grant
from annotation.schema import schema_validate
from tests.browser.conftest import PHONE, log_in, screenshot
from tests.factories import ItemFactory, ProjectFactory, UserFactory, language

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UDHR_AR = (
    "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. "
    "وهم قد وهبوا عقلاً وضميرًا وعليهم أن يعامل بعضهم بعضًا بروح الإخاء."
)
UDHR_ZH = "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。"
UDHR_DE = (
    "Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und "
    "Gewissen begabt und sollen einander im Geist der Brüderlichkeit begegnen."
)
# The prompt is the English source; the import says so, so it is shown left to right.
EN_PROMPT = {"prompt_language": "en"}
UDHR_EN = (
    "All human beings are born free and equal in dignity and rights. They are endowed with reason "
    "and conscience and should act towards one another in a spirit of brotherhood."
)


def rating_project(slug: str, tags: list[str]):
    schema = schema_validate(
        task_type=TaskType.RATING,
        schema={
            "scale": {
                "min": 1,
                "max": 5,
                "labels": {"1": "unusable", "3": "acceptable", "5": "perfect"},
            },
            "issues": ["mistranslation", "wrong_language", "unsafe"],
        },
    )
    return ProjectFactory(slug=slug, task_type=TaskType.RATING, languages=tags, schema=schema)


def evaluator(username: str, project, tag: str):
    user = UserFactory(username=username)
    qualification_grant(project=project, evaluator=user, language=language(tag))
    return user


def wait_for_next_card(page: Page, previous_id: str) -> str:
    page.wait_for_function(
        "prev => { const c = document.getElementById('card'); return c && c.dataset.assignment !== prev; }",
        arg=previous_id,
    )
    return page.get_attribute("#card", "data-assignment") or ""


class EvaluatorBrowserTests:
    def test_it_works_three_items_with_the_keyboard_only(self, page: Page):
        project = rating_project("keyboard", ["de"])
        alice = evaluator("alice", project, "de")
        for n, text in enumerate(
            [UDHR_DE, "Die Katze sitzt auf der Matte.", "Guten Morgen!\n\n  Eingerückt."]
        ):
            ItemFactory(
                project=project,
                language=language("de"),
                prompt=UDHR_EN,
                metadata=EN_PROMPT,
                response=text,
                priority=3 - n,
            )

        log_in(page, "alice")
        expect(page.get_by_role("heading", name="Your queues")).to_be_visible()
        expect(page.get_by_text("3 items waiting")).to_be_visible()
        screenshot(page, "queue-home")
        page.get_by_role("link", name="Start").focus()
        with page.expect_navigation(wait_until="load"):
            page.keyboard.press("Enter")
        card_id = page.get_attribute("#card", "data-assignment")
        screenshot(page, "rating-card")

        # Item 1: the digit picks the point, Enter submits; the next card swaps in without a reload.
        page.evaluate("window.__sameDocument = true")
        page.keyboard.press("4")
        expect(page.locator('input[name="score"][value="4"]')).to_be_checked()
        with page.expect_request(lambda r: "/submit/" in r.url) as submitted:
            page.keyboard.press("Enter")
        # The page measured the visible time on task and sent it along.
        sent = parse_qs(submitted.value.post_data or "")
        assert float(sent["seconds"][0]) >= 0
        card_id = wait_for_next_card(page, card_id)
        assert page.evaluate("window.__sameDocument") is True
        expect(page.locator("#card .notice")).to_be_visible()

        # Item 2: "?" shows the shortcut help and hides it again.
        page.keyboard.press("?")
        expect(page.locator("#shortcut-help")).to_be_visible()
        screenshot(page, "shortcut-help", full_page=False)
        page.keyboard.press("?")
        expect(page.locator("#shortcut-help")).to_be_hidden()
        page.keyboard.press("2")
        page.keyboard.press("Enter")
        card_id = wait_for_next_card(page, card_id)
        assert page.evaluate("window.__sameDocument") is True

        # Item 3: whitespace of the output is kept.
        assert page.inner_text("#response") == "Guten Morgen!\n\n  Eingerückt."
        page.keyboard.press("5")
        page.keyboard.press("Enter")
        expect(page.get_by_text("Nothing is waiting for you in German right now.")).to_be_visible()
        assert page.evaluate("window.__sameDocument") is True
        screenshot(page, "queue-empty")

        judgments = Judgment.objects.filter(evaluator=alice).order_by("id")
        assert [j.value for j in judgments] == [{"score": 4}, {"score": 2}, {"score": 5}]
        assert all(j.seconds is not None and j.seconds >= 0 for j in judgments)

    def test_it_chooses_pairwise_strength_and_skips_with_the_keyboard(self, page: Page):
        project = ProjectFactory(slug="pairs", task_type=TaskType.PAIRWISE, languages=["de"])
        alice = evaluator("alice", project, "de")
        for n in range(2):
            ItemFactory(
                project=project,
                language=language("de"),
                prompt=UDHR_EN,
                metadata=EN_PROMPT,
                priority=2 - n,
                response_a=UDHR_DE,
                response_b="Alle Menschen frei geboren sind.",
            )
        log_in(page, "alice")
        page.goto(f"/p/{project.slug}/work/?language=de")
        card_id = page.get_attribute("#card", "data-assignment")
        page.keyboard.press("b")
        page.keyboard.press("b")
        expect(page.locator('input[name="choice"][value="b"]')).to_be_checked()
        expect(page.locator('input[name="strength"][value="2"]')).to_be_checked()
        page.keyboard.press("Enter")
        card_id = wait_for_next_card(page, card_id)
        page.keyboard.press("s")
        expect(page.locator("[data-skip] form")).to_be_visible()
        page.keyboard.press("2")
        expect(page.get_by_text("Nothing is waiting for you in German right now.")).to_be_visible()

        assert Judgment.objects.get(evaluator=alice).value == {"choice": "b", "strength": 2}
        skipped = Assignment.objects.get(pk=card_id)
        assert (skipped.status, skipped.skip_reason) == (AssignmentStatus.SKIPPED, "cannot_judge")

    def test_an_arabic_response_is_right_to_left_in_any_interface(self, page: Page):
        project = rating_project("arabic", ["ar"])
        evaluator("bashir", project, "ar")
        ItemFactory(
            project=project,
            language=language("ar"),
            prompt=UDHR_EN,
            metadata=EN_PROMPT,
            response=UDHR_AR,
        )
        log_in(page, "bashir")
        page.goto(f"/p/{project.slug}/work/?language=ar")
        response = page.locator("#response")
        expect(response).to_have_text(UDHR_AR)
        assert response.evaluate("el => getComputedStyle(el).direction") == "rtl"
        assert page.evaluate("getComputedStyle(document.documentElement).direction") == "ltr"
        # Right-aligned text in a right-to-left box: the first word sits at the right edge.
        box = response.bounding_box()
        first_word = response.evaluate(
            """el => { const r = document.createRange(); const t = el.firstChild;
                       r.setStart(t, 0); r.setEnd(t, 4); const b = r.getBoundingClientRect();
                       return {x: b.x, width: b.width}; }"""
        )
        assert first_word["width"] > 0
        assert first_word["x"] > box["x"] + box["width"] / 2
        screenshot(page, "arabic-item-english-interface")

        prompt = page.locator(".text.prompt")
        assert (
            prompt.get_attribute("lang"),
            prompt.evaluate("el => getComputedStyle(el).direction"),
        ) == ("en", "ltr")

        # Switch the interface to Arabic: the page turns right to left; the item's texts keep
        # their own directions.
        page.select_option("#setlang-language", "ar")
        page.wait_for_function("document.documentElement.dir === 'rtl'")
        assert page.evaluate("getComputedStyle(document.documentElement).direction") == "rtl"
        assert page.locator("#response").evaluate("el => getComputedStyle(el).direction") == "rtl"
        assert prompt.evaluate("el => getComputedStyle(el).direction") == "ltr"
        expect(page.get_by_role("button", name="إرسال")).to_be_visible()
        screenshot(page, "arabic-item-arabic-interface")

    def test_a_chinese_item_renders_its_glyphs(self, page: Page):
        project = rating_project("chinese", ["zh"])
        evaluator("mei", project, "zh")
        ItemFactory(
            project=project,
            language=language("zh"),
            prompt=UDHR_EN,
            metadata=EN_PROMPT,
            response=UDHR_ZH,
        )
        log_in(page, "mei")
        page.goto(f"/p/{project.slug}/work/?language=zh")
        response = page.locator("#response")
        expect(response).to_be_visible()
        expect(response).to_have_text(UDHR_ZH)
        assert response.get_attribute("lang") == "zh"
        glyphs = response.evaluate(
            """el => { const t = el.firstChild; const out = [];
                       for (const i of [0, 1, 2, 10]) { const r = document.createRange();
                         r.setStart(t, i); r.setEnd(t, i + 1); const b = r.getBoundingClientRect();
                         out.push({w: b.width, h: b.height}); }
                       return {glyphs: out, size: parseFloat(getComputedStyle(el).fontSize)}; }"""
        )
        for glyph in glyphs["glyphs"]:
            assert glyph["w"] > 0 and glyph["h"] > 0
            # Han characters are full-width: about one em each.
            assert 0.8 * glyphs["size"] <= glyph["w"] <= 1.2 * glyphs["size"]
        screenshot(page, "chinese-item")

    def test_a_phone_shows_both_pairwise_responses_stacked(self, make_page):
        project = ProjectFactory(slug="pairs-phone", task_type=TaskType.PAIRWISE, languages=["ar"])
        evaluator("bashir", project, "ar")
        ItemFactory(
            project=project,
            language=language("ar"),
            prompt=UDHR_EN,
            metadata=EN_PROMPT,
            response_a=UDHR_AR,
            response_b="يولد الناس أحرار. " * 3,
        )
        page = make_page(**PHONE, is_mobile=True, has_touch=True)
        log_in(page, "bashir")
        page.goto(f"/p/{project.slug}/work/?language=ar")
        a, b = page.locator("#response-a"), page.locator("#response-b")
        expect(a).to_be_visible()
        expect(b).to_be_visible()
        box_a, box_b = a.bounding_box(), b.bounding_box()
        assert box_b["y"] >= box_a["y"] + box_a["height"]  # stacked, B under A
        for box in (box_a, box_b):
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        # Nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "pairwise-phone")
        page.set_viewport_size({"width": 1280, "height": 900})
        box_a, box_b = a.bounding_box(), b.bounding_box()
        assert abs(box_a["y"] - box_b["y"]) < 1  # side by side on a wide screen
        screenshot(page, "pairwise-desktop")

    def test_it_rates_on_a_hundred_point_slider_and_revises_from_my_judgments(self, page: Page):
        # The MLQE-PE direct-assessment scale: 0–100.
        schema = schema_validate(
            task_type=TaskType.RATING,
            schema={
                "scale": {
                    "min": 0,
                    "max": 100,
                    "labels": {"0": "nonsense", "50": "some meaning", "100": "perfect"},
                },
                "issues": ["mistranslation", "omission"],
            },
        )
        project = ProjectFactory(
            slug="mlqe-da", task_type=TaskType.RATING, languages=["de"], schema=schema
        )
        alice = evaluator("alice", project, "de")
        ItemFactory(
            project=project,
            language=language("de"),
            prompt=UDHR_EN,
            metadata=EN_PROMPT,
            response=UDHR_DE,
        )
        log_in(page, "alice")
        page.goto(f"/p/{project.slug}/work/?language=de")
        # Not set until set: the slider has no thumb and says so.
        expect(page.locator("[data-score-unset]")).to_be_visible()
        # Digits typed in a row are one exact score (issue 13: not 10-point steps).
        page.keyboard.press("7")
        page.keyboard.press("0")
        expect(page.locator("[data-score-number]")).to_have_value("70")
        assert page.locator("[data-score-range]").input_value() == "70"
        expect(page.locator("[data-score-unset]")).to_be_hidden()
        screenshot(page, "slider-card")
        page.keyboard.press("Enter")
        expect(page.get_by_text("Nothing is waiting for you in German right now.")).to_be_visible()
        judgment = Judgment.objects.get(evaluator=alice)
        assert judgment.value == {"score": 70}

        page.get_by_role("link", name="My judgments").click()
        expect(page.get_by_text("70 — ")).to_have_count(0)  # 70 has no label of its own
        expect(page.locator(".judgment-row")).to_have_count(1)
        screenshot(page, "my-judgments")
        with page.expect_navigation(wait_until="load"):
            page.get_by_role("link", name="View and revise").click()
        for digit in "100":
            page.keyboard.press(digit)
        expect(page.locator("[data-score-number]")).to_have_value("100")
        page.get_by_label("Comment (optional)").fill("Perfekt, nach nochmaligem Lesen.")
        page.get_by_role("button", name="Save a new revision").click()
        expect(page.get_by_text("Saved as revision 2.")).to_be_visible()
        expect(page.locator(".history tbody tr")).to_have_count(2)
        screenshot(page, "revise-history")
        revisions = list(
            Judgment.objects.filter(assignment=judgment.assignment).order_by("revision")
        )
        assert [(j.value.get("score"), j.is_current) for j in revisions] == [
            (70, False),
            (100, True),
        ]

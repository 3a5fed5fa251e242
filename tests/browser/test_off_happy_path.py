"""Issue 13 in real Chromium: a refused in-place submit stays inside the card; an expired
session (or all cookies gone) returns to the same card with the draft restored; the A/B
diff toggles by key on the text nodes; a major guideline version warns the lead first; the
item browser. Screenshots go to test-output/screenshots/ (look at them)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from annotation.models import Assignment, AssignmentStatus, Judgment, TaskType
from annotation.qualification import qualification_grant
from annotation.schema import schema_validate
from guidelines.services import guideline_acknowledge, guideline_publish
from tests.browser.conftest import log_in, screenshot
from tests.factories import ItemFactory, ProjectFactory, UserFactory, language

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DE = "Alle Menschen sind frei und gleich an Würde und Rechten geboren."
AR = "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق."
ZH = "人人生而自由，在尊严和权利上一律平等。"
JA = "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。"
HI = "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता प्राप्त है।"


def rating_setup(slug: str = "rate"):
    schema = schema_validate(
        task_type=TaskType.RATING,
        schema={
            "scale": {"min": 1, "max": 5},
            "issues": [{"id": "mistranslation", "name": "Mistranslation"}, "code_switching"],
        },
    )
    project = ProjectFactory(
        slug=slug, name="UDHR rating", task_type=TaskType.RATING, languages=["de"], schema=schema
    )
    lead = UserFactory(username="lead")
    project.leads.add(lead)
    guideline_publish(project=project, body="# Rate the translation\n\n5 is perfect.", actor=lead)
    alice = UserFactory(username="alice")
    qualification_grant(project=project, evaluator=alice, language=language("de"))
    guideline_acknowledge(project=project, evaluator=alice, version="1.0.0")
    for n in range(3):
        ItemFactory(
            project=project,
            language=language("de"),
            response=f"{DE} ({n})",
            prompt="Article 1",
            metadata={"prompt_language": "en"},
            priority=3 - n,
        )
    return project


class RefusalBrowserTests:
    def test_a_refused_submit_swaps_into_the_card_and_keeps_the_page(self, page: Page):
        rating_setup()
        log_in(page, "alice")
        page.goto("/p/rate/work/?language=de")
        expect(
            page.locator("aside.guideline h1, aside.guideline .guideline-body")
        ).not_to_have_count(0)
        # A modified client sends a score outside the scale.
        page.evaluate("document.querySelector('input[name=score][value=\"5\"]').value = '9'")
        page.locator("input[name=score][value='9']").check(force=True)
        page.fill("textarea[name=comment]", "Sehr gut")
        page.keyboard.press("Escape")
        page.evaluate("window.__sameDocument = true")
        page.keyboard.press("Enter")
        error = page.locator("#card-messages .error")
        expect(error).to_contain_text("score: 9 is outside the scale 1–5")
        # Same document, header and guideline still there, one card, the comment kept.
        assert page.evaluate("window.__sameDocument") is True
        expect(page.locator("header.topbar")).to_have_count(1)
        expect(page.locator("#card")).to_have_count(1)
        expect(page.locator("aside.guideline .guideline-body")).to_have_count(1)
        expect(page.locator("textarea[name=comment]")).to_have_value("Sehr gut")
        assert not Judgment.objects.exists()

    def test_a_whole_page_answer_never_replaces_the_card(self, page: Page):
        rating_setup()
        log_in(page, "alice")
        page.goto("/p/rate/work/?language=de")
        page.route(
            "**/assignments/*/submit/",
            lambda route: route.fulfill(
                status=403,
                content_type="text/html",
                body="<!doctype html><html><body><h1>403 Forbidden</h1></body></html>",
            ),
        )
        page.locator("label.point", has_text="4").click()
        page.locator("button.primary", has_text="Submit").click()
        expect(page.locator("#card-messages .error")).to_contain_text(
            "The server could not take this"
        )
        expect(page.get_by_text("403 Forbidden")).to_have_count(0)
        expect(page.locator("form.judgment")).to_have_count(1)


class ExpiredSessionBrowserTests:
    def _type_a_draft(self, page: Page) -> str:
        page.goto("/p/rate/work/?language=de")
        card = page.get_attribute("#card", "data-assignment")
        page.keyboard.press("4")
        page.keyboard.press("Shift+Digit1")  # issue tag 1: Mistranslation
        page.fill("textarea[name=comment]", "„Würde“ fehlt fast — bitte prüfen")
        page.keyboard.press("Escape")
        return card

    def _log_in_again_and_find_the_draft(self, page: Page, card: str, shot: str) -> None:
        expect(page).to_have_url("/accounts/login/?next=%2Fp%2Frate%2Fwork%2F%3Flanguage%3Dde")
        expect(page.locator("header.topbar")).to_have_count(1)
        page.fill("#id_username", "alice")
        page.fill("#id_password", "pw-for-tests-1")
        page.click("form.stack button[type=submit]")
        page.wait_for_url("**/p/rate/work/?language=de")
        assert page.get_attribute("#card", "data-assignment") == card
        expect(page.locator("textarea[name=comment]")).to_have_value(
            "„Würde“ fehlt fast — bitte prüfen"
        )
        expect(page.locator("input[name=score][value='4']")).to_be_checked()
        expect(page.locator("input[name=issues][value=mistranslation]")).to_be_checked()
        expect(page.locator("#card-messages [data-draft-restored]")).to_have_text(
            "What you entered before is back: check it and submit."
        )
        screenshot(page, shot)
        # Submitting now stores exactly what was typed before the session ran out, and the draft goes.
        page.keyboard.press("Enter")
        expect(page.locator("#card-messages .notice")).to_contain_text("Saved.")
        judgment = Judgment.objects.get(assignment_id=int(card))
        assert judgment.value == {
            "score": 4,
            "issues": ["mistranslation"],
            "comment": "„Würde“ fehlt fast — bitte prüfen",
        }
        page.wait_for_function(f"() => localStorage.getItem('parity:draft:{card}') === null")

    def test_an_expired_session_returns_to_the_same_card_with_the_draft(self, page: Page):
        rating_setup()
        log_in(page, "alice")
        card = self._type_a_draft(page)
        page.context.clear_cookies(name="sessionid")
        page.keyboard.press("Enter")
        self._log_in_again_and_find_the_draft(page, card, "expired-session-return")
        assert Assignment.objects.get(pk=int(card)).status == AssignmentStatus.SUBMITTED

    def test_with_all_cookies_gone_it_is_the_same(self, page: Page):
        rating_setup()
        log_in(page, "alice")
        card = self._type_a_draft(page)
        page.context.clear_cookies()
        page.keyboard.press("Enter")
        self._log_in_again_and_find_the_draft(page, card, "all-cookies-gone-return")

    def test_after_back_a_judged_item_does_not_come_back_as_a_fresh_card(self, page: Page):
        rating_setup()
        log_in(page, "alice")
        page.goto("/p/rate/work/?language=de")
        first = page.get_attribute("#card", "data-assignment")
        page.keyboard.press("3")
        page.keyboard.press("Enter")
        expect(page.locator("#card-messages .notice")).to_contain_text(
            "Saved. Here is the next item."
        )
        page.get_by_role("link", name="My judgments").click()
        page.go_back()
        page.wait_for_selector("#card[data-assignment]")
        assert page.get_attribute("#card", "data-assignment") != first


class PairwiseDiffBrowserTests:
    def test_d_highlights_word_differences_and_both_responses_are_keyboard_readable(
        self, page: Page
    ):
        project = ProjectFactory(
            slug="pair", name="UDHR pairwise", task_type=TaskType.PAIRWISE, languages=["de", "zh"]
        )
        alice = UserFactory(username="alice")
        qualification_grant(project=project, evaluator=alice, language=language("de"))
        long_a = DE + " " + (DE + " ") * 12 + "Sie sind mit Vernunft begabt."
        long_b = (
            DE.replace("Rechten", "Recht")
            + " "
            + (DE + " ") * 12
            + "Sie sind mit Vernunft und Gewissen begabt."
        )
        ItemFactory(
            project=project,
            language=language("de"),
            prompt="Article 1",
            metadata={"prompt_language": "en"},
            response="",
            response_a=long_a,
            response_b=long_b,
        )
        log_in(page, "alice")
        page.goto("/p/pair/work/?language=de")
        a, b = page.locator("#response-a"), page.locator("#response-b")
        expect(page.locator("[data-diff-toggle]")).to_be_visible()
        page.keyboard.press("d")
        expect(b.locator("mark.diff-added")).to_have_text(["Recht", "und Gewissen"])
        expect(a.locator("mark.diff-removed")).to_have_text(["Rechten"])
        assert (
            a.text_content() == long_a and b.text_content() == long_b
        )  # the text itself is untouched
        expect(page.locator("[data-diff-toggle]")).to_have_attribute("aria-pressed", "true")
        screenshot(page, "pairwise-diff", full_page=False)
        # Both clipped boxes take focus and scroll by keyboard to their last word.
        for box in (a, b):
            box.focus()
            page.keyboard.press("End")
            page.wait_for_function(
                "el => el.scrollTop + el.clientHeight >= el.scrollHeight - 2",
                arg=box.element_handle(),
            )
        page.keyboard.press("d")
        expect(b.locator("mark")).to_have_count(0)

    def test_scripts_without_spaces_are_compared_by_character(self, page: Page):
        project = ProjectFactory(slug="pair-zh", task_type=TaskType.PAIRWISE, languages=["zh"])
        carol = UserFactory(username="carol")
        qualification_grant(project=project, evaluator=carol, language=language("zh"))
        ItemFactory(
            project=project,
            language=language("zh"),
            response="",
            response_a=ZH,
            response_b=ZH.replace("一律平等", "完全平等"),
        )
        log_in(page, "carol")
        page.goto("/p/pair-zh/work/?language=zh")
        page.keyboard.press("d")
        expect(page.locator("#response-b mark.diff-added")).to_have_text("完全")
        expect(page.locator("#response-a mark.diff-removed")).to_have_text("一律")


class MajorVersionBrowserTests:
    def test_the_lead_sees_who_a_major_version_blocks_before_publishing(self, page: Page):
        project = rating_setup()
        UserFactory(username="bashir")
        log_in(page, "lead")
        page.goto("/p/rate/lead/guideline/")
        page.fill("#id_body", "# Rate the translation\n\nA new scale: 5 is perfect, 1 is unusable.")
        page.fill("#id_changelog", "New scale.")
        page.locator("input[name=bump][value=major]").check()
        page.locator("#publish").click()
        warning = page.locator("#major-warning")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("1 qualified evaluator must pass a calibration round")
        expect(warning).to_contain_text(UserFactory(username="alice").evaluator_profile.pseudonym)
        expect(warning).to_contain_text("No round with gold items")
        screenshot(page, "major-version-warning")
        project.refresh_from_db()
        assert project.guideline_version == "1.0.0"
        page.locator("#publish").click()
        expect(page.locator(".messages")).to_contain_text("Published version 2.0.0.")
        expect(page.locator(".messages")).to_contain_text("No calibration round is open for German")


class ItemBrowserBrowserTests:
    def test_the_lead_browses_items_each_in_its_own_script(self, page: Page):
        project = ProjectFactory(
            slug="udhr",
            name="UDHR Article 1",
            task_type=TaskType.RATING,
            languages=["ar", "de", "hi", "ja", "zh"],
        )
        lead = UserFactory(username="lead")
        project.leads.add(lead)
        for tag, text in (("ar", AR), ("de", DE), ("hi", HI), ("ja", JA), ("zh", ZH)):
            ItemFactory(
                project=project,
                language=language(tag),
                external_id=f"udhr-{tag}",
                response=text,
                prompt="All human beings are born free and equal in dignity and rights.",
                metadata={"prompt_language": "en"},
            )
        log_in(page, "lead")
        page.goto("/p/udhr/items/?page_size=10")
        expect(page.locator("table.items tbody tr")).to_have_count(5)
        arabic = page.locator(".snippet", has_text="يولد")
        assert (arabic.get_attribute("lang"), arabic.get_attribute("dir")) == ("ar", "rtl")
        screenshot(page, "item-browser")
        page.fill("#f-q", "自由")
        page.locator("#f-q").press("Enter")
        expect(page.locator("table.items tbody tr")).to_have_count(
            2
        )  # Chinese and Japanese share the word
        page.get_by_role("link", name="udhr-zh").click()
        expect(page.locator("h1")).to_have_text("udhr-zh")


class UndoBrowserTests:
    def test_u_takes_back_the_last_submission_and_the_card_comes_back_filled_in(self, page: Page):
        rating_setup()
        log_in(page, "alice")
        page.goto("/p/rate/work/?language=de")
        first = page.get_attribute("#card", "data-assignment")
        page.keyboard.press("2")
        page.keyboard.press("Enter")
        expect(page.locator("#card-messages [data-undo]")).to_be_visible()
        second = page.get_attribute("#card", "data-assignment")
        assert second != first
        page.keyboard.press("u")
        expect(page.locator("#card-messages .notice")).to_contain_text("Undone")
        assert page.get_attribute("#card", "data-assignment") == first
        expect(page.locator("input[name=score][value='2']")).to_be_checked()
        assert not Judgment.objects.filter(assignment_id=int(first)).exists()
        # The card taken meanwhile went back to the queue: one live lease.
        assert Assignment.objects.filter(status=AssignmentStatus.LEASED).count() == 1
        page.keyboard.press("5")
        page.keyboard.press("Enter")
        expect(page.locator("#card-messages .notice")).to_contain_text(
            "Saved. Here is the next item."
        )
        assert Judgment.objects.get(assignment_id=int(first)).value == {"score": 5}


# What axe's scrollable-region-focusable asks: a box that scrolls can take keyboard focus,
# itself or through something focusable inside it.
UNREACHABLE_SCROLLERS = """() => Array.from(document.querySelectorAll('main *')).filter(el => {
  const s = getComputedStyle(el);
  const scrolls = (/(auto|scroll)/.test(s.overflowY) && el.scrollHeight > el.clientHeight + 1)
    || (/(auto|scroll)/.test(s.overflowX) && el.scrollWidth > el.clientWidth + 1);
  if (!scrolls || el.matches('textarea, select')) return false;
  const focusable = el.tabIndex >= 0 || el.querySelector('a[href], button, input, select, textarea, [tabindex]');
  return !focusable;
}).map(el => el.tagName + '.' + el.className)"""


class ScrollableRegionBrowserTests:
    def test_every_box_that_scrolls_takes_keyboard_focus(self, make_page):
        project = rating_setup()
        guideline_publish(
            project=project,
            body="# Rules\n\n" + "\n\n".join(f"Rule {n}: {DE}" for n in range(60)),
            changelog="Longer.",
            bump="patch",
        )
        ItemFactory(project=project, language=language("de"), response=(DE + "\n") * 40, priority=9)
        for who, url, width in (
            ("alice", "/p/rate/work/?language=de", 1280),
            ("lead", "/p/rate/lead/guideline/", 1280),
            ("lead", "/p/rate/parity/", 390),
            ("lead", "/p/rate/lead/", 390),
        ):
            page = make_page(width=width, height=800)
            log_in(page, who)
            page.goto(url)
            page.wait_for_load_state("networkidle")
            assert page.evaluate(UNREACHABLE_SCROLLERS) == [], url

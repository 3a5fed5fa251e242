"""A lead finds every lead page from the queue home, in real Chromium, on a desktop and on a
390-pixel phone, in English and in the Arabic interface: nothing widens the page, Arabic and
Japanese items keep their own direction. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from annotation.demo_data import numbered
from annotation.gold import gold_create
from annotation.imports import judgments_import
from annotation.models import FinalLabel, ItemStatus, TaskType
from annotation.schema import schema_validate
from guidelines.services import guideline_publish
from tests.browser.conftest import PHONE, log_in, screenshot
from tests.factories import ItemFactory, ProjectFactory, UserFactory, language

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARABIC = "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق."
JAPANESE = "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。"


def _setup() -> None:
    schema = schema_validate(
        task_type=TaskType.LABELS, schema={"labels": ["correct", "wrong_language"]}
    )
    project = ProjectFactory(
        slug="udhr",
        name="UDHR Article 1 check",
        task_type=TaskType.LABELS,
        languages=["ar", "ja", "de"],
        schema=schema,
    )
    lead = UserFactory(username="lead")
    project.leads.add(lead)
    guideline_publish(
        project=project, body="# Check the language\n\nIs it **your** language?", actor=lead
    )
    ItemFactory(project=project, language=language("ar"), response=ARABIC, external_id="udhr-arb")
    ItemFactory(project=project, language=language("ja"), response=JAPANESE, external_id="udhr-jpn")
    gold_create(
        project=project,
        external_id="gold-ja",
        language="ja",
        response=JAPANESE,
        value={"labels": ["correct"]},
        explanation="The Japanese text.",
        actor=lead,
    )


def _no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


class LeadPagesBrowserTests:
    def test_a_lead_reaches_every_lead_page_from_the_queue_home(self, page: Page):
        _setup()
        log_in(page, "lead")
        page.get_by_role("link", name="Lead").click()
        expect(page.locator("h1")).to_have_text("Project overview")
        screenshot(page, "lead-browser-dashboard")
        nav = page.locator("nav.lead-subnav")
        for label, heading in (
            ("Gold items", "Gold items"),
            ("Active learning", "Active-learning rounds"),
            ("Parity", "Parity report"),
            ("Calibration", "Calibration rounds"),
            ("Overview", "Project overview"),
        ):
            nav.get_by_role("link", name=label, exact=True).click()
            expect(page.locator("h1")).to_have_text(heading)
            expect(nav.locator("[aria-current=page]")).to_have_text(label)
        # The gold page shows the Japanese text in its own language.
        nav.get_by_role("link", name="Gold items", exact=True).click()
        snippet = page.locator(".snippet", has_text="すべての人間は")
        assert snippet.get_attribute("lang") == "ja"

    def test_nothing_is_wider_than_a_phone_in_the_arabic_interface(self, make_page):
        _setup()
        page = make_page(**PHONE)
        log_in(page, "lead")
        page.context.add_cookies([{"name": "django_language", "value": "ar", "url": page.url}])
        for path in (
            "/p/udhr/lead/",
            "/p/udhr/lead/gold/",
            "/p/udhr/lead/calibration/",
            "/p/udhr/lead/al/",
            "/p/udhr/parity/",
            "/",
        ):
            page.goto(path)
            assert page.locator("html").get_attribute("dir") == "rtl"
            _no_sideways_scroll(page)
        page.goto("/p/udhr/lead/gold/")
        # The current tab is scrolled into view in the sideways-scrolling sub-navigation.
        current = page.locator("nav.lead-subnav [aria-current=page]")
        box, row = current.bounding_box(), page.locator("nav.lead-subnav ul").bounding_box()
        assert row["x"] <= box["x"] and box["x"] + box["width"] <= row["x"] + row["width"] + 1
        screenshot(page, "lead-browser-gold-ar-phone")
        page.goto("/p/udhr/lead/")
        # A few languages: the per-language tables are unfolded.
        cell = page.locator("details.per-language[open] code[lang=ja]").first
        expect(cell).to_be_visible()
        screenshot(page, "lead-browser-dashboard-ar-phone")

    def test_a_lead_adjudicates_on_a_hundred_point_slider(self, page: Page):
        schema = schema_validate(
            task_type=TaskType.RATING, schema={"scale": {"min": 0, "max": 100}}
        )
        project = ProjectFactory(
            slug="da", task_type=TaskType.RATING, languages=["de"], schema=schema
        )
        lead = UserFactory(username="lead")
        project.leads.add(lead)
        item = ItemFactory(
            project=project,
            language=language("de"),
            external_id="split",
            status=ItemStatus.ADJUDICATION,
            response="Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
        )
        judgments_import(
            project=project,
            records=numbered(
                [
                    {"item_external_id": "split", "rater": f"r{k}", "value": {"score": score}}
                    for k, score in enumerate((10, 55, 95))
                ]
            ),
        )
        log_in(page, "lead")
        page.goto(f"/p/da/adjudication/{item.pk}/")
        # The slider and the number field move together here too (parity.js), and no key
        # hints promise shortcuts this page does not have.
        page.locator("[data-score-range]").fill("60")
        expect(page.locator("[data-score-number]")).to_have_value("60")
        page.locator("[data-score-number]").fill("64")
        assert page.locator("[data-score-range]").input_value() == "64"
        expect(page.locator("form kbd")).to_have_count(0)
        screenshot(page, "lead-adjudication-slider")
        page.locator("textarea[name=reason]").fill(
            "The middle reading: the translation keeps most of the meaning."
        )
        page.get_by_role("button", name="Record final label").click()
        expect(page.locator("h1")).to_be_visible()
        assert FinalLabel.objects.get(item=item).value["score"] == 64

"""The progress report in real Chromium: the lead reads it in English (left to right) and
in Arabic (right to left) on a desktop and a phone, follows a next step, and a stakeholder
opens the shared printable page without an account. Screenshots go to
test-output/screenshots/ (progress-*.png)."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import Page, expect

from annotation.models import ModelVersion, TaskType
from tests.annotation.test_progress import TRUE, _build
from tests.browser.conftest import PHONE, log_in, screenshot
from tests.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _setup() -> None:
    project = ProjectFactory(
        slug="mt", name="MT quality", task_type=TaskType.RATING, languages=["de", "ar", "zh"]
    )
    project.leads.add(UserFactory(username="lead"))
    _build(project, TRUE, n=30, weeks={"v1": 0, "v2": 3}, prompt_ids=True)
    ModelVersion.objects.filter(project=project, name="v1").update(
        released_on=date(2025, 1, 1), version="1.0"
    )
    ModelVersion.objects.filter(project=project, name="v2").update(
        released_on=date(2025, 3, 1), version="2.0"
    )


def _no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


class ProgressBrowserTests:
    def test_the_lead_reads_the_report_and_follows_a_next_step(self, page: Page, make_page):
        _setup()
        log_in(page, "lead")
        page.goto("/p/mt/lead/")
        page.locator("nav.lead-subnav").get_by_role("link", name="Progress", exact=True).click()
        expect(page.locator("h1")).to_have_text("Progress report")
        expect(page.locator(".progress-summary tbody tr")).to_have_count(3)
        # Arabic got worse under v2, German better: the verdicts say so.
        arabic = page.locator(".progress-summary tbody tr", has_text="(ar)")
        expect(arabic.locator(".verdict.worse")).to_be_visible()
        expect(
            page.locator(".progress-summary tbody tr", has_text="(de)").locator(".verdict.better")
        ).to_be_visible()
        expect(page.locator("svg circle")).to_have_count(12)
        screenshot(page, "progress-en-desktop")
        arabic.get_by_role("link", name="review the items that got worse").click()
        expect(page.locator("h1")).to_contain_text("Items that got worse")
        assert page.locator("tbody tr").count() > 0
        screenshot(page, "progress-regressed-en")
        # A share link, opened without an account.
        page.goto("/p/mt/progress/")
        page.get_by_role("button", name="Create link").click()
        url = page.locator("a.share-url").get_attribute("href")
        anonymous = make_page()
        anonymous.goto(url)
        expect(anonymous.locator("h1")).to_contain_text("MT quality")
        expect(anonymous.locator("form")).to_have_count(0)
        anonymous.emulate_media(media="print")
        screenshot(anonymous, "progress-shared-print")

    def test_the_report_reads_right_to_left_in_arabic_on_a_phone(self, make_page):
        _setup()
        for name, options in (("desktop", {}), ("phone", PHONE)):
            page = make_page(**options)
            log_in(page, "lead")
            page.context.add_cookies([{"name": "django_language", "value": "ar", "url": page.url}])
            page.goto("/p/mt/progress/")
            assert page.locator("html").get_attribute("dir") == "rtl"
            # Language codes keep their own direction inside the right-to-left page.
            assert page.locator(".progress-summary span[lang=zh]").get_attribute("dir") == "ltr"
            _no_sideways_scroll(page)
            screenshot(page, f"progress-ar-{name}")
            page.goto("/p/mt/models/")
            _no_sideways_scroll(page)
        screenshot(page, "progress-models-ar-phone")

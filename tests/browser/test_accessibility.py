"""axe-core on every evaluator page and every lead page of the demo, in a left-to-right and a
right-to-left interface: no critical or serious violation (WCAG 2.1 A/AA and best practices).

The demo data (`manage.py demo --limit 5`) gives each page something to show: the lead of
every project, German, Arabic and Japanese evaluators, a calibration round, pairs waiting for
adjudication, a pool for active learning.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import Page, expect

from annotation.models import Item, ItemStatus, Project
from guidelines.models import CalibrationRound
from tests.browser.conftest import PASSWORD, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _interface(page: Page, live_server, language: str) -> None:
    page.context.add_cookies(
        [{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}]
    )


def _walk(page: Page, live_server, axe: Callable[..., list[dict]], language: str) -> dict:
    """Visit every evaluator and lead page; return {page name: violations} for those with any."""
    found: dict[str, list[dict]] = {}

    def check(name: str) -> None:
        page.wait_for_load_state("load")
        expect(page.locator("html")).to_have_attribute(
            "lang", "zh-hans" if language == "zh-hans" else language
        )
        violations = axe(page)
        if violations:
            found[f"{name} ({page.url})"] = violations

    call_command("demo", limit=5, password=PASSWORD, stdout=StringIO())
    udhr = Project.objects.get(slug="udhr-labels")
    wmt = Project.objects.get(slug="wmt23-sxs")

    # Evaluators: the login page, the queue home, a rating, a pairwise and a labels card,
    # their judgments and a revision, the guideline, calibration from start to feedback.
    _interface(page, live_server, language)
    page.goto("/accounts/login/")
    check("login")
    log_in(page, "hans")
    check("queue home")
    page.goto("/p/mlqe-da/work/?language=de")
    check("rating card")
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    page.goto("/p/wmt23-sxs/work/?language=de")
    check("pairwise card")
    page.goto(reverse("annotation:my_judgments"))
    check("my judgments")
    page.locator("a[href*='/revise/']").first.click()
    check("revise judgment")
    page.goto(reverse("guidelines:guideline", args=["mlqe-da"]))
    check("guideline")
    page.context.clear_cookies()

    _interface(page, live_server, language)
    log_in(page, "amira")
    page.goto("/p/udhr-labels/work/?language=ar")
    check("labels card, right-to-left item")
    page.context.clear_cookies()

    _interface(page, live_server, language)
    log_in(page, "yuki")
    page.goto(reverse("guidelines:guideline", args=["udhr-labels"]))
    check("guideline to acknowledge")
    page.click("#acknowledge")
    expect(page.locator("#start-calibration")).to_be_visible()
    check("calibration start")
    page.click("#start-calibration")
    expect(page.locator(".progress")).to_be_visible()
    check("calibration item")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_url("**/feedback/**")
    check("calibration feedback")
    page.context.clear_cookies()

    # The lead: every lead page of the projects, with an adjudication and an active-learning round.
    _interface(page, live_server, language)
    log_in(page, "lead")
    # A judged pair the raters split on (the short demo may have none waiting): route it.
    waiting = Item.objects.filter(project=wmt, status=ItemStatus.DONE).order_by("pk").first()
    Item.objects.filter(pk=waiting.pk).update(status=ItemStatus.ADJUDICATION)
    calibration_round = CalibrationRound.objects.filter(project=udhr).order_by("pk").first()
    pages = [
        ("lead overview", reverse("annotation:lead_dashboard", args=["wmt23-sxs"])),
        ("parity", reverse("annotation:lead_parity", args=["mlqe-da"])),
        ("agreement", reverse("annotation:lead_agreement", args=["wmt23-sxs"])),
        ("adjudication queue", reverse("annotation:adjudication_queue", args=["wmt23-sxs"])),
        (
            "adjudication item",
            reverse("annotation:adjudication_item", args=["wmt23-sxs", waiting.pk]),
        ),
        ("API tokens", reverse("annotation:tokens", args=["mlqe-da"])),
        ("user reports", reverse("annotation:report_triage", args=["mlqe-da"])),
        ("guideline editor", reverse("guidelines:lead_guideline", args=["udhr-labels"])),
        (
            "guideline diff",
            reverse("guidelines:lead_guideline_diff", args=["udhr-labels", "1.0.0"]),
        ),
        ("gold items", reverse("guidelines:lead_gold", args=["udhr-labels"])),
        ("calibration rounds", reverse("guidelines:lead_rounds", args=["udhr-labels"])),
        (
            "calibration round",
            reverse("guidelines:lead_round", args=["udhr-labels", calibration_round.pk]),
        ),
        ("honeypots", reverse("guidelines:lead_honeypots", args=["mlqe-da"])),
        ("too fast", reverse("guidelines:lead_too_fast", args=["mlqe-da"])),
        ("active-learning rounds", reverse("active_learning:rounds", args=["mlqe-pool"])),
    ]
    for name, url in pages:
        page.goto(url)
        check(name)
    page.goto(reverse("guidelines:lead_guideline", args=["udhr-labels"]))
    page.locator("a[href*='translation']").first.click()
    check("guideline translation")
    page.goto(reverse("active_learning:rounds", args=["mlqe-pool"]))
    page.locator("#id_budget").fill("3")
    page.locator("form[action*='preview'] button[type=submit]").click()
    check("active-learning preview")
    page.locator("form[action*='run'] button[type=submit]").click()
    page.wait_for_url("**/lead/al/rounds/**")
    check("active-learning round")
    screenshot(page, f"axe-walk-last-page-{language}")
    return found


def _report(found: dict) -> str:
    lines = []
    for name, violations in found.items():
        lines.append(name)
        for v in violations:
            lines.append(f"  {v['impact']} {v['id']}: {v['help']}")
            lines.extend(
                f"    {n['target']}: {n['summary'].splitlines()[-1].strip()}" for n in v["nodes"]
            )
    return "\n".join(lines)


class AccessibilityBrowserTests:
    @pytest.mark.parametrize("language", ["en", "ar"])
    def test_every_evaluator_and_lead_page_passes_axe(self, page: Page, live_server, axe, language):
        found = _walk(page, live_server, axe, language)
        assert found == {}, "axe-core violations:\n" + _report(found)

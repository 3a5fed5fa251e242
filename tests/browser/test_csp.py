"""The Content-Security-Policy holds on the main pages: real Chromium reports every
violation (a blocked inline script, eval, style or resource) and the test lists them."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import log_in
from tests.browser.test_evaluator import UDHR_DE, evaluator, rating_project
from tests.factories import ItemFactory, UserFactory, language

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Collected in the page before any of its own code runs; the policy does not apply to this.
COLLECT = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`));
"""


def violations(page: Page, path: str, console: list[str]) -> list[str]:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    found = page.evaluate("window.__csp") + [m for m in console if "Content Security Policy" in m]
    console.clear()
    return [f"{path}: {v}" for v in found]


class CspBrowserTests:
    def test_the_main_pages_run_without_a_single_violation(self, page: Page):
        project = rating_project("csp", ["de"])
        evaluator("alice", project, "de")
        lead = UserFactory(username="lead", is_staff=True, is_superuser=True)
        project.leads.add(lead)
        for n in range(2):
            ItemFactory(
                project=project,
                language=language("de"),
                response=f"{UDHR_DE} {n}",
                external_id=f"c{n}",
            )
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.context.add_init_script(COLLECT)

        found = violations(page, "/accounts/login/", console)
        log_in(page, "alice")
        for path in ("/", "/p/csp/work/?language=de", "/me/judgments/"):
            found += violations(page, path, console)
        # The work page's own script ran under the policy: the card is keyboard-ready.
        page.goto("/p/csp/work/?language=de")
        page.keyboard.press("4")
        page.context.clear_cookies()
        log_in(page, "lead")
        for path in (
            "/p/csp/lead/",
            "/p/csp/lead/gold/",
            "/p/csp/lead/calibration/",
            "/p/csp/lead/al/",
            "/p/csp/parity/",
            "/p/csp/items/",
            "/p/csp/tokens/",
            "/admin/",
            "/api/v1/docs/",
        ):
            found += violations(page, path, console)
        response = page.goto("/")
        assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
        assert not found, "\n".join(found)

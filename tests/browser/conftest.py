"""Real Chromium through Playwright's sync API, against pytest-django's live_server.

Reusable by every browser test:
- `browser`: one Chromium for the session (the system's /usr/bin/chromium; Playwright never
  downloads a browser);
- `page`: a fresh desktop-sized page (1280×900) whose relative URLs go to the live server;
- `make_page(width=…, height=…)`: more pages, e.g. a 390×844 phone;
- `log_in(page, username)`: logs in through the real login form;
- `screenshot(page, name)`: saves test-output/screenshots/<name>.png (look at them);
- `axe(page)`: runs axe-core (vendored from npm in tests/browser/vendor/axe-core, test-only,
  never served) on the page and returns its critical and serious violations.

Browser tests need `@pytest.mark.django_db(transaction=True)` (the live server runs in
another thread) and `@pytest.mark.browser`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
# still synchronous and happen between browser steps, never concurrently with them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Never fetch a browser: the system Chromium is used.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

CHROMIUM = os.environ.get("PARITY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory's password
SCREENSHOTS = Path(settings.BASE_DIR) / "test-output" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA, and axe's best practices (landmarks, regions, scrollable regions).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium) or set PARITY_CHROMIUM."
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def make_page(browser: Browser, live_server) -> Iterator[Callable[..., Page]]:
    contexts = []

    def make(*, width: int = DESKTOP["width"], height: int = DESKTOP["height"], **options) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            base_url=live_server.url,
            locale="en-US",
            **options,
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(make_page: Callable[..., Page]) -> Page:
    return make_page()


def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Log in through the login form, as a person would; lands on the queue home."""
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


_AXE_RUN = """
async ({tags, disable}) => {
  const rules = Object.fromEntries(disable.map(id => [id, {enabled: false}]));
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, rules, resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => ({target: n.target.join(' '), summary: n.failureSummary})),
  }));
}
"""


@pytest.fixture(scope="session")
def axe() -> Callable[..., list[dict]]:
    """`axe(page, disable=())` → the page's critical and serious axe-core violations, each
    {"id", "impact", "help", "nodes": [{"target", "summary"}]}; [] when there are none."""
    source = AXE_JS.read_text(encoding="utf-8")

    def run(page: Page, *, disable: tuple[str, ...] = ()) -> list[dict]:
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            # Evaluated through the DevTools protocol, not as a <script> tag: the pages' CSP
            # (scripts only from our static files) rightly refuses inline scripts.
            page.evaluate(source)
        violations = page.evaluate(_AXE_RUN, {"tags": AXE_TAGS, "disable": list(disable)})
        return [v for v in violations if v["impact"] in ("critical", "serious")]

    return run

"""Parity draws every script with the fonts it ships, not the evaluator's.

A separate Chromium runs with fontconfig limited to DejaVu (the fonts of a bare Linux
machine): every character of the 59 UDHR texts of the demo, shown in a Parity page in its
own lang and dir, must draw as something other than the empty box a code point no font
has (U+E000, private use) draws. Without static/parity/fonts.css, CJK, Indic, Ethiopic,
Tibetan, Khmer… all come out as boxes and this test fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page

from annotation.demo_data import udhr_items
from annotation.languages import language_describe
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")

# Shows the texts in the page (its stylesheets and :lang() rules apply), waits for their
# faces, then draws each distinct character on a canvas in the font stack its element
# computes and compares the pixels with those of U+E000 in the same stack: equal pixels
# mean the character is drawn as the missing-glyph box.
_FIND_TOFU = """
async (texts) => {
  const main = document.querySelector('main');
  main.replaceChildren(...texts.map(t => {
    const el = document.createElement('div');
    Object.assign(el, {className: 'text', lang: t.lang, dir: t.dir, textContent: t.text});
    el.dataset.id = t.id;
    return el;
  }));
  const els = [...main.children];
  await Promise.all(els.map(el => document.fonts.load(`32px ${getComputedStyle(el).fontFamily}`, el.textContent)));
  await document.fonts.ready;
  const canvas = document.createElement('canvas');
  canvas.width = 96; canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (ch, family) => {
    ctx.clearRect(0, 0, 96, 64);
    ctx.font = `32px ${family}`;
    ctx.textBaseline = 'middle';
    ctx.fillText(ch, 40, 32);
    return ctx.getImageData(0, 0, 96, 64).data;
  };
  const same = (a, b) => a.every((v, i) => v === b[i]);
  const boxes = {};
  let checked = 0;
  for (const el of els) {
    const family = getComputedStyle(el).fontFamily;
    const box = draw('\\uE000', family);
    for (const ch of new Set(el.textContent)) {
      if (/[\\s\\p{Cf}]/u.test(ch)) continue;  // spaces, ZWJ/ZWNJ and direction marks draw nothing
      checked += 1;
      if (same(draw(ch, family), box)) (boxes[el.dataset.id] ||= []).push(ch);
    }
  }
  return {checked, boxes};
}
"""


@pytest.fixture(scope="module")
def dejavu_browser(browser: Browser, tmp_path_factory) -> Iterator[Browser]:
    """A second Chromium whose fontconfig knows only DejaVu, like a bare Linux machine."""
    if not DEJAVU.is_dir():
        pytest.fail(f"{DEJAVU} is missing: install fonts-dejavu-core")
    folder = tmp_path_factory.mktemp("fontconfig")
    config = folder / "fonts.conf"
    config.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        f"<fontconfig><dir>{DEJAVU}</dir><cachedir>{folder / 'cache'}</cachedir></fontconfig>\n",
        encoding="utf-8",
    )
    bare = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        env={**os.environ, "FONTCONFIG_FILE": str(config)},
    )
    yield bare
    bare.close()


@pytest.fixture
def dejavu_page(dejavu_browser: Browser, live_server) -> Iterator[Page]:
    context = dejavu_browser.new_context(viewport=DESKTOP, base_url=live_server.url, locale="en-US")
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def _udhr_texts() -> list[dict[str, str]]:
    return [
        {
            "id": line["external_id"],
            "lang": line["language"],
            "dir": language_describe(line["language"])[2],
            "text": line["response"],
        }
        for line in udhr_items()
    ]


class ShippedFontsBrowserTests:
    def test_it_draws_every_udhr_text_on_a_machine_with_only_dejavu(self, dejavu_page: Page):
        texts = _udhr_texts()
        assert len(texts) == 59
        dejavu_page.goto("/accounts/login/")
        result = dejavu_page.evaluate(_FIND_TOFU, texts)
        # One screen at a time, readable at full size (look at them).
        height = dejavu_page.evaluate("document.documentElement.scrollHeight")
        for n, top in enumerate(range(0, height, DESKTOP["height"]), start=1):
            dejavu_page.evaluate(f"window.scrollTo(0, {top})")
            screenshot(dejavu_page, f"fonts-udhr-dejavu-only-{n}", full_page=False)
        assert result["checked"] > 1900  # distinct characters per text, over all texts
        assert result["boxes"] == {}, f"drawn as empty boxes: {result['boxes']}"

    def test_it_draws_the_interface_in_every_offered_language(self, dejavu_page: Page, live_server):
        texts = []
        for code, _name in settings.LANGUAGES:
            dejavu_page.context.add_cookies(
                [{"name": settings.LANGUAGE_COOKIE_NAME, "value": code, "url": live_server.url}]
            )
            dejavu_page.goto("/accounts/login/")
            if code in ("fa", "bn", "ja", "zh-hans", "ru"):
                screenshot(dejavu_page, f"fonts-interface-{code}-dejavu-only", full_page=False)
            text = dejavu_page.evaluate("document.body.innerText")
            texts.append(
                {
                    "id": code,
                    "lang": code,
                    "dir": dejavu_page.evaluate("document.dir"),
                    "text": text,
                }
            )
        result = dejavu_page.evaluate(_FIND_TOFU, texts)
        assert result["boxes"] == {}, f"drawn as empty boxes: {result['boxes']}"

    def test_a_page_downloads_only_the_font_slices_it_draws(self, dejavu_page: Page, live_server):
        fetched: list[tuple[str, int]] = []
        dejavu_page.on(
            "requestfinished",
            lambda r: (
                fetched.append((r.url.rsplit("/", 1)[-1], r.sizes()["responseBodySize"]))
                if r.url.endswith(".woff2")
                else None
            ),
        )
        # The login page shows English, and the language menu names each language in its
        # own script (Arabic, Hebrew, Devanagari, Bengali, Cyrillic, Chinese, Japanese).
        dejavu_page.goto("/accounts/login/")
        dejavu_page.evaluate("document.fonts.ready.then(() => true)")
        english = [name for name, _ in fetched]
        assert any(name.startswith("noto-sans-latin-") for name in english), english
        unseen = (
            "noto-sans-ethiopic",
            "noto-serif-tibetan",
            "noto-sans-khmer",
            "noto-sans-thai",
            "noto-sans-kr-",
            "noto-sans-tamil",
            "noto-sans-myanmar",
        )
        assert not [name for name in english if name.startswith(unseen)], english
        cjk = [
            name
            for name in english
            if name.startswith(("noto-sans-sc-", "noto-sans-jp-", "noto-sans-tc-"))
        ]
        assert 0 < len(cjk) < 10, cjk  # a few of the ~420 CJK slices
        # A Japanese interface draws its Han with the Japanese face.
        fetched.clear()
        dejavu_page.context.add_cookies(
            [{"name": settings.LANGUAGE_COOKIE_NAME, "value": "ja", "url": live_server.url}]
        )
        dejavu_page.goto("/accounts/login/")
        dejavu_page.evaluate("document.fonts.ready.then(() => true)")
        japanese = [name for name, _ in fetched]
        assert any(name.startswith("noto-sans-jp-") for name in japanese), japanese
        assert not [
            name for name in japanese if name.startswith(("noto-sans-kr-", "noto-sans-tc-"))
        ], japanese
        print(
            f"English login page: {len(english)} font files; Japanese after it: {len(japanese)} more, "
            f"{sum(size for _, size in fetched):,} bytes"
        )

    def test_it_draws_han_in_each_cjk_language_s_own_forms(self, dejavu_page: Page):
        # 直, 骨 and 返 differ visibly between the Japanese, Korean, Simplified and Traditional
        # Chinese forms; a page that drew them all with one face would draw them alike.
        dejavu_page.goto("/accounts/login/")
        drawings = dejavu_page.evaluate(
            """async (langs) => {
              const out = {};
              for (const lang of langs) {
                const el = document.createElement('div');
                Object.assign(el, {lang, textContent: '直骨返'});
                document.querySelector('main').append(el);
                const family = getComputedStyle(el).fontFamily;
                await document.fonts.load(`48px ${family}`, '直骨返');
                const canvas = document.createElement('canvas');
                canvas.width = 160; canvas.height = 64;
                const ctx = canvas.getContext('2d');
                ctx.font = `48px ${family}`;
                ctx.textBaseline = 'middle';
                ctx.fillText('直骨返', 4, 32);
                out[lang] = canvas.toDataURL();
              }
              return out;
            }""",
            ["ja", "ko", "zh-Hans", "zh-Hant"],
        )
        same = [(a, b) for a in drawings for b in drawings if a < b and drawings[a] == drawings[b]]
        assert same == [], f"these languages draw Han characters with the same face: {same}"

"""Guideline Markdown → safe HTML.

markdown-it-py renders CommonMark (with tables and strikethrough; raw HTML allowed so a
lead can mark an example `<span lang="ar" dir="rtl">…</span>`), then nh3 (ammonia)
sanitises the result: only an allow-list of tags and attributes survives, `<script>` and
`<style>` are dropped with their content, event-handler attributes (`onerror=` …) go, and
links and images keep only http, https and mailto URLs — so `javascript:` never reaches
the page, however it was written.
"""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_URL_SCHEMES = {"http", "https", "mailto"}
_TAGS = set(nh3.ALLOWED_TAGS) - {"map", "area", "center", "strike", "acronym", "tt"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items() if tag in _TAGS},
    # So a lead can mark a quoted example in another script with its own language and direction.
    "*": {"lang", "dir", "title"},
}

_md = MarkdownIt("commonmark", {"html": True, "typographer": False}).enable(
    ["table", "strikethrough"]
)
# markdown-it would print a refused link as its literal source, `[x](javascript:…)`; letting
# every link through to nh3 leaves one sanitiser deciding, and the link text without a URL.
_md.validateLink = lambda url: True  # type: ignore[method-assign]  # markdown-it's documented hook


def markdown_render(text: str) -> SafeString:
    """Render Markdown to sanitised HTML that is safe to insert into a page."""
    raw = _md.render(text or "")
    clean = nh3.clean(
        raw,
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    # nh3's output is sanitised HTML: marking it safe is the point of this module.
    return mark_safe(clean)  # noqa: S308

from __future__ import annotations

from django.test import SimpleTestCase

from guidelines.markdown import markdown_render
from guidelines.services import guideline_publish
from tests.base import ParityTestCase

HOSTILE = """# Rating guide

<script>alert("body")</script>
Rate **fluency** first. <img src="x.png" onerror="alert('img')">
[a markdown link](javascript:alert('md')) and <a href="javascript:alert('html')" onclick="steal()">an HTML link</a>,
<a href="JaVaScRiPt:alert('case')">mixed case</a>, <a href="java&#x09;script:alert('tab')">entity</a>.
<iframe src="https://evil.example/"></iframe><style>body { display:none }</style>

An example: <span lang="ar" dir="rtl">مثال</span>, and [the style guide](https://example.org/style?a=1&b=2).
"""


class SanitisingTests(SimpleTestCase):
    def test_it_removes_scripts_event_handlers_and_javascript_urls(self):
        html = markdown_render(HOSTILE).lower()
        self.assertNotIn("<script", html)
        self.assertNotIn("alert(", html)
        self.assertNotIn("onerror", html)
        self.assertNotIn("onclick", html)
        self.assertNotIn("javascript:", html)
        self.assertNotIn("<iframe", html)
        self.assertNotIn("<style", html)

    def test_it_keeps_the_markdown_and_safe_markup(self):
        html = markdown_render(HOSTILE)
        self.assertIn("<h1>Rating guide</h1>", html)
        self.assertIn("<strong>fluency</strong>", html)
        self.assertIn('<span lang="ar" dir="rtl">مثال</span>', html)
        self.assertIn('href="https://example.org/style?a=1&amp;b=2"', html)
        # The refused links keep their text, without a URL.
        self.assertIn(">a markdown link</a>", html)
        self.assertIn(">an HTML link</a>", html)


class SanitisedPageTests(ParityTestCase):
    def test_the_guideline_page_and_panel_render_the_hostile_guideline_safely(self):
        guideline_publish(project=self.project, body=HOSTILE, actor=self.lead)
        self.client.force_login(self.alice)
        for url in ("/p/mt-rating/guideline/", "/p/mt-rating/guideline/panel/?language=de"):
            with self.subTest(url=url):
                response = self.client.get(url)
                self.assertEqual(response.status_code, 200)
                body = response.content.decode().lower()
                self.assertIn("<strong>fluency</strong>", body)
                self.assertNotIn("onerror", body)
                self.assertNotIn("javascript:", body)
                self.assertNotIn("alert(", body)

"""Issue 13: every refusal stays inside Parity — an expired session or lost cookies send an
htmx submit to the login page and back to the same card, 403/404/405/CSRF failures are
styled pages with the header and a way back, stale cards say why (409) and offer the fresh one."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from annotation.models import Assignment, AssignmentStatus, Judgment
from tests.annotation.test_evaluator_pages import HTMX, EvaluatorPagesTestCase, submit_url, work_url
from tests.factories import ItemFactory

LOGIN = "/accounts/login/"


class SessionExpiryTests(EvaluatorPagesTestCase):
    def test_it_sends_an_htmx_submit_without_a_session_to_log_in_and_back_to_the_work_page(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        self.client.logout()
        response = self.client.post(
            submit_url(assignment.pk),
            {"score": "4", "comment": "Gut"},
            HTTP_HX_CURRENT_URL="http://testserver" + work_url(self.project, "de"),
            **HTMX,
        )
        # Not the login form nested in the card, and not next=<a POST-only URL> (a 405 after login).
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"")
        self.assertEqual(
            response["HX-Redirect"], LOGIN + "?next=%2Fp%2Fmt-rating%2Fwork%2F%3Flanguage%3Dde"
        )
        self.assertFalse(Judgment.objects.exists())
        # Logging in there brings back the same card (the live lease).
        self.client.force_login(self.alice)
        card = self.client.get(work_url(self.project, "de"))
        self.assertContains(card, f'data-assignment="{assignment.pk}"')

    def test_it_never_trusts_a_current_url_of_another_site(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        self.client.logout()
        response = self.client.post(
            submit_url(assignment.pk),
            {"score": "4"},
            HTTP_HX_CURRENT_URL="https://evil.example/p/",
            **HTMX,
        )
        self.assertEqual(response["HX-Redirect"], LOGIN + "?next=%2F")

    def test_a_plain_form_post_without_a_session_returns_to_the_page_it_came_from(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        self.client.logout()
        response = self.client.post(
            submit_url(assignment.pk),
            {"score": "4"},
            HTTP_REFERER="http://testserver" + work_url(self.project, "de"),
        )
        self.assertEqual(response.status_code, 302)
        self.assertEqual(
            response["Location"], LOGIN + "?next=%2Fp%2Fmt-rating%2Fwork%2F%3Flanguage%3Dde"
        )


class CsrfFailureTests(EvaluatorPagesTestCase):
    def setUp(self) -> None:
        self.client = Client(enforce_csrf_checks=True)

    def test_an_htmx_submit_with_all_cookies_gone_is_sent_to_log_in_and_back(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        self.client.cookies.clear()
        response = self.client.post(
            submit_url(assignment.pk),
            {"score": "4"},
            HTTP_HX_CURRENT_URL="http://testserver" + work_url(self.project, "de"),
            HTTP_X_CSRFTOKEN="stale-token-from-the-page",
            **HTMX,
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response["HX-Redirect"], LOGIN + "?next=%2Fp%2Fmt-rating%2Fwork%2F%3Flanguage%3Dde"
        )
        self.assertEqual(Assignment.objects.get(pk=assignment.pk).status, AssignmentStatus.LEASED)

    def test_an_htmx_submit_with_only_the_csrf_cookie_gone_reloads_the_page(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        del self.client.cookies["csrftoken"]
        response = self.client.post(submit_url(assignment.pk), {"score": "4"}, **HTMX)
        self.assertEqual(response["HX-Refresh"], "true")
        self.assertFalse(Judgment.objects.exists())

    def test_a_plain_form_gets_a_styled_page_with_the_header_and_the_way_back(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        self.client.cookies.clear()
        response = self.client.post(
            submit_url(assignment.pk),
            {"score": "4"},
            HTTP_REFERER="http://testserver" + work_url(self.project, "de"),
        )
        self.assertContains(response, "The form expired", status_code=403)
        self.assertContains(response, 'class="topbar"', status_code=403)
        self.assertContains(response, 'href="/p/mt-rating/work/?language=de"', status_code=403)


class ErrorPageTests(EvaluatorPagesTestCase):
    def test_an_evaluator_on_a_lead_page_gets_the_styled_403_in_the_interface_language(self):
        self.client.force_login(self.alice)
        response = self.client.get(reverse("annotation:lead_dashboard", args=[self.project.slug]))
        self.assertEqual(response.status_code, 403)
        self.assertContains(response, 'class="topbar"', status_code=403)
        self.assertContains(response, "Back to your queues", status_code=403)
        german = self.client.get(
            reverse("annotation:lead_dashboard", args=[self.project.slug]),
            HTTP_ACCEPT_LANGUAGE="de",
        )
        self.assertContains(german, '<html lang="de"', status_code=403)
        self.assertContains(german, "Zurück zu Ihren Warteschlangen", status_code=403)

    def test_an_unknown_page_is_the_styled_404(self):
        self.client.force_login(self.alice)
        response = self.client.get("/no/such/page/")
        self.assertContains(response, "Page not found", status_code=404)
        self.assertContains(response, 'class="topbar"', status_code=404)

    def test_a_get_on_a_post_only_address_is_the_styled_405(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        response = self.client.get(submit_url(assignment.pk))
        self.assertEqual(response.status_code, 405)
        self.assertEqual(response["Allow"], "POST")
        self.assertContains(response, 'class="topbar"', status_code=405)
        self.assertContains(response, "Back to your queues", status_code=405)

    def test_the_api_keeps_its_json_errors(self):
        response = self.client.get("/api/v1/no-such-thing/")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response["Content-Type"].split(";")[0], "application/json")


class StaleCardTests(EvaluatorPagesTestCase):
    def test_the_work_page_is_never_served_from_the_browser_cache(self):
        ItemFactory(project=self.project, language=self.de)
        self.claim(self.alice, self.project, "de")
        response = self.client.get(work_url(self.project, "de"))
        self.assertIn("no-store", response["Cache-Control"])

    def test_a_card_skipped_in_another_tab_is_a_conflict_with_the_way_on(self):
        ItemFactory.create_batch(2, project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        self.client.post(
            reverse("annotation:assignment_skip", args=[assignment.pk]),
            {"reason": "cannot_judge"},
            **HTMX,
        )
        response = self.client.post(
            submit_url(assignment.pk), {"score": "4", "language": "de"}, **HTMX
        )
        self.assertContains(response, "You skipped this item.", status_code=409)
        self.assertContains(response, "Next item", status_code=409)
        self.assertContains(response, 'id="card-messages"', status_code=409)

    def test_after_the_last_item_it_says_saved_without_promising_a_next_one(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        response = self.client.post(
            submit_url(assignment.pk), {"score": "4", "language": "de"}, **HTMX
        )
        self.assertContains(response, "Saved.")
        self.assertNotContains(response, "Here is the next item")
        self.assertContains(response, "Nothing is waiting for you in")

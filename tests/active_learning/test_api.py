from __future__ import annotations

import json
from unittest import mock

from active_learning.models import RoundStatus, SelectionRound
from active_learning.round_runs import round_run_queued
from active_learning.rounds import round_execute, round_request_clean
from annotation.models import AuditEvent, Item, ItemStatus
from annotation.tokens import api_token_create
from tests.active_learning.data import ARABIC, GERMAN, pool_items
from tests.base import ParityTestCase
from tests.factories import ProjectFactory


class RoundsApiTests(ParityTestCase):
    def setUp(self):
        pool_items(self.project, self.de, GERMAN, prefix="de")
        pool_items(self.project, self.ar, ARABIC, prefix="ar")
        self.url = f"/api/v1/projects/{self.project.slug}/al-rounds/"

    def post(self, body, *, token=None, scope="import"):
        if token is None:
            token = api_token_create(project=self.project, scope=scope)[1]
        return self.client.post(
            self.url,
            data=json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )

    def assertErrors(self, response, status, contains, field=None):
        self.assertEqual(response.status_code, status, response.content)
        errors = response.json()["errors"]
        self.assertTrue(any(contains in e["message"] for e in errors), errors)
        if field:
            self.assertIn(field, [e.get("field") for e in errors])
        self.assertEqual(SelectionRound.objects.count(), 0)
        self.assertFalse(Item.objects.filter(status=ItemStatus.QUEUED).exists())

    def test_it_runs_a_round_and_answers_with_the_allocation_and_selected_ids(self):
        response = self.post({"budget": 10, "strategy": "parity", "seed": 3})
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(body["status"], RoundStatus.DONE)
        self.assertEqual(sum(row["total"] for row in body["allocation"].values()), 10)
        self.assertEqual(len(body["selected_ids"]), 10)
        self.assertEqual(
            set(body["selected_ids"]),
            set(Item.objects.filter(status=ItemStatus.QUEUED).values_list("pk", flat=True)),
        )
        first = body["selected"][0]
        self.assertEqual(
            set(first),
            {"id", "external_id", "language", "selection", "rank", "score", "components"},
        )
        round_ = SelectionRound.objects.get()
        self.assertIsNotNone(round_.token_id)
        self.assertTrue(
            AuditEvent.objects.filter(verb="al_round.run", token_id=round_.token_id).exists()
        )
        detail = self.client.get(
            body["url"],
            HTTP_AUTHORIZATION=f"Bearer {api_token_create(project=self.project, scope='read')[1]}",
        )
        self.assertEqual(detail.status_code, 200)
        self.assertEqual(detail.json()["selected_ids"], body["selected_ids"])

    def test_it_hands_the_round_to_a_worker_when_a_broker_is_configured(self):
        token = api_token_create(project=self.project, scope="import")[1]
        with (
            self.settings(CELERY_BROKER_URL="redis://127.0.0.1:6379/15"),
            mock.patch("active_learning.tasks.round_run.apply_async") as send,
            self.captureOnCommitCallbacks(execute=True),
        ):
            response = self.post({"budget": 6, "strategy": "uniform"}, token=token)
        self.assertEqual(response.status_code, 202, response.content)
        body = response.json()
        self.assertEqual(body["status"], RoundStatus.QUEUED)
        self.assertNotIn("selected_ids", body)  # nothing is picked inside the request
        self.assertFalse(Item.objects.filter(status=ItemStatus.QUEUED).exists())
        # Sent without publish retries: a broker that is down must not hold the request.
        send.assert_called_once_with(args=(body["id"],), task_id=None, retry=False)
        # What the worker then does; the round's URL shows the result.
        round_run_queued(round_id=body["id"])
        detail = self.client.get(body["url"], HTTP_AUTHORIZATION=f"Bearer {token}")
        self.assertEqual(detail.json()["status"], RoundStatus.DONE)
        self.assertEqual(len(detail.json()["selected_ids"]), 6)

    def test_it_previews_without_recording(self):
        response = self.post({"budget": 10, "strategy": "uniform", "preview": True})
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.json()["preview"])
        self.assertEqual(sum(row["total"] for row in response.json()["allocation"].values()), 10)
        self.assertEqual(SelectionRound.objects.count(), 0)

    def test_it_lets_a_lead_session_run_a_round(self):
        self.client.force_login(self.lead)
        response = self.client.post(
            self.url, data={"budget": 4, "strategy": "uniform"}, content_type="application/json"
        )
        self.assertEqual(response.status_code, 201)
        self.assertEqual(SelectionRound.objects.get().created_by, self.lead)

    def test_it_refuses_bad_input_in_the_error_shape(self):
        self.assertErrors(
            self.post({"budget": 0}), 400, "budget must be at least 1", field="budget"
        )
        self.assertErrors(self.post({"budget": 999}), 400, "above the pool", field="budget")
        self.assertErrors(self.post({"budget": "ten"}), 400, "whole number", field="budget")
        self.assertErrors(
            self.post({"budget": 5, "strategy": "greedy"}),
            400,
            "unknown strategy",
            field="strategy",
        )
        self.assertErrors(self.post({"strategy": "uniform"}), 400, "is required", field="budget")
        self.assertErrors(self.post({"budget": 5, "colour": 1}), 400, "not a field", field="colour")
        self.assertErrors(self.post([1, 2]), 400, "JSON object")
        self.assertErrors(
            self.post(
                {"budget": 5, "parameters": {"features": "encoder", "encoder_path": "/nowhere"}}
            ),
            400,
            "does not exist",
            field="encoder_path",
        )

    def test_it_refuses_callers_without_the_right(self):
        self.assertErrors(self.post({"budget": 5}, scope="read"), 403, "scope")
        self.client.force_login(self.alice)  # an evaluator of the project, not a lead
        response = self.client.post(self.url, data={"budget": 5}, content_type="application/json")
        self.assertErrors(response, 403, "lead")
        self.client.force_login(self.outsider)
        response = self.client.post(self.url, data={"budget": 5}, content_type="application/json")
        self.assertErrors(response, 404, "No project")
        self.client.logout()
        self.assertErrors(
            self.client.post(self.url, data={"budget": 5}, content_type="application/json"),
            401,
            "credentials",
        )

    def test_it_answers_404_for_an_unknown_round(self):
        token = api_token_create(project=self.project, scope="read")[1]
        response = self.client.get(f"{self.url}12345/", HTTP_AUTHORIZATION=f"Bearer {token}")
        self.assertEqual(response.status_code, 404)
        self.assertIn("No round 12345", response.json()["errors"][0]["message"])


class RoundListApiTests(ParityTestCase):
    def setUp(self):
        pool_items(self.project, self.de, GERMAN, prefix="de")
        pool_items(self.project, self.ar, ARABIC, prefix="ar")
        self.url = f"/api/v1/projects/{self.project.slug}/al/rounds/"

    def get(self, query="", *, scope="read"):
        token = api_token_create(project=self.project, scope=scope)[1]
        return self.client.get(self.url + query, HTTP_AUTHORIZATION=f"Bearer {token}")

    def test_it_lists_the_projects_rounds_newest_first(self):
        first = round_execute(
            request=round_request_clean(project=self.project, budget=4, strategy="uniform")
        )
        second = round_execute(
            request=round_request_clean(project=self.project, budget=6, strategy="parity", seed=2)
        )
        other = ProjectFactory(slug="elsewhere", languages=["de"])
        pool_items(other, self.de, GERMAN[:6], prefix="x")
        round_execute(
            request=round_request_clean(
                project=other, budget=2, strategy="uniform", parameters={"evaluator_capacity": None}
            )
        )
        response = self.get()
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response["Content-Type"], "application/json")
        body = response.json()
        self.assertEqual(body["count"], 2)
        self.assertEqual([r["id"] for r in body["rounds"]], [second.pk, first.pk])
        newest = body["rounds"][0]
        self.assertEqual(
            (newest["strategy"], newest["budget"], newest["seed"], newest["status"]),
            ("parity", 6, 2, "done"),
        )
        self.assertEqual(sum(a["total"] for a in newest["allocation"].values()), 6)
        self.assertNotIn("selected", newest)  # the round's own URL has those
        self.assertTrue(newest["url"].endswith(f"/al-rounds/{second.pk}/"))
        self.assertEqual([r["id"] for r in self.get("?limit=1").json()["rounds"]], [second.pk])
        self.assertEqual(self.get("?status=failed").json()["rounds"], [])

    def test_it_lets_a_lead_session_list_rounds(self):
        round_execute(
            request=round_request_clean(project=self.project, budget=4, strategy="uniform")
        )
        self.client.force_login(self.lead)
        self.assertEqual(self.client.get(self.url).json()["count"], 1)

    def test_it_refuses_callers_without_the_right_and_bad_filters(self):
        for response, status in (
            (self.get(scope="import"), 403),
            (self.get("?limit=0"), 400),
            (self.get("?limit=ten"), 400),
            (self.get("?status=lost"), 400),
        ):
            self.assertEqual(response.status_code, status, response.content)
            self.assertTrue(response.json()["errors"])
        self.client.force_login(self.alice)  # an evaluator, not a lead
        self.assertEqual(self.client.get(self.url).status_code, 403)
        self.client.logout()
        self.assertEqual(self.client.get(self.url).status_code, 401)

    def test_the_openapi_schema_lists_it(self):
        schema = self.client.get("/api/v1/schema/?format=json").json()
        self.assertIn("get", schema["paths"]["/api/v1/projects/{slug}/al/rounds/"])

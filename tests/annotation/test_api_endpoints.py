from __future__ import annotations

import re

from django.contrib.auth.models import Permission
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import override_settings

from annotation.models import Assignment, AuditEvent, Item, ItemSource, Judgment, Project, TaskType
from annotation.queue import item_claim_next
from annotation.tokens import api_token_create
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.factories import ProjectFactory, UserFactory


def rating_line(n: int, language: str = "de", **extra) -> dict:
    return {
        "external_id": f"r-{n}",
        "language": language,
        "prompt": f"Frage {n}",
        "response": f"Antwort Nummer {n}, ausführlich erklärt.",
        "model": "m1",
        **extra,
    }


class ProjectEndpointTests(ApiTestCase):
    def test_a_session_lists_the_projects_it_works_or_leads(self):
        ProjectFactory(slug="elsewhere")
        self.client.force_login(self.alice)
        response = self.client.get("/api/v1/projects/")
        self.assertEqual([p["slug"] for p in response.json()], ["mt-rating"])
        self.assertEqual(sorted(response.json()[0]["languages"]), ["ar", "de", "zh"])

    def test_a_lead_creates_a_project_and_leads_it(self):
        self.client.force_login(self.lead)
        body = {"slug": "chat-sw", "task_type": "pairwise", "languages": ["sw", "de"], "overlap": 2}
        response = self.call("post", "/api/v1/projects/", body=body)
        self.assertEqual(response.status_code, 201, response.content)
        project = Project.objects.get(slug="chat-sw")
        self.assertEqual(project.overlap, 2)
        self.assertTrue(project.leads.filter(pk=self.lead.pk).exists())
        self.assertErrors(self.call("post", "/api/v1/projects/", body=body), 409, field="slug")

    def test_a_user_with_the_add_project_permission_may_create(self):
        user = UserFactory(username="manager")
        user.user_permissions.add(Permission.objects.get(codename="add_project"))
        self.client.force_login(user)
        response = self.call(
            "post",
            "/api/v1/projects/",
            body={"slug": "p2", "task_type": "rating", "languages": ["de"]},
        )
        self.assertEqual(response.status_code, 201, response.content)

    def test_bad_project_input_is_refused_with_the_field(self):
        self.client.force_login(self.lead)
        self.assertErrors(
            self.call(
                "post",
                "/api/v1/projects/",
                body={"slug": "x", "task_type": "poll", "languages": ["de"]},
            ),
            400,
            field="task_type",
        )
        self.assertErrors(
            self.call(
                "post",
                "/api/v1/projects/",
                body={"slug": "x", "task_type": "rating", "languages": ["??"]},
            ),
            400,
            contains="not a valid BCP 47",
        )
        self.assertErrors(
            self.call(
                "post",
                "/api/v1/projects/",
                body={
                    "slug": "x",
                    "task_type": "rating",
                    "languages": ["de"],
                    "schema": {"scale": {"min": 5, "max": 1}},
                },
            ),
            400,
            contains="below",
        )
        self.assertFalse(Project.objects.filter(slug="x").exists())

    def test_evaluators_and_tokens_cannot_create_projects(self):
        self.client.force_login(self.alice)
        body = {"slug": "nope", "task_type": "rating", "languages": ["de"]}
        self.assertErrors(self.call("post", "/api/v1/projects/", body=body), 403, contains="leads")
        self.client.logout()
        self.assertErrors(
            self.call("post", "/api/v1/projects/", body=body, token=self.tokens["import"]),
            403,
            contains="needs a token of the scope 'projects'",
        )
        self.assertFalse(Project.objects.filter(slug="nope").exists())


class ItemListTests(ApiTestCase):
    def test_it_lists_with_filters_and_cursor_pagination(self):
        import_items(
            self.project, [rating_line(n) for n in range(5)] + [rating_line(9, language="ar")]
        )
        Item.objects.filter(external_id="r-2").update(
            language_flagged=True, language_check={"flags": ["wrong_language"]}
        )
        token = self.tokens["read"]
        first = self.call("get", self.url("items/?language=de&page_size=2"), token=token).json()
        self.assertEqual([i["external_id"] for i in first["results"]], ["r-0", "r-1"])
        second = self.call("get", first["next"], token=token).json()
        self.assertEqual([i["external_id"] for i in second["results"]], ["r-2", "r-3"])
        flagged = self.call("get", self.url("items/?flagged=true"), token=token).json()
        self.assertEqual([i["external_id"] for i in flagged["results"]], ["r-2"])
        self.assertEqual(flagged["results"][0]["language_check"], {"flags": ["wrong_language"]})
        arabic = self.call("get", self.url("items/?language=ar&status=queued"), token=token).json()
        self.assertEqual([i["external_id"] for i in arabic["results"]], ["r-9"])

    def test_bad_filters_are_refused(self):
        token = self.tokens["read"]
        self.assertErrors(
            self.call("get", self.url("items/?status=lost"), token=token), 400, field="status"
        )
        self.assertErrors(
            self.call("get", self.url("items/?flagged=perhaps"), token=token), 400, field="flagged"
        )
        self.assertErrors(self.call("get", self.url("items/?cursor=garbage"), token=token), 404)


class EvaluatorEndpointTests(ApiTestCase):
    def test_an_evaluator_claims_and_submits(self):
        import_items(self.project, [rating_line(1), rating_line(2, language="ar")])
        self.client.force_login(self.alice)
        claimed = self.call("post", self.url("queue/claim/"), body={})
        self.assertEqual(claimed.status_code, 200, claimed.content)
        body = claimed.json()
        self.assertEqual(body["item"]["external_id"], "r-1")
        self.assertEqual((body["item"]["language"], body["item"]["direction"]), ("de", "ltr"))
        self.assertNotIn("model", body["item"])
        submitted = self.call(
            "post",
            f"/api/v1/assignments/{body['id']}/judgment/",
            body={"value": {"score": 4}, "seconds": 12},
        )
        self.assertEqual(submitted.status_code, 201, submitted.content)
        self.assertEqual(submitted.json()["value"], {"score": 4})
        self.assertEqual(Judgment.objects.get().evaluator, self.alice)
        # Nothing else waits in German.
        self.assertEqual(self.call("post", self.url("queue/claim/"), body={}).status_code, 204)

    def test_an_unqualified_evaluator_gets_403_with_the_reason(self):
        import_items(self.project, [rating_line(1)])
        self.client.force_login(self.outsider)
        self.assertErrors(
            self.call("post", self.url("queue/claim/"), body={}), 403, contains="not qualified"
        )
        self.client.force_login(self.alice)
        self.assertErrors(
            self.call("post", self.url("queue/claim/"), body={"language": "ar"}),
            403,
            contains="not qualified for Arabic",
        )
        self.assertErrors(
            self.call("post", self.url("queue/claim/"), body={"language": "sw"}),
            400,
            field="language",
        )
        self.assertFalse(Assignment.objects.exists())

    def test_a_token_cannot_claim(self):
        self.assertErrors(
            self.call("post", self.url("queue/claim/"), body={}, token=self.tokens["import"]), 403
        )

    def test_a_bad_judgment_is_refused_with_its_field(self):
        import_items(self.project, [rating_line(1)])
        assignment = item_claim_next(evaluator=self.alice, project=self.project)
        self.client.force_login(self.alice)
        url = f"/api/v1/assignments/{assignment.pk}/judgment/"
        self.assertErrors(
            self.call("post", url, body={"value": {"score": 9}}),
            400,
            field="value.score",
            contains="outside the scale",
        )
        self.assertErrors(self.call("post", url, body={}), 400, field="value")
        self.client.force_login(self.bashir)
        self.assertErrors(
            self.call("post", url, body={"value": {"score": 3}}), 403, contains="not yours"
        )
        self.assertErrors(
            self.call("post", "/api/v1/assignments/999999/judgment/", body={"value": {"score": 3}}),
            404,
        )
        # Past what a primary key holds (SQLite cannot even bind it): no such assignment either.
        self.assertErrors(
            self.call(
                "post", f"/api/v1/assignments/{2**63}/judgment/", body={"value": {"score": 3}}
            ),
            404,
        )
        self.assertFalse(Judgment.objects.exists())


class ReportEndpointTests(ApiTestCase):
    def test_agreement_and_parity_answer_with_their_figures(self):
        import_items(self.project, [rating_line(n) for n in range(4)])
        import_judgments(
            self.project,
            [
                {
                    "item_external_id": f"r-{n}",
                    "rater": f"r{k}",
                    "value": {"score": 1 + (n + k) % 2 * 3},
                }
                for n in range(4)
                for k in range(3)
            ],
        )
        agreement = self.call(
            "get", self.url("agreement/?resamples=50&by=language"), token=self.tokens["read"]
        )
        self.assertEqual(agreement.status_code, 200, agreement.content)
        body = agreement.json()
        self.assertEqual(body["units"], 4)
        self.assertEqual(body["judgments"], 12)
        self.assertEqual([g["key"] for g in body["groups"]], ["de"])
        self.assertErrors(
            self.call("get", self.url("agreement/?by=shoe_size"), token=self.tokens["read"]), 400
        )
        self.assertErrors(
            self.call("get", self.url("agreement/?level=cosmic"), token=self.tokens["read"]),
            400,
            field="level",
        )
        parity = self.call("get", self.url("parity/"), token=self.tokens["read"])
        self.assertEqual(parity.status_code, 200, parity.content)
        self.assertIn("de", [row.get("language") for row in parity.json()["languages"]])


class UserReportTests(ApiTestCase):
    REPORT = {
        "language": "ar",
        "conversation": [
            {"role": "user", "content": "ما هي عاصمة كينيا؟"},
            {"role": "assistant", "content": "عاصمة كينيا هي كمبالا."},
        ],
        "what_went_wrong": "Wrong capital: it is Nairobi.",
        "model": "chat-v2",
        "external_id": "fb-77",
    }

    def test_a_report_becomes_an_item_routed_to_native_speakers(self):
        response = self.call(
            "post", self.url("reports/"), body=self.REPORT, token=self.tokens["import"]
        )
        self.assertEqual(response.status_code, 201, response.content)
        item = Item.objects.get(pk=response.json()["item_id"])
        self.assertEqual(item.source, ItemSource.USER_REPORT)
        self.assertEqual(item.response, "عاصمة كينيا هي كمبالا.")
        self.assertIn("ما هي عاصمة كينيا؟", item.prompt)
        self.assertEqual(
            item.metadata["report"]["what_went_wrong"], "Wrong capital: it is Nairobi."
        )
        self.assertEqual(item.metadata["conversation"][0]["role"], "user")
        self.assertTrue(
            AuditEvent.objects.filter(verb="items.import", token__scope="import").exists()
        )
        # Routed like any item: the Arabic evaluator gets it, the German one does not.
        self.assertIsNone(item_claim_next(evaluator=self.alice, project=self.project))
        self.assertEqual(item_claim_next(evaluator=self.bashir, project=self.project).item, item)
        # The same report again is a no-op.
        again = self.call(
            "post", self.url("reports/"), body=self.REPORT, token=self.tokens["import"]
        )
        self.assertEqual((again.status_code, again.json()["created"]), (200, False))

    def test_reports_appear_in_the_lead_triage_list(self):
        self.call("post", self.url("reports/"), body=self.REPORT, token=self.tokens["import"])
        import_items(self.project, [rating_line(1)])
        self.client.force_login(self.lead)
        page = self.client.get(f"/p/{self.project.slug}/reports/")
        self.assertEqual(page.status_code, 200)
        html = page.content.decode()
        self.assertIn("Wrong capital: it is Nairobi.", html)
        self.assertRegex(html, r'lang="ar" dir="rtl">عاصمة كينيا')
        self.assertNotIn("Antwort Nummer 1", html)
        self.assertNotIn(
            "Nairobi",
            self.client.get(f"/p/{self.project.slug}/reports/?language=de").content.decode(),
        )
        self.client.force_login(self.alice)
        self.assertEqual(self.client.get(f"/p/{self.project.slug}/reports/").status_code, 403)

    def test_bad_reports_are_refused(self):
        token = self.tokens["import"]
        no_answer = {**self.REPORT, "conversation": [{"role": "user", "content": "hi"}]}
        self.assertErrors(
            self.call("post", self.url("reports/"), body=no_answer, token=token),
            400,
            field="conversation",
        )
        self.assertErrors(
            self.call(
                "post", self.url("reports/"), body={**self.REPORT, "language": "sw"}, token=token
            ),
            400,
            field="language",
            contains="not enabled",
        )
        self.assertErrors(
            self.call(
                "post",
                self.url("reports/"),
                body={**self.REPORT, "what_went_wrong": "a\x00b"},
                token=token,
            ),
            400,
            field="what_went_wrong",
        )
        pairwise = ProjectFactory(slug="pairs", task_type=TaskType.PAIRWISE, languages=["ar"])
        raw = api_token_create(project=pairwise, scope="import")[1]
        self.assertErrors(
            self.call("post", self.url("reports/", pairwise), body=self.REPORT, token=raw),
            400,
            contains="pairwise",
        )
        self.assertFalse(Item.objects.exists())


class DatacardTests(ApiTestCase):
    def test_it_describes_languages_sources_and_licences_in_json_and_markdown(self):
        import_items(
            self.project,
            [
                rating_line(n, metadata={"dataset": "MLQE-PE", "licence": "CC0-1.0"})
                for n in range(3)
            ]
            + [rating_line(7, language="ar")],
        )
        import_judgments(
            self.project,
            [
                {"item_external_id": f"r-{n}", "rater": f"r{k}", "value": {"score": 4}}
                for n in range(3)
                for k in range(3)
            ],
        )
        card = self.call("get", self.url("datacard/"), token=self.tokens["read"]).json()
        german = next(lang for lang in card["languages"] if lang["tag"] == "de")
        self.assertEqual(
            (german["items"], german["judgments"], german["external_raters"]), (3, 9, 3)
        )
        self.assertIn(
            {"source": "import", "dataset": "MLQE-PE", "licence": "CC0-1.0", "items": 3},
            card["sources"],
        )
        self.assertEqual(card["guideline_versions"], [{"version": None, "judgments": 9}])
        for md in (
            self.call("get", self.url("datacard/?format=md"), token=self.tokens["read"]),
            self.call(
                "get", self.url("datacard/"), token=self.tokens["read"], HTTP_ACCEPT="text/markdown"
            ),
        ):
            self.assertEqual(md.status_code, 200)
            self.assertTrue(md["Content-Type"].startswith("text/markdown"))
            text = md.content.decode()
            self.assertIn("# Data card: Mt Rating", text)
            self.assertRegex(text, r"\| MLQE-PE \| CC0-1.0 \| 3 \|")
            # Every export shape's columns are listed, the optional ones with the option that adds them.
            self.assertIn("- Pair columns (shape=pairs): `prompt`, `chosen`, `rejected`,", text)
            self.assertIn(
                "- Unpaired columns (shape=unpaired, rating projects): `prompt`, `completion`, `label`,",
                text,
            )
            self.assertIn("- With margin=scaled (pairs): `margin`", text)
            self.assertIn("- With signals=1 (unpaired): `reward`, `mean_logprob`", text)
            self.assertIn("- Retraction columns (incremental pulls): `item_id`", text)
        self.assertErrors(
            self.call("get", self.url("datacard/?format=pdf"), token=self.tokens["read"]),
            400,
            field="format",
        )


class ErrorShapeTests(ApiTestCase):
    def test_unknown_paths_and_methods_answer_in_the_error_shape(self):
        self.assertErrors(self.client.get("/api/v1/nothing/here/"), 404, contains="No API endpoint")
        self.assertErrors(
            self.call("get", "/api/v1/projects/nope/items/", token=self.tokens["read"]), 404
        )
        self.assertErrors(self.call("delete", self.url("items/"), token=self.tokens["import"]), 405)
        self.assertErrors(
            self.call(
                "get", self.url("datacard/"), token=self.tokens["read"], HTTP_ACCEPT="image/png"
            ),
            406,
        )
        self.assertErrors(
            self.call("post", self.url("reports/"), body="{not json", token=self.tokens["import"]),
            400,
            contains="JSON parse error",
        )

    @override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
    def test_an_oversized_json_body_is_413(self):
        body = {**UserReportTests.REPORT, "what_went_wrong": "x" * 2000}
        self.assertErrors(
            self.call("post", self.url("reports/"), body=body, token=self.tokens["import"]), 413
        )
        self.assertFalse(Item.objects.exists())

    def test_errors_are_json_even_where_success_is_parquet(self):
        response = self.call(
            "get",
            self.url("export/preferences/?format=parquet&min_agreement=7"),
            token=self.tokens["export"],
        )
        self.assertErrors(response, 400, field="min_agreement")

    def test_a_plain_page_404_stays_html(self):
        response = self.client.get("/no/such/page/")
        self.assertEqual(response.status_code, 404)
        self.assertFalse(response["Content-Type"].startswith("application/json"))


class DocsTests(ApiTestCase):
    def test_the_schema_is_openapi_3_and_lists_every_endpoint(self):
        response = self.client.get("/api/v1/schema/?format=json")
        self.assertEqual(response.status_code, 200)
        schema = response.json()
        self.assertTrue(schema["openapi"].startswith("3."))
        for path in (
            "/api/v1/projects/",
            "/api/v1/projects/{slug}/items/",
            "/api/v1/projects/{slug}/judgments/",
            "/api/v1/projects/{slug}/queue/claim/",
            "/api/v1/assignments/{assignment_id}/judgment/",
            "/api/v1/projects/{slug}/agreement/",
            "/api/v1/projects/{slug}/parity/",
            "/api/v1/projects/{slug}/export/preferences/",
            "/api/v1/projects/{slug}/export/judgments/",
            "/api/v1/projects/{slug}/reports/",
            "/api/v1/projects/{slug}/datacard/",
        ):
            self.assertIn(path, schema["paths"])
        self.assertIn("bearerToken", schema["components"]["securitySchemes"])
        body = schema["paths"]["/api/v1/projects/{slug}/items/"]["post"]["requestBody"]["content"]
        self.assertEqual(
            set(body), {"application/json", "application/x-ndjson", "application/jsonl"}
        )

    def test_the_docs_pages_load_their_assets_locally(self):
        for url in ("/api/v1/docs/", "/api/v1/redoc/"):
            html = self.client.get(url).content.decode()
            sources = re.findall(r'(?:src|href)="([^"]+)"', html)
            self.assertTrue(sources, url)
            for source in sources:
                self.assertFalse(
                    source.startswith(("http:", "https:", "//")), f"{url} loads {source}"
                )
            self.assertNotIn("cdn", html.lower())
            scripts = [
                source
                for source in sources
                if source.startswith("/static/") and source.endswith(".js")
            ]
            self.assertTrue(scripts, url)
            for source in scripts:
                asset = self.client.get(source)
                self.assertEqual(asset.status_code, 200, source)
                # Closing a file response sends request_finished, whose handler would close the
                # test's connection (inside the test's transaction) as the client itself avoids.
                request_finished.disconnect(close_old_connections)
                try:
                    asset.close()
                finally:
                    request_finished.connect(close_old_connections)

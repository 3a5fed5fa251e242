from __future__ import annotations

import io
import json
from unittest import mock

from django.test import override_settings

from annotation.api import parsers
from annotation.api.errors import PayloadTooLarge
from annotation.api.parsers import json_array_records, json_lines_records
from annotation.imports import LineError
from annotation.models import AuditEvent, Item, ItemSource
from annotation.queue import item_claim_next, judgment_submit
from tests.annotation.api_support import ApiTestCase, ndjson


def line(n: int, **overrides) -> dict:
    return {
        "external_id": f"ext-{n}",
        "language": "de",
        "prompt": f"Satz {n}",
        "response": f"Dies ist die Antwort Nummer {n}.",
        "model": "m1",
        **overrides,
    }


class ItemImportTests(ApiTestCase):
    def post(self, body, content_type="application/x-ndjson", token=None):
        return self.call(
            "post",
            self.url("items/"),
            token=token or self.tokens["import"],
            body=body,
            content_type=content_type,
        )

    def test_it_imports_json_lines_and_counts(self):
        response = self.post(ndjson([line(n) for n in range(5)]))
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["created"], 5)
        self.assertEqual(response.json()["unchanged"], 0)
        self.assertEqual(Item.objects.filter(project=self.project).count(), 5)

    def test_it_imports_a_json_array(self):
        response = self.post(
            json.dumps([line(n) for n in range(3)]), content_type="application/json"
        )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["created"], 3)

    def test_one_bad_line_among_many_stores_nothing_and_every_bad_line_is_listed(self):
        lines = [line(n) for n in range(50)]
        lines[11] = line(11, response="")
        lines[36] = line(36, language="fr")
        response = self.post(ndjson(lines))
        errors = self.assertErrors(response, 400)
        self.assertEqual(
            [(e["line"], e["field"]) for e in errors], [(12, "response"), (37, "language")]
        )
        self.assertFalse(Item.objects.filter(project=self.project).exists())

    def test_a_bad_element_of_a_json_array_is_reported_by_position(self):
        lines = [line(n) for n in range(4)]
        lines[2]["token_entropy"] = "high"
        errors = self.assertErrors(
            self.post(json.dumps(lines), content_type="application/json"), 400
        )
        self.assertEqual(errors[0]["line"], 3)
        self.assertEqual(errors[0]["field"], "token_entropy")

    def test_it_is_idempotent_by_external_id(self):
        body = ndjson([line(n) for n in range(4)])
        self.post(body)
        again = self.post(body)
        self.assertEqual(
            again.json(),
            {
                "created": 0,
                "unchanged": 4,
                "updated": 0,
                "language_check": again.json()["language_check"],
            },
        )
        self.assertEqual(Item.objects.filter(project=self.project).count(), 4)

    def test_changed_content_updates_an_unjudged_item(self):
        self.post(ndjson([line(1)]))
        response = self.post(ndjson([line(1, response="Eine neue Antwort, ganz anders.")]))
        self.assertEqual(response.json()["updated"], 1)
        self.assertEqual(
            Item.objects.get(external_id="ext-1").response, "Eine neue Antwort, ganz anders."
        )

    def test_changed_content_of_a_judged_item_is_a_conflict(self):
        self.post(ndjson([line(1)]))
        assignment = item_claim_next(evaluator=self.alice, project=self.project)
        judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 4})
        response = self.post(ndjson([line(2), line(1, response="Geändert.")]))
        errors = self.assertErrors(
            response, 409, contains="already has judgments", field="external_id"
        )
        self.assertEqual(errors[0]["line"], 2)
        self.assertFalse(Item.objects.filter(external_id="ext-2").exists())
        self.assertEqual(Item.objects.get(external_id="ext-1").response, line(1)["response"])

    def test_text_is_stored_nfc_normalised(self):
        self.post(ndjson([line(1, response="Cafe\u0301 und Cre\u0300me, bitte sehr.")]))
        self.assertEqual(
            Item.objects.get(external_id="ext-1").response, "Caf\u00e9 und Cr\u00e8me, bitte sehr."
        )

    def test_text_with_tabs_newlines_and_backslashes_round_trips(self):
        tricky = "Zeile 1\n\tZeile 2\r\nC:\\pfad\\N \\N und \\t bleibt"
        meta = {"note": "a\tb\\c", "nested": [1.5, None, True]}
        self.post(ndjson([line(1, response=tricky, metadata=meta, token_logprobs=[-0.5, -1.25])]))
        item = Item.objects.get(external_id="ext-1")
        self.assertEqual(
            (item.response, item.metadata, item.token_logprobs), (tricky, meta, [-0.5, -1.25])
        )
        self.assertIsNone(item.reward)
        self.assertEqual(
            (item.status, item.open_slots, item.project_id),
            ("queued", self.project.overlap, self.project.pk),
        )

    def test_nul_and_lone_surrogates_are_refused(self):
        self.assertErrors(
            self.post(ndjson([line(1, response="a\u0000b")])), 400, contains="NUL", field="response"
        )
        # json.dumps writes a lone surrogate as the escape \ud800, which decodes to one.
        body = '{"external_id": "x", "language": "de", "response": "bad \\ud800 text"}\n'
        self.assertErrors(self.post(body), 400, contains="surrogate", field="response")
        self.assertFalse(Item.objects.exists())

    def test_a_language_not_enabled_for_the_project_is_refused(self):
        self.assertErrors(
            self.post(ndjson([line(1, language="sw")])),
            400,
            contains="not enabled",
            field="language",
        )
        self.assertErrors(self.post(ndjson([line(1, language="xx-!!")])), 400, field="language")

    @override_settings(PARITY_MAX_IMPORT_BYTES=2000)
    def test_an_oversized_body_is_refused_with_413(self):
        response = self.post(ndjson([line(n) for n in range(40)]))
        self.assertErrors(response, 413, contains="larger than 2000 bytes")
        self.assertFalse(Item.objects.exists())

    def test_the_stream_counts_bytes_whatever_content_length_said(self):
        body = io.BytesIO(ndjson([line(n) for n in range(40)]).encode())
        with self.assertRaises(PayloadTooLarge), mock.patch.object(parsers, "READ_SIZE", 256):
            list(json_lines_records(body, max_bytes=1000))

    @override_settings(PARITY_MAX_IMPORT_LINES=5)
    def test_more_lines_than_a_batch_holds_are_refused(self):
        self.assertErrors(
            self.post(ndjson([line(n) for n in range(6)])), 400, contains="at most 5 lines"
        )
        self.assertFalse(Item.objects.exists())

    def test_a_wrong_content_type_is_refused_with_415(self):
        self.assertErrors(
            self.post(ndjson([line(1)]), content_type="text/plain"), 415, contains="text/plain"
        )

    def test_an_empty_body_is_refused(self):
        self.assertErrors(self.post(""), 400, contains="empty")

    def test_a_token_import_is_audited_with_the_token(self):
        self.post(ndjson([line(1)]))
        event = AuditEvent.objects.get(verb="items.import")
        self.assertEqual(event.token.scope, "import")
        self.assertIsNone(event.actor)
        self.assertEqual(event.data["created"], 1)

    def test_the_language_check_flags_outputs_in_another_language_and_mixed_spans(self):
        response = self.post(
            ndjson(
                [
                    line(
                        1,
                        response="Die Katze sitzt auf der Matte und schaut aus dem Fenster in den Garten.",
                    ),
                    line(
                        2,
                        response="The cat is sitting on the mat and looking out of the window into the garden.",
                    ),
                    line(
                        3,
                        response="Die Katze sitzt auf der Matte und schaut hinaus. But then the dog came in and "
                        "everything changed for the rest of the afternoon.",
                    ),
                ]
            )
        )
        self.assertEqual(response.json()["language_check"], "after_response")
        german, english, mixed = (Item.objects.get(external_id=f"ext-{n}") for n in (1, 2, 3))
        self.assertFalse(german.language_flagged)
        self.assertEqual(german.language_check["detected"], "de")
        self.assertTrue(english.language_flagged)
        self.assertIn("wrong_language", english.language_check["flags"])
        self.assertTrue(mixed.language_flagged)
        self.assertIn("code_switching", mixed.language_check["flags"])
        span = mixed.language_check["mixed"][0]
        self.assertEqual((span["language"], span["field"]), ("en", "response"))
        self.assertIn("the dog came in", mixed.response[span["start"] : span["end"]])
        # Flagged, never rejected: all three were imported.
        self.assertEqual(Item.objects.filter(source=ItemSource.IMPORT).count(), 3)

    def test_it_imports_historical_judgments(self):
        self.post(ndjson([line(1)]))
        body = ndjson(
            [
                {"item_external_id": "ext-1", "rater": f"r{k}", "value": {"score": 3 + k % 2}}
                for k in range(3)
            ]
        )
        response = self.call(
            "post",
            self.url("judgments/"),
            token=self.tokens["import"],
            body=body,
            content_type="application/x-ndjson",
        )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["created"], 3)
        bad = self.call(
            "post",
            self.url("judgments/"),
            token=self.tokens["import"],
            content_type="application/x-ndjson",
            body=ndjson([{"item_external_id": "nope", "rater": "r1", "value": {"score": 3}}]),
        )
        self.assertErrors(bad, 400, field="item_external_id")


class StreamingParserTests(ApiTestCase):
    def test_the_array_splitter_matches_json_loads_across_read_boundaries(self):
        elements = [
            {"n": n, "text": "ü" * (n % 7) + '\\"]}[{', "x": [1.5, -2e3, None, True]}
            for n in range(60)
        ]
        body = json.dumps(elements, ensure_ascii=False).encode()
        for size in (1, 7, 64, 1 << 20):
            with mock.patch.object(parsers, "READ_SIZE", size):
                got = list(json_array_records(io.BytesIO(body), max_bytes=10**9))
            self.assertEqual([v for _, v in got], elements, size)
            self.assertEqual([n for n, _ in got], list(range(1, 61)))

    def test_the_array_splitter_reports_a_broken_array(self):
        for body, message in (
            (b'{"a": 1}', "start with '['"),
            (b'[{"a": 1} {"b": 2}]', "expected ','"),
            (b'[{"a": 1},', "not closed"),
            (b'[{"a": tru}]', "not valid JSON"),
            (b'[{"a": 1}] x', "after the closing"),
        ):
            got = list(json_array_records(io.BytesIO(body), max_bytes=10**9))
            self.assertIsInstance(got[-1][1], LineError, body)
            self.assertIn(message, got[-1][1].message, body)

    def test_numbers_at_a_read_boundary_are_not_cut(self):
        with mock.patch.object(parsers, "READ_SIZE", 3):
            got = list(json_array_records(io.BytesIO(b"[12345, 678]"), max_bytes=100))
        self.assertEqual([v for _, v in got], [12345, 678])

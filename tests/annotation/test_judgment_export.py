"""The raw judgment export."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from annotation.exports import judgment_export
from annotation.qualification import evaluator_language_add, qualification_grant
from annotation.queue import item_claim_next, judgment_submit
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.factories import UserFactory


class JudgmentExportTests(ApiTestCase):
    def test_raw_judgments_carry_pseudonyms_not_usernames(self):
        import_items(self.project, [{"external_id": "j1", "language": "de", "response": "Antwort"}])
        carol = UserFactory(username="carol")
        evaluator_language_add(user=carol, language=self.de)
        qualification_grant(
            project=self.project, evaluator=carol, language=self.de, actor=self.lead
        )
        for user, score in ((self.alice, 4), (carol, 2)):
            judgment_submit(
                assignment=item_claim_next(evaluator=user, project=self.project),
                evaluator=user,
                value={"score": score, "comment": 'ok, "quoted"'},
            )
        import_judgments(
            self.project, [{"item_external_id": "j1", "rater": "vendor-17", "value": {"score": 3}}]
        )
        response = self.call("get", self.url("export/judgments/"), token=self.tokens["export"])
        rows = [
            json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
        ]
        raters = {(r["rater"], r["rater_type"]) for r in rows}
        self.assertEqual(
            raters,
            {
                (self.alice.evaluator_profile.pseudonym, "evaluator"),
                (carol.evaluator_profile.pseudonym, "evaluator"),
                ("vendor-17", "external"),
            },
        )
        self.assertNotIn(b"alice", b"".join(json.dumps(r).encode() for r in rows))
        self.assertEqual(sorted(r["value"]["score"] for r in rows), [2, 3, 4])
        response = self.call(
            "get", self.url("export/judgments/?format=csv"), token=self.tokens["export"]
        )
        self.assertTrue(response["Content-Type"].startswith("text/csv"))
        table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual(len(table), 3)
        self.assertEqual(json.loads(table[0]["value"]), {"score": 4, "comment": 'ok, "quoted"'})

    @pytest.mark.postgres
    def test_its_cursor_is_planned_for_the_whole_result(self):
        # PostgreSQL plans a cursor for a fast first tenth by default: after a bulk import,
        # on stale statistics, that plan walked every judgment of every project in id
        # order (bench/export_since.py, step 2). The export plans for reading it all.
        import_items(self.project, [{"external_id": "j1", "language": "de", "response": "Antwort"}])
        import_judgments(
            self.project, [{"item_external_id": "j1", "rater": "vendor-17", "value": {"score": 3}}]
        )
        rows = judgment_export(project=self.project)
        self.assertEqual(next(rows)["rater"], "vendor-17")
        # The export's transaction is open while it streams: the setting is the cursor's.
        with connection.cursor() as cursor:
            cursor.execute("SHOW cursor_tuple_fraction")
            self.assertEqual(float(cursor.fetchone()[0]), 1.0)
        rows.close()

    def test_the_judgment_export_command(self):
        import_items(self.project, [{"external_id": "j1", "language": "de", "response": "Antwort"}])
        import_judgments(
            self.project, [{"item_external_id": "j1", "rater": "vendor-17", "value": {"score": 3}}]
        )
        with tempfile.TemporaryDirectory() as tmp:
            call_command(
                "export_judgments",
                "--project",
                self.project.slug,
                "--format",
                "csv",
                "-o",
                f"{tmp}/j.csv",
                stderr=io.StringIO(),
            )
            self.assertIn("vendor-17", Path(f"{tmp}/j.csv").read_text())
        with self.assertRaisesMessage(CommandError, "not a language of project"):
            call_command("export_judgments", "--project", self.project.slug, "--language", "sw")

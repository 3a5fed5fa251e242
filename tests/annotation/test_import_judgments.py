"""Historical judgments: `judgments_import` and `python manage.py import_judgments`."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.demo_data import numbered
from annotation.imports import ImportRejected, jsonl_records, judgments_import
from annotation.models import AuditEvent, ExternalRater, Judgment
from tests.base import ParityTestCase
from tests.factories import ItemFactory

GOOD = [
    {
        "item_external_id": "s1",
        "rater": "r17",
        "value": {"score": 4},
        "created": "2025-03-01T10:00:00Z",
    },
    {"item_external_id": "s1", "rater": "r18", "value": {"score": 5, "comment": "gut"}},
    {"item_external_id": "s2", "rater": "r17", "value": {"score": 2}},
]


class ImportJudgmentsTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.s1 = ItemFactory(project=cls.project, language=cls.de, external_id="s1")
        cls.s2 = ItemFactory(project=cls.project, language=cls.de, external_id="s2")

    def _import(self, lines):
        return judgments_import(project=self.project, records=numbered(lines), actor=self.lead)

    def _rejected(self, lines) -> ImportRejected:
        with self.assertRaises(ImportRejected) as caught:
            self._import(lines)
        return caught.exception

    def test_it_stores_historical_judgments_by_external_raters(self):
        result = self._import(GOOD)
        self.assertEqual((result.created, result.unchanged), (3, 0))
        self.assertEqual(
            set(
                ExternalRater.objects.filter(project=self.project).values_list(
                    "external_id", flat=True
                )
            ),
            {"r17", "r18"},
        )
        judgment = Judgment.objects.get(item=self.s1, external_rater__external_id="r17")
        self.assertEqual(judgment.kind, "historical")
        self.assertIsNone(judgment.assignment)
        self.assertIsNone(judgment.evaluator)
        self.assertEqual(judgment.value, {"score": 4})
        self.assertEqual(judgment.created_at, datetime(2025, 3, 1, 10, 0, tzinfo=UTC))
        self.assertEqual(
            Judgment.objects.get(item=self.s1, external_rater__external_id="r18").value,
            {"score": 5, "comment": "gut"},
        )
        self.assertTrue(
            AuditEvent.objects.filter(verb="judgments.import", actor=self.lead).exists()
        )

    def test_it_changes_nothing_when_the_same_file_comes_again(self):
        self._import(GOOD)
        before = list(Judgment.objects.order_by("pk").values_list("pk", "value", "created_at"))
        result = self._import(GOOD)
        self.assertEqual((result.created, result.unchanged), (0, 3))
        self.assertEqual(
            list(Judgment.objects.order_by("pk").values_list("pk", "value", "created_at")), before
        )
        self.assertEqual(ExternalRater.objects.count(), 2)

    def test_it_refuses_an_unknown_item_and_stores_nothing(self):
        error = self._rejected(
            [*GOOD, {"item_external_id": "nope", "rater": "r1", "value": {"score": 3}}]
        )
        self.assertEqual([(e.line, e.field) for e in error.errors], [(4, "item_external_id")])
        self.assertIn("no item with external_id 'nope'", error.errors[0].message)
        self.assertEqual(Judgment.objects.count(), 0)
        self.assertEqual(ExternalRater.objects.count(), 0)

    def test_it_refuses_a_value_outside_the_schema(self):
        error = self._rejected(
            [GOOD[0], {"item_external_id": "s2", "rater": "r1", "value": {"score": 9}}]
        )
        self.assertEqual((error.errors[0].line, error.errors[0].field), (2, "value"))
        self.assertEqual(error.errors[0].message, "score: 9 is outside the scale 1–5")
        error = self._rejected(
            [{"item_external_id": "s2", "rater": "r1", "value": {"choice": "a"}}]
        )
        self.assertEqual(error.errors[0].message, "score: a whole number is required")
        self.assertEqual(Judgment.objects.count(), 0)

    def test_it_refuses_the_same_rater_twice_on_one_item_in_a_file(self):
        error = self._rejected([GOOD[0], GOOD[2], {**GOOD[0], "value": {"score": 1}}])
        self.assertEqual((error.errors[0].line, error.errors[0].field), (3, "rater"))
        self.assertIn("rater 'r17' already judged item 's1' on line 1", error.errors[0].message)
        self.assertEqual(Judgment.objects.count(), 0)

    def test_it_refuses_a_different_judgment_already_stored(self):
        self._import(GOOD)
        error = self._rejected(
            [
                {"item_external_id": "s2", "rater": "r99", "value": {"score": 1}},
                {"item_external_id": "s1", "rater": "r17", "value": {"score": 1}},
            ]
        )
        self.assertEqual((error.errors[0].line, error.errors[0].field), (2, "rater"))
        self.assertIn(
            "already has a different judgment of item 's1' stored", error.errors[0].message
        )
        # The good first line was not stored either.
        self.assertFalse(ExternalRater.objects.filter(external_id="r99").exists())
        self.assertEqual(Judgment.objects.count(), 3)

    def test_it_refuses_malformed_lines_with_their_numbers(self):
        cases = [
            ("[1, 2]", None, "each line must be a JSON object"),
            (
                '{"item_external_id": "s1", "rater": "r1", "value": {"score": 3}, "weight": 2}',
                "weight",
                "is not a field of a judgment line",
            ),
            ('{"item_external_id": "s1", "value": {"score": 3}}', "rater", "is required"),
            ('{"item_external_id": "s1", "rater": "r1"}', "value", "is required"),
            (
                '{"item_external_id": "s1", "rater": "r1", "value": {"score": 3}, "created": "yesterday"}',
                "created",
                "is not an ISO 8601 date and time",
            ),
            (
                '{"item_external_id": "s1", "rater": "r1", "value": {"score": 3}, "created": "2999-01-01T00:00:00Z"}',
                "created",
                "is in the future",
            ),
            (
                '{"item_external_id": "s1", "rater": "r\\u0000", "value": {"score": 3}}',
                "rater",
                "NUL",
            ),
            ("{not json", None, "not valid JSON"),
        ]
        for raw, field, message in cases:
            with self.subTest(raw=raw):
                with self.assertRaises(ImportRejected) as caught:
                    judgments_import(
                        project=self.project, records=jsonl_records([json.dumps(GOOD[0]), raw])
                    )
                error = caught.exception.errors[0]
                self.assertEqual((error.line, error.field), (2, field))
                self.assertIn(message, error.message)
        self.assertEqual(Judgment.objects.count(), 0)

    def test_it_refuses_judgments_on_gold_items(self):
        ItemFactory(project=self.project, language=self.de, external_id="gold-1", is_gold=True)
        error = self._rejected(
            [{"item_external_id": "gold-1", "rater": "r1", "value": {"score": 3}}]
        )
        self.assertIn("is a gold item", error.errors[0].message)

    def test_it_refuses_an_empty_batch(self):
        error = self._rejected([])
        self.assertIn("the batch is empty", error.errors[0].message)


class ImportJudgmentsCommandTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        ItemFactory(project=cls.project, language=cls.de, external_id="s1")
        ItemFactory(project=cls.project, language=cls.de, external_id="s2")

    def _file(self, lines: list[str]) -> Path:
        handle = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
        handle.write("\n".join(lines) + "\n")
        handle.close()
        self.addCleanup(Path(handle.name).unlink)
        return Path(handle.name)

    def test_it_imports_a_file(self):
        path = self._file([json.dumps(line) for line in GOOD])
        out = StringIO()
        call_command("import_judgments", str(path), "--project", self.project.slug, stdout=out)
        self.assertIn("3 judgments created, 0 unchanged", out.getvalue())
        out = StringIO()
        call_command(
            "import_judgments", str(path), "--project", self.project.slug, "--json", stdout=out
        )
        self.assertEqual(json.loads(out.getvalue()), {"created": 0, "unchanged": 3})

    def test_it_exits_non_zero_with_the_line_and_reason(self):
        path = self._file(
            [
                json.dumps(GOOD[0]),
                json.dumps({"item_external_id": "zz", "rater": "r", "value": {"score": 1}}),
            ]
        )
        with self.assertRaisesMessage(
            CommandError, "line 2, item_external_id: no item with external_id 'zz'"
        ):
            call_command("import_judgments", str(path), "--project", self.project.slug)
        self.assertEqual(Judgment.objects.count(), 0)
        with self.assertRaisesMessage(CommandError, "no project with slug 'nope'"):
            call_command("import_judgments", str(path), "--project", "nope")
        with self.assertRaisesMessage(CommandError, "is not a file"):
            call_command("import_judgments", "/no/such/file.jsonl", "--project", self.project.slug)

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import ProgrammingError, connection
from django.test import TransactionTestCase

from annotation.imports import ImportRejected, items_import, items_statistics_refresh, jsonl_records
from annotation.models import GoldAnswer, Item, ItemStatus, Project
from annotation.queue import item_claim_next, judgment_submit
from tests.base import ParityTestCase
from tests.factories import ProjectFactory


def line(n: int, **extra) -> dict:
    return {
        "external_id": f"x-{n}",
        "language": "de",
        "prompt": "Hello",
        "response": f"Hallo {n}",
        **extra,
    }


def records(lines: list) -> list[tuple[int, object]]:
    raw = [x if isinstance(x, str) else json.dumps(x) for x in lines]
    return list(jsonl_records(raw))


class ItemImportTests(ParityTestCase):
    def test_it_creates_queued_items_with_k_open_slots(self):
        result = items_import(project=self.project, records=records([line(1), line(2)]))
        self.assertEqual(result.as_dict(), {"created": 2, "unchanged": 0, "updated": 0})
        item = Item.objects.get(external_id="x-1")
        self.assertEqual(
            (item.status, item.open_slots, item.language.tag), (ItemStatus.QUEUED, 3, "de")
        )

    def test_reimporting_the_same_lines_changes_nothing(self):
        items_import(project=self.project, records=records([line(1), line(2)]))
        before = list(Item.objects.order_by("pk").values())
        result = items_import(project=self.project, records=records([line(1), line(2)]))
        self.assertEqual(result.as_dict(), {"created": 0, "unchanged": 2, "updated": 0})
        self.assertEqual(list(Item.objects.order_by("pk").values()), before)

    def test_changed_content_updates_an_unjudged_item_and_is_refused_for_a_judged_one(self):
        items_import(project=self.project, records=records([line(1), line(2)]))
        a = item_claim_next(evaluator=self.alice, project=self.project)
        judgment_submit(assignment=a, evaluator=self.alice, value={"score": 3})
        judged = a.item.external_id
        other = "x-2" if judged == "x-1" else "x-1"
        n_other = int(other.split("-")[1])
        result = items_import(
            project=self.project, records=records([line(n_other, response="neu")])
        )
        self.assertEqual(result.updated, 1)
        self.assertEqual(Item.objects.get(external_id=other).response, "neu")
        n_judged = int(judged.split("-")[1])
        with self.assertRaises(ImportRejected) as ctx:
            items_import(
                project=self.project, records=records([line(n_judged, response="changed")])
            )
        self.assertTrue(ctx.exception.is_conflict)
        self.assertIn("already has judgments", ctx.exception.errors[0].message)
        self.assertNotEqual(Item.objects.get(external_id=judged).response, "changed")

    def test_one_bad_line_stores_nothing_and_every_bad_line_is_reported(self):
        lines = [line(n) for n in range(1, 3001)]
        lines[1499] = line(1500, language="xx-!!")
        lines[2999] = line(3000, response="")
        with self.assertRaises(ImportRejected) as ctx:
            items_import(project=self.project, records=records(lines))
        errors = [(e.line, e.field) for e in ctx.exception.errors]
        self.assertEqual(errors, [(1500, "language"), (3000, "response")])
        self.assertIn("not a valid BCP 47 language tag", ctx.exception.errors[0].message)
        self.assertFalse(Item.objects.exists())

    def test_it_refuses_bad_lines_with_a_specific_reason(self):
        cases = {
            "{not json": (None, "not valid JSON"),
            json.dumps([1, 2]): (None, "must be a JSON object"),
            json.dumps(line(1, language="sw")): (
                "language",
                "'sw' is not enabled for project mt-rating",
            ),
            json.dumps(line(1, response="a\x00b")): ("response", "NUL"),
            '{"external_id": "s", "language": "de", "response": "\\ud800"}': (
                "response",
                "lone surrogate",
            ),
            json.dumps(line(1, colour="red")): ("colour", "is not an import field"),
            json.dumps(line(1, token_entropy="high")): ("token_entropy", "finite number"),
            json.dumps(line(1, token_logprobs=[-0.1, 0.5])): ("token_logprobs", "≤ 0"),
            json.dumps(line(1, response_a="A")): ("response_a", "does not apply"),
            json.dumps(line(1, metadata=[1])): ("metadata", "JSON object"),
            json.dumps({"language": "de", "response": "x"}): ("external_id", "is required"),
        }
        for raw, (field, message) in cases.items():
            with self.subTest(raw=raw[:40]):
                with self.assertRaises(ImportRejected) as ctx:
                    items_import(project=self.project, records=records([raw]))
                error = ctx.exception.errors[0]
                self.assertEqual((error.line, error.field), (1, field))
                self.assertIn(message, error.message)
        self.assertFalse(Item.objects.exists())

    def test_a_duplicate_external_id_in_one_batch_is_refused(self):
        with self.assertRaises(ImportRejected) as ctx:
            items_import(project=self.project, records=records([line(1), line(1)]))
        self.assertEqual(
            (ctx.exception.errors[0].line, ctx.exception.errors[0].field), (2, "external_id")
        )

    def test_text_is_stored_nfc_normalised(self):
        decomposed = "Cafe\u0301"
        items_import(project=self.project, records=records([line(1, response=decomposed)]))
        self.assertEqual(Item.objects.get().response, "Caf\u00e9")

    def test_language_tags_are_normalised(self):
        items_import(project=self.project, records=records([line(1, language="DE")]))
        self.assertEqual(Item.objects.get().language.tag, "de")

    def test_gold_lines_become_gold_items_without_production_slots(self):
        items_import(
            project=self.project,
            records=records([line(1, gold={"value": {"score": 5}, "explanation": "perfect"})]),
        )
        item = Item.objects.get()
        self.assertTrue(item.is_gold)
        self.assertEqual(item.open_slots, 0)
        self.assertEqual(GoldAnswer.objects.get(item=item).value, {"score": 5})

    def test_a_project_that_pools_keeps_imported_items_out_of_the_queue(self):
        Project.objects.filter(pk=self.project.pk).update(queue_on_import=False)
        self.project.refresh_from_db()
        items_import(project=self.project, records=records([line(1)]))
        item = Item.objects.get()
        self.assertEqual((item.status, item.open_slots), (ItemStatus.POOL, 0))


class ImportItemsCommandTests(ParityTestCase):
    def write(self, tmp: Path, lines: list) -> Path:
        path = tmp / "items.jsonl"
        path.write_text(
            "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines)
            + "\n",
            encoding="utf-8",
        )
        return path

    def setUp(self):
        import tempfile

        self.tmp = Path(tempfile.mkdtemp())

    def test_it_imports_and_reimport_changes_nothing(self):
        path = self.write(self.tmp, [line(1), line(2, language="ar", response="مرحبا")])
        out = StringIO()
        call_command(
            "import_items",
            str(path),
            "--project",
            "mt-rating",
            "--json",
            "--no-language-check",
            stdout=out,
        )
        self.assertEqual(json.loads(out.getvalue())["created"], 2)
        out = StringIO()
        call_command(
            "import_items",
            str(path),
            "--project",
            "mt-rating",
            "--json",
            "--no-language-check",
            stdout=out,
        )
        self.assertEqual(json.loads(out.getvalue())["unchanged"], 2)
        self.assertEqual(Item.objects.count(), 2)

    def test_a_bad_line_stops_the_batch_with_its_number_and_reason(self):
        path = self.write(self.tmp, [line(1), line(2), line(3, language="klingon!")])
        with self.assertRaisesMessage(CommandError, "line 3, language"):
            call_command("import_items", str(path), "--project", "mt-rating")
        self.assertFalse(Item.objects.exists())

    def test_an_unknown_project_or_missing_file_is_refused(self):
        path = self.write(self.tmp, [line(1)])
        with self.assertRaisesMessage(CommandError, "no project with slug 'nope'"):
            call_command("import_items", str(path), "--project", "nope")
        with self.assertRaisesMessage(CommandError, "is not a file"):
            call_command("import_items", str(self.tmp / "missing.jsonl"), "--project", "mt-rating")


@pytest.mark.postgres
class ImportStatisticsTests(TransactionTestCase):
    """The first import into a database leaves the planner statistics that keep every later
    import's external-id lookup on its unique index (without them a 1,000,000-item import
    slowed to a third of its speed as the table grew; bench/import_export.py)."""

    def _forget_statistics(self) -> None:
        with connection.cursor() as cursor:
            try:
                cursor.execute(
                    "DELETE FROM pg_statistic WHERE starelid = 'annotation_item'::regclass"
                )
                cursor.execute(
                    "UPDATE pg_class SET reltuples = -1 WHERE oid = 'annotation_item'::regclass"
                )
            except ProgrammingError as exc:  # not a superuser: the state cannot be set up
                self.skipTest(f"needs a PostgreSQL superuser to clear the statistics: {exc}")

    def _statistics(self) -> tuple[float, float | None]:
        """The table's row estimate, and what the planner believes of external_id's distinct
        values (-1: every row its own, i.e. a lookup by it matches one row each)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'annotation_item'::regclass")
            (rows,) = cursor.fetchone()
            cursor.execute(
                "SELECT n_distinct FROM pg_stats WHERE tablename = 'annotation_item' AND attname = 'external_id'"
            )
            found = cursor.fetchone()
        return rows, found[0] if found else None

    def test_the_first_import_is_analysed_so_external_id_lookups_plan_as_unique(self):
        project = ProjectFactory(slug="stats", languages=["de"])
        self._forget_statistics()
        self.assertEqual(self._statistics(), (-1, None))
        result = items_import(project=project, records=records([line(n) for n in range(3000)]))
        self.assertEqual(result.created, 3000)
        self.assertEqual(self._statistics(), (3000, -1))
        # Statistics in place and the table not doubled: no second ANALYZE.
        self.assertFalse(items_statistics_refresh(created=3000))
        self.assertTrue(items_statistics_refresh(created=3001))

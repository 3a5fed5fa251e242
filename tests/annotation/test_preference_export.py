"""Preference exports: the documented columns and filters of a pull, rating pairs, and
unpaired lines.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from annotation.exports import PAIR_COLUMNS
from annotation.models import (
    Assignment,
    AuditEvent,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    TaskType,
)
from annotation.qualification import evaluator_language_add, qualification_grant
from annotation.tokens import api_token_create
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.annotation.export_support import PairsExportCase, load_with_datasets, votes
from tests.factories import ItemFactory, ProjectFactory


class PreferenceExportTests(PairsExportCase):
    def test_it_exports_settled_pairs_with_the_documented_columns(self):
        rows, _cursor = self.lines()
        self.assertEqual([r["item_id"] for r in rows], ["p-0", "p-1", "p-6"])
        for row in rows:
            self.assertEqual(tuple(row), PAIR_COLUMNS)
        first, second, swahili = rows
        self.assertEqual((first["chosen"], first["rejected"]), ("Antwort A0", "Antwort B0"))
        self.assertEqual((first["model_chosen"], first["model_rejected"]), ("alpha", "beta"))
        self.assertEqual((first["n_judgments"], first["agreement"], first["gap"]), (3, 1.0, 2.0))
        self.assertNotIn("margin", first)  # TRL's RewardTrainer would apply it as-is
        self.assertEqual((second["chosen"], second["rejected"]), ("Antwort B1", "Antwort A1"))
        self.assertAlmostEqual(second["agreement"], 2 / 3)
        self.assertEqual(swahili["language"], "sw")
        self.assertEqual(first["label_source"], "majority")

    def test_the_jsonl_loads_with_hugging_face_datasets_in_both_styles(self):
        with tempfile.TemporaryDirectory() as tmp:
            for style in ("standard", "conversational"):
                path = Path(tmp) / f"{style}.jsonl"
                path.write_bytes(self.export(f"?style={style}")[1])
                data = load_with_datasets(path, "json")
                self.assertEqual(data.column_names, list(PAIR_COLUMNS))
                self.assertEqual(data.num_rows, 3)
                if style == "standard":
                    self.assertEqual(
                        data[0]["prompt"], "Frage 0?\n"
                    )  # TRL joins prompt and completion as they are
                else:
                    self.assertEqual(data[0]["prompt"], [{"role": "user", "content": "Frage 0?"}])
                    self.assertEqual(
                        data[0]["chosen"], [{"role": "assistant", "content": "Antwort A0"}]
                    )
                    self.assertEqual(
                        data[1]["rejected"], [{"role": "assistant", "content": "Antwort A1"}]
                    )

    def test_the_parquet_loads_with_hugging_face_datasets_in_both_styles(self):
        with tempfile.TemporaryDirectory() as tmp:
            for style in ("standard", "conversational"):
                response, body = self.export(f"?format=parquet&style={style}")
                self.assertEqual(response["Content-Type"], "application/vnd.apache.parquet")
                path = Path(tmp) / f"{style}.parquet"
                path.write_bytes(body)
                self.assertEqual(pq.ParquetFile(path).schema_arrow.names, list(PAIR_COLUMNS))
                data = load_with_datasets(path, "parquet")
                self.assertEqual(data.column_names, list(PAIR_COLUMNS))
                self.assertEqual(data["item_id"], ["p-0", "p-1", "p-6"])
                expected = (
                    "Antwort A0"
                    if style == "standard"
                    else [{"role": "assistant", "content": "Antwort A0"}]
                )
                self.assertEqual(data[0]["chosen"], expected)

    def test_the_since_cursor_gives_every_pair_exactly_once_across_pulls(self):
        first, cursor = self.lines()
        import_judgments(
            self.pairs,
            votes("p-4", "b", first=2) + votes("p-5", "a", "a", "b") + votes("p-7", "a", "b", "b"),
        )
        second, cursor2 = self.lines(f"?since={cursor}")
        third, _ = self.lines(f"?since={cursor2}")
        ids = [r["item_id"] for r in first + second + third]
        self.assertEqual(sorted(ids), ["p-0", "p-1", "p-4", "p-5", "p-6", "p-7"])
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual([r["item_id"] for r in second], ["p-4", "p-5", "p-7"])
        self.assertEqual(third, [])
        # A full pull (no since) still has everything.
        self.assertEqual(len(self.lines()[0]), 6)

    def test_a_cursor_of_another_project_or_garbage_is_refused(self):
        for since in ("nonsense", "c1.bm9wZQ", "c1.OTk5OjE"):
            response = self.call(
                "get",
                f"/api/v1/projects/chat-pairs/export/preferences/?since={since}",
                token=self.export_token,
            )
            self.assertErrors(response, 400, field="since")

    def test_a_final_label_wins_over_the_majority(self):
        FinalLabel.objects.create(
            item=Item.objects.get(external_id="p-0"),
            value={"choice": "b", "strength": 1},
            reason="Adjudicated: B is the faithful one.",
        )
        row = self.lines()[0][0]
        self.assertEqual(
            (row["item_id"], row["chosen"], row["label_source"]), ("p-0", "Antwort B0", "final")
        )
        self.assertEqual(row["gap"], 1.0)

    def test_a_pair_carries_the_guideline_version_of_its_latest_judgment(self):
        judgments = list(Judgment.objects.filter(item__external_id="p-0").order_by("id"))
        for judgment, version in zip(judgments, ("v1", "v3", "v2"), strict=True):
            judgment.guideline_version = version
            judgment.save(update_fields=["guideline_version"])
        row = next(line for line in self.lines()[0] if line["item_id"] == "p-0")
        self.assertEqual(row["guideline_version"], "v2")

    def test_an_item_awaiting_adjudication_is_held_back(self):
        Item.objects.filter(external_id="p-1").update(status=ItemStatus.ADJUDICATION)
        self.assertNotIn("p-1", [r["item_id"] for r in self.lines()[0]])

    def test_ties_are_left_out_unless_asked_for_and_both_bad_never_exported(self):
        rows = self.lines("?include_ties=true")[0]
        tie = next(r for r in rows if r["item_id"] == "p-2")
        self.assertEqual((tie["tie"], tie["gap"]), (True, 0.0))
        self.assertNotIn("p-3", [r["item_id"] for r in rows])

    def test_min_agreement_and_language_filter(self):
        self.assertEqual(
            [r["item_id"] for r in self.lines("?min_agreement=0.9")[0]], ["p-0", "p-6"]
        )
        self.assertEqual([r["item_id"] for r in self.lines("?language=sw")[0]], ["p-6"])
        bad = self.call(
            "get",
            "/api/v1/projects/chat-pairs/export/preferences/?language=ar",
            token=self.export_token,
        )
        self.assertErrors(bad, 400, field="language")
        bad = self.call(
            "get",
            "/api/v1/projects/chat-pairs/export/preferences/?min_agreement=2",
            token=self.export_token,
        )
        self.assertErrors(bad, 400, field="min_agreement")
        bad = self.call(
            "get",
            "/api/v1/projects/chat-pairs/export/preferences/?format=xml",
            token=self.export_token,
        )
        self.assertErrors(bad, 400, field="format")

    def test_dawid_skene_aggregation(self):
        rows = self.lines("?method=dawid_skene")[0]
        self.assertEqual({r["label_source"] for r in rows}, {"dawid_skene"})
        self.assertEqual(next(r for r in rows if r["item_id"] == "p-0")["chosen"], "Antwort A0")

    def test_honeypot_and_calibration_items_are_never_exported(self):
        gold = ItemFactory(
            project=self.pairs, external_id="gold-1", is_gold=True, status=ItemStatus.DONE
        )
        evaluator_language_add(user=self.alice, language=self.de)
        qualification_grant(
            project=self.pairs, evaluator=self.alice, language=self.de, actor=self.lead
        )
        assignment = Assignment.objects.create(
            item=gold,
            evaluator=self.alice,
            project=self.pairs,
            kind="honeypot",
            lease_expires_at=timezone.now(),
        )
        Judgment.objects.create(
            item=gold,
            assignment=assignment,
            evaluator=self.alice,
            kind="honeypot",
            value={"choice": "a", "strength": 1},
        )
        self.assertNotIn("gold-1", [r["item_id"] for r in self.lines()[0]])

    def test_an_export_is_audited(self):
        self.lines("?language=de")
        event = AuditEvent.objects.filter(verb="export.preferences").latest("id")
        self.assertEqual((event.token.scope, event.data["language"]), ("export", "de"))

    def test_the_command_writes_jsonl_and_parquet_and_prints_the_cursor(self):
        with tempfile.TemporaryDirectory() as tmp:
            out, err = io.StringIO(), io.StringIO()
            call_command(
                "export_preferences",
                "--project",
                "chat-pairs",
                "-o",
                f"{tmp}/p.jsonl",
                stdout=out,
                stderr=err,
            )
            rows = [json.loads(line) for line in Path(f"{tmp}/p.jsonl").read_text().splitlines()]
            self.assertEqual(len(rows), 3)
            cursor = err.getvalue().split("next cursor: ")[1].strip()
            import_judgments(self.pairs, votes("p-5", "a", "a", "a"))
            call_command(
                "export_preferences",
                "--project",
                "chat-pairs",
                "--format",
                "parquet",
                "--since",
                cursor,
                "--style",
                "conversational",
                "-o",
                f"{tmp}/p.parquet",
                stdout=out,
                stderr=err,
            )
            table = pq.read_table(f"{tmp}/p.parquet")
            self.assertEqual(table.column("item_id").to_pylist(), ["p-5"])
        with self.assertRaisesMessage(CommandError, "no project"):
            call_command("export_preferences", "--project", "nope")
        with self.assertRaisesMessage(CommandError, "min_agreement"):
            call_command("export_preferences", "--project", "chat-pairs", "--min-agreement", "3")
        with self.assertRaisesMessage(CommandError, "-o"):
            call_command("export_preferences", "--project", "chat-pairs", "--format", "parquet")


class RatingPairTests(ApiTestCase):
    def test_rating_projects_pair_the_best_and_worst_response_to_a_prompt(self):
        lines = [
            {
                "external_id": f"q{q}-{m}",
                "language": "de",
                "prompt": f"Prompt {q}",
                "prompt_id": f"q{q}",
                "response": f"Antwort {q} von {m}",
                "model": m,
            }
            for q in range(3)
            for m in ("m1", "m2", "m3")
        ] + [
            {
                "external_id": "alone",
                "language": "de",
                "prompt": "x",
                "prompt_id": "solo",
                "response": "y",
            }
        ]
        import_items(self.project, lines)
        scores = {"m1": (5, 5, 4), "m2": (2, 1, 2), "m3": (3, 3, 3)}
        judged = [(q, m) for q in range(2) for m in scores] + [
            (2, "m1"),
            (2, "m2"),
        ]  # q2-m3 still open
        import_judgments(
            self.project,
            [
                {
                    "item_external_id": f"q{q}-{m}",
                    "rater": f"r{k}",
                    "value": {"score": scores[m][k]},
                }
                for q, m in judged
                for k in range(3)
            ]
            + [
                {"item_external_id": "alone", "rater": f"r{k}", "value": {"score": 3}}
                for k in range(3)
            ],
        )
        response = self.call("get", self.url("export/preferences/"), token=self.tokens["export"])
        rows = [
            json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
        ]
        # Responses pair as they settle: q2's open response waits, its two settled ones pair.
        self.assertEqual([r["item_id"] for r in rows], ["de/q0", "de/q1", "de/q2"])
        row = rows[0]
        self.assertEqual((row["chosen"], row["rejected"]), ("Antwort 0 von m1", "Antwort 0 von m2"))
        self.assertEqual((row["model_chosen"], row["model_rejected"]), ("m1", "m2"))
        self.assertEqual((row["chosen_item_id"], row["rejected_item_id"]), ("q0-m1", "q0-m2"))
        self.assertAlmostEqual(row["gap"], 14 / 3 - 5 / 3)
        self.assertEqual(row["n_judgments"], 6)
        # The open response settles: its prompt's line comes again in the next pull.
        import_judgments(
            self.project,
            [
                {"item_external_id": "q2-m3", "rater": f"r{k}", "value": {"score": 3}}
                for k in range(3)
            ],
        )
        again = self.call(
            "get",
            self.url(f"export/preferences/?since={response['X-Parity-Cursor']}"),
            token=self.tokens["export"],
        )
        rows = [
            json.loads(line) for line in b"".join(again.streaming_content).decode().splitlines()
        ]
        self.assertEqual([r["item_id"] for r in rows], ["de/q2"])
        self.assertEqual(
            (rows[0]["chosen_item_id"], rows[0]["rejected_item_id"]), ("q2-m1", "q2-m2")
        )

    def test_a_labels_project_has_no_preference_export(self):
        labels = ProjectFactory(slug="tags", task_type=TaskType.LABELS, languages=["de"])
        token = api_token_create(project=labels, scope="export")[1]
        self.assertErrors(
            self.call("get", self.url("export/preferences/", labels), token=token),
            400,
            contains="judgment export",
        )


class UnpairedRatingTests(ApiTestCase):
    def test_any_rating_project_exports_unpaired_lines_and_all_pairs(self):
        lines = [
            {
                "external_id": f"s{n}",
                "language": "de",
                "prompt": f"Satz {n // 3}",
                "response": f"Ü{n}",
                **({"prompt_id": f"q{n // 3}"} if n < 6 else {}),
            }
            for n in range(8)
        ]
        import_items(self.project, lines)
        scores = {0: 5, 1: 1, 2: 3, 3: 4, 4: 4, 5: 2, 6: 5, 7: 2}
        import_judgments(
            self.project,
            [
                {"item_external_id": f"s{n}", "rater": f"r{k}", "value": {"score": s}}
                for n, s in scores.items()
                for k in range(3)
            ],
        )
        response = self.call(
            "get", self.url("export/preferences/?shape=unpaired"), token=self.tokens["export"]
        )
        rows = [
            json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
        ]
        # The default threshold is the middle of the 1–5 scale; items without a prompt id count too.
        self.assertEqual(
            {r["item_id"]: r["label"] for r in rows}, {f"s{n}": s >= 3 for n, s in scores.items()}
        )
        self.assertEqual(
            tuple(rows[0]),
            (
                "prompt",
                "completion",
                "label",
                "language",
                "item_id",
                "n_judgments",
                "agreement",
                "guideline_version",
                "model",
                "score",
                "label_source",
            ),
        )
        response = self.call(
            "get", self.url("export/preferences/?pairs=all&min_gap=1"), token=self.tokens["export"]
        )
        rows = [
            json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
        ]
        # q0: 5 > 3 > 1 gives three pairs; q1: 4, 4, 2 gives two (the equal pair is a tie, left out).
        self.assertEqual(
            sorted((r["chosen_item_id"], r["rejected_item_id"], r["gap"]) for r in rows),
            [
                ("s0", "s1", 4.0),
                ("s0", "s2", 2.0),
                ("s2", "s1", 2.0),
                ("s3", "s5", 2.0),
                ("s4", "s5", 2.0),
            ],
        )
        self.assertEqual(
            {r["item_id"] for r in rows if r["chosen_item_id"] == "s0"},
            {"de/q0/s0/s1", "de/q0/s0/s2"},
        )

from __future__ import annotations

import csv
import io
import json
import os
import random
import tempfile
import threading
from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from annotation.agreement import FittedChoices, item_labels
from annotation.exports import (
    PAIR_COLUMNS,
    jsonl_stream,
    judgment_export,
    preference_export,
)
from annotation.exports.writers import LINES_PER_WRITE
from annotation.labels import LabelRule, item_label
from annotation.models import (
    Assignment,
    AuditEvent,
    ExportMark,
    ExternalRater,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    TaskType,
)
from annotation.qualification import evaluator_language_add, qualification_grant
from annotation.queue import item_claim_next, judgment_submit
from annotation.tokens import api_token_create
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.factories import ItemFactory, ProjectFactory, UserFactory

# Hugging Face datasets must never reach the network in the suite.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_with_datasets(path: Path, builder: str):
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as cache:
        return datasets.load_dataset(builder, data_files=str(path), cache_dir=cache, split="train")


def pair_line(n: int, language: str = "de") -> dict:
    return {
        "external_id": f"p-{n}",
        "language": language,
        "prompt": f"Frage {n}?",
        "response_a": f"Antwort A{n}",
        "response_b": f"Antwort B{n}",
        "model_a": "alpha",
        "model_b": "beta",
    }


def votes(external_id: str, *choices: str, first: int = 0) -> list[dict]:
    return [
        {
            "item_external_id": external_id,
            "rater": f"r{first + k}",
            "value": {"choice": c, "strength": 2} if c in "ab" else {"choice": c},
        }
        for k, c in enumerate(choices)
    ]


class PairsExportCase(ApiTestCase):
    """A pairwise project with settled, open, tied and both-bad items, and the pull helpers."""

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.pairs = ProjectFactory(
            slug="chat-pairs", task_type=TaskType.PAIRWISE, languages=["de", "sw"], overlap=3
        )
        cls.pairs.leads.add(cls.lead)
        cls.export_token = api_token_create(project=cls.pairs, scope="export")[1]
        import_items(
            cls.pairs, [pair_line(n) for n in range(6)] + [pair_line(n, "sw") for n in range(6, 8)]
        )
        import_judgments(
            cls.pairs,
            votes("p-0", "a", "a", "a")
            + votes("p-1", "b", "b", "a")
            + votes("p-2", "a", "tie", "tie")
            + votes("p-3", "both_bad", "both_bad", "a")
            + votes("p-4", "a", "a")  # only two of three: not settled yet
            + votes("p-6", "b", "b", "b"),
        )

    def export(self, query: str = "", token: str | None = None):
        response = self.call(
            "get",
            f"/api/v1/projects/chat-pairs/export/preferences/{query}",
            token=token or self.export_token,
        )
        self.assertIn(response.status_code, (200, 204), getattr(response, "content", b"")[:300])
        if response.status_code == 204:
            # An empty pull: no body at all (a 0-byte file would not load), the cursor still set.
            self.assertTrue(response["X-Parity-Cursor"])
            return response, b""
        return response, b"".join(response.streaming_content)

    def lines(self, query: str = "") -> tuple[list[dict], str]:
        response, body = self.export(query)
        return [json.loads(line) for line in body.decode().splitlines()], response[
            "X-Parity-Cursor"
        ]


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


class StreamedLabelTests(ApiTestCase):
    """The export reads each item's votes as one aggregated row (SQL on each database) and
    labels them as the label rule labels the judgments read one by one."""

    def test_every_exported_pair_is_labelled_as_its_judgments_say(self):
        rng = random.Random(11)
        pairs = ProjectFactory(
            slug="sql-votes", task_type=TaskType.PAIRWISE, languages=["de"], overlap=2
        )
        import_items(pairs, [pair_line(n) for n in range(60)])
        choices = ("a", "b", "tie", "both_bad")
        for n in range(60):
            picks = [rng.choice(choices) for _ in range(rng.choice((2, 3, 4, 5)))]
            import_judgments(
                pairs,
                [
                    {
                        "item_external_id": f"p-{n}",
                        "rater": f"r{k}",
                        "value": {"choice": c, "strength": rng.choice((1, 2))}
                        if c in "ab"
                        else {"choice": c},
                    }
                    for k, c in enumerate(picks)
                ],
            )
        lines = {
            line["item_id"]: line
            for line in preference_export(project=pairs, exclude_ties=False).rows
        }
        seen = {"a": 0, "b": 0, "tie": 0, "both_bad": 0}
        for item in Item.objects.filter(project=pairs):
            values = (
                Judgment.objects.filter(item=item).order_by("id").values_list("value", flat=True)
            )
            label = item_label(
                rule=LabelRule.of(pairs), votes=[(v["choice"], v.get("strength")) for v in values]
            )
            choice = label.value["choice"]
            seen[choice] += 1
            line = lines.pop(item.external_id, None)
            if choice == "both_bad":
                self.assertIsNone(line)
                continue
            self.assertEqual(line["tie"], choice == "tie", item.external_id)
            self.assertEqual(line["chosen"], item.response_b if choice == "b" else item.response_a)
            self.assertEqual(line["gap"], float(label.value.get("strength", 0)))
            self.assertEqual(
                (line["n_judgments"], line["agreement"]), (label.n_judgments, label.agreement)
            )
        self.assertEqual(lines, {})
        self.assertTrue(all(seen.values()), seen)  # every kind of outcome was exercised

    def test_dawid_skene_pairs_are_labelled_as_item_labels_labels_them(self):
        # Two raters who always answer "b" outvote the careful ones on items whose answer
        # is "a"; Dawid–Skene learns that their "b" says nothing and sides with the others.
        rng = random.Random(5)
        pairs = ProjectFactory(
            slug="ds-votes", task_type=TaskType.PAIRWISE, languages=["de"], overlap=2
        )
        import_items(pairs, [pair_line(n) for n in range(40)])
        judgments = []
        for n in range(40):
            truth = rng.choice("ab")
            raters = {
                "good1": truth,
                "good2": truth if rng.random() < 0.9 else "b",
                "good3": truth if rng.random() < 0.9 else "a",
                "spam1": "b",
                "spam2": "b",
            }
            if n % 4 == 0:
                del raters["good3"]
            judgments += [
                {
                    "item_external_id": f"p-{n}",
                    "rater": rater,
                    "value": {"choice": choice, "strength": rng.choice((1, 2))},
                }
                for rater, choice in raters.items()
            ]
        import_judgments(pairs, judgments)
        fitted = item_labels(project=pairs, method="dawid_skene")
        majority = item_labels(project=pairs)
        overruled = [
            pk for pk in fitted if fitted[pk].value["choice"] != majority[pk].value["choice"]
        ]
        self.assertGreaterEqual(len(overruled), 3)  # the test exercises a real difference
        lines = {
            line["item_id"]: line
            for line in preference_export(
                project=pairs, method="dawid_skene", exclude_ties=False
            ).rows
        }
        for item in Item.objects.filter(project=pairs):
            label, line = fitted[item.pk], lines.pop(item.external_id)
            choice = label.value["choice"]
            self.assertEqual(
                line["chosen"],
                item.response_b if choice == "b" else item.response_a,
                item.external_id,
            )
            self.assertEqual(line["gap"], float(label.value.get("strength", 0)))
            self.assertEqual(
                (line["n_judgments"], line["agreement"]), (label.n_judgments, label.agreement)
            )
            self.assertEqual(line["label_source"], "dawid_skene")
        self.assertEqual(lines, {})

    def test_dawid_skene_keeps_an_evaluator_and_an_external_rater_with_the_same_id_apart(self):
        rng = random.Random(7)
        pairs = ProjectFactory(
            slug="ds-mixed", task_type=TaskType.PAIRWISE, languages=["de"], overlap=2
        )
        import_items(pairs, [pair_line(n) for n in range(30)])
        evaluators = [UserFactory() for _ in range(2)]
        # External raters whose ids are the evaluators' ids: one integer column must not merge them.
        for user in evaluators:
            ExternalRater.objects.create(
                pk=user.pk, project=pairs, external_id=f"same-id-{user.pk}"
            )
        import_judgments(
            pairs,
            [
                {
                    "item_external_id": f"p-{n}",
                    "rater": rater,
                    "value": {
                        "choice": rng.choice("ab") if rater != "steady" else "a",
                        "strength": 1,
                    },
                }
                for n in range(30)
                for rater in (*(f"same-id-{u.pk}" for u in evaluators), "steady")
            ],
        )
        for user in evaluators:
            evaluator_language_add(user=user, language=self.de)
            qualification_grant(project=pairs, evaluator=user, language=self.de, actor=self.lead)
            for _ in range(30):
                assignment = item_claim_next(evaluator=user, project=pairs)
                judgment_submit(
                    assignment=assignment,
                    evaluator=user,
                    value={"choice": rng.choice(("a", "b", "b", "tie")), "strength": 2},
                )
        fitted = item_labels(project=pairs, method="dawid_skene")
        lines = {
            line["item_id"]: line
            for line in preference_export(
                project=pairs, method="dawid_skene", exclude_ties=False
            ).rows
        }
        for item in Item.objects.filter(project=pairs):
            label, line = fitted[item.pk], lines.pop(item.external_id, None)
            if label.value["choice"] == "both_bad" or item.status == ItemStatus.ADJUDICATION:
                self.assertIsNone(line)  # never exported; held back until adjudicated
                continue
            self.assertEqual(line["tie"], label.value["choice"] == "tie", item.external_id)
            if not line["tie"]:
                self.assertEqual(
                    line["chosen"],
                    item.response_b if label.value["choice"] == "b" else item.response_a,
                    item.external_id,
                )
            self.assertEqual((line["n_judgments"], line["agreement"]), (5, label.agreement))
        self.assertEqual(lines, {})
        self.assertGreater(Item.objects.filter(project=pairs, status=ItemStatus.DONE).count(), 10)

    def test_a_fitted_choice_no_judgment_made_has_strength_1_and_no_agreement(self):
        label = item_label(
            rule=LabelRule(task_type=TaskType.PAIRWISE), votes=[("a", "2"), ("a", "1")], choice="b"
        )
        self.assertEqual(
            (label.value, label.agreement, label.source),
            ({"choice": "b", "strength": 1}, 0.0, "dawid_skene"),
        )
        fitted = FittedChoices(np.array([3, 8]), np.array([1, 0], dtype=np.int8), ("a", "b"))
        self.assertEqual(
            (fitted.get(3), fitted.get(8), fitted.get(5), fitted.get(9)), ("b", "a", None, None)
        )


class _FailingCursor:
    """A server-side cursor whose second fetch fails, as a dropped connection would."""

    def __init__(self, cursor):
        self.cursor, self.fetches = cursor, 0

    def __enter__(self):
        self.cursor.__enter__()
        return self

    def __exit__(self, *exc):
        return self.cursor.__exit__(*exc)

    def execute(self, *args):
        return self.cursor.execute(*args)

    def fetchmany(self, size):
        self.fetches += 1
        if self.fetches == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return self.cursor.fetchmany(size)


def _fetchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "parity-export-fetch"]


@pytest.mark.postgres  # the fetching thread runs on PostgreSQL only
class FetchingThreadTests(ApiTestCase):
    """On PostgreSQL a helper thread fetches the next chunk of rows while the export writes
    the current one; it must never outlive its export."""

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.pairs = ProjectFactory(
            slug="fetching", task_type=TaskType.PAIRWISE, languages=["de"], overlap=1
        )
        import_items(cls.pairs, [pair_line(n) for n in range(20)])
        import_judgments(cls.pairs, [line for n in range(20) for line in votes(f"p-{n}", "a")])

    def test_all_rows_arrive_in_mark_order_across_many_chunks(self):
        with mock.patch("annotation.exports.rows.CHUNK", 3):
            lines = list(preference_export(project=self.pairs).rows)
        self.assertEqual([line["item_id"] for line in lines], [f"p-{n}" for n in range(20)])
        self.assertEqual(_fetchers(), [])

    def test_a_client_that_goes_away_stops_the_thread_and_leaves_the_connection_usable(self):
        with mock.patch("annotation.exports.rows.CHUNK", 2):
            rows = preference_export(project=self.pairs).rows
            self.assertEqual(next(rows)["item_id"], "p-0")
            self.assertEqual(len(_fetchers()), 1)  # waiting to fetch ahead
            rows.close()
        self.assertEqual(_fetchers(), [])
        self.assertEqual(Item.objects.filter(project=self.pairs).count(), 20)

    def test_a_writer_closed_by_a_client_that_goes_away_stops_the_thread(self):
        with (
            mock.patch("annotation.exports.rows.CHUNK", 2),
            mock.patch("annotation.exports.writers.LINES_PER_WRITE", 1),
        ):
            stream = jsonl_stream(preference_export(project=self.pairs).rows)
            self.assertIn(b'"p-0"', next(stream))
            self.assertEqual(len(_fetchers()), 1)
            stream.close()  # what the server does with the response of a client that left
        self.assertEqual(_fetchers(), [])

    def test_an_error_while_labelling_stops_the_thread_before_the_transaction_ends(self):
        real = item_label
        labelled = []

        def failing(**kwargs):
            labelled.append(1)
            if len(labelled) == 5:
                raise ValueError("cannot label this item")
            return real(**kwargs)

        with (
            mock.patch("annotation.exports.rows.CHUNK", 2),
            mock.patch("annotation.exports.preferences.item_label", failing),
        ):
            with self.assertRaisesMessage(ValueError, "cannot label this item") as raised:
                list(preference_export(project=self.pairs).rows)
        # The exception and its traceback are still held here; the cleanup must not wait for them.
        self.assertIsNotNone(raised.exception)
        self.assertEqual(_fetchers(), [])
        with transaction.atomic():
            self.assertEqual(Item.objects.filter(project=self.pairs).count(), 20)

    def test_an_error_while_fetching_reaches_the_export_and_stops_the_thread(self):
        real = connection.chunked_cursor
        with (
            mock.patch("annotation.exports.rows.CHUNK", 2),
            mock.patch.object(connection, "chunked_cursor", lambda: _FailingCursor(real())),
        ):
            rows = preference_export(project=self.pairs).rows
            got = []
            with self.assertRaisesMessage(OperationalError, "server closed the connection"):
                for line in rows:
                    got.append(line["item_id"])
        self.assertEqual(got, ["p-0", "p-1"])  # the first chunk, then the error
        self.assertEqual(_fetchers(), [])


@pytest.mark.postgres
class RepeatedMarkingTests(ApiTestCase):
    def test_marking_keeps_working_once_its_statements_are_prepared(self):
        # Marking drops and re-creates a temporary table each time; past the prepare
        # threshold its statements run prepared, and must still see the new table.
        pairs = ProjectFactory(
            slug="many-pulls", task_type=TaskType.PAIRWISE, languages=["de"], overlap=1
        )
        for n in range(8):
            import_items(pairs, [pair_line(n)])
            import_judgments(pairs, votes(f"p-{n}", "a"))
            self.assertEqual(len(list(preference_export(project=pairs).rows)), n + 1)
        self.assertEqual(ExportMark.objects.filter(project=pairs).count(), 8)


def test_jsonl_stream_writes_every_row_once_in_order_across_writes():
    # More rows than one write holds, one of them beyond orjson (an integer over 64 bits).
    rows = [{"n": n, "text": "ሰላም\n世界"} for n in range(LINES_PER_WRITE * 2 + 3)]
    rows[LINES_PER_WRITE]["n"] = 2**70
    chunks = list(jsonl_stream(iter(rows)))
    assert len(chunks) == 3
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    lines = b"".join(chunks).decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert list(jsonl_stream(iter([]))) == []


class PullOptionTests(PairsExportCase):
    """The options of a pull: retractions, TRL columns, splits, signals, and refusals."""

    def retractions(self, query: str = "") -> tuple[int, list[str], str]:
        response = self.call(
            "get",
            f"/api/v1/projects/chat-pairs/export/preferences/retractions/{query}",
            token=self.export_token,
        )
        self.assertIn(response.status_code, (200, 204), getattr(response, "content", b"")[:300])
        body = b"".join(response.streaming_content) if response.status_code == 200 else b""
        return (
            response.status_code,
            [json.loads(line)["item_id"] for line in body.decode().splitlines()],
            response["X-Parity-Cursor"],
        )

    def test_a_flipped_label_comes_again_and_a_lost_qualification_is_retracted(self):
        _lines, cursor = self.lines("?min_agreement=0.9")
        self.assertEqual(self.retractions(f"?since={cursor}&min_agreement=0.9")[0], 204)
        # p-0 (a, a, a) gains two b votes: still a, but its agreement falls under the filter.
        import_judgments(self.pairs, votes("p-0", "b", "b", first=10))
        # p-1 (b, b, a) gains two a votes: the label flips to a.
        import_judgments(self.pairs, votes("p-1", "a", "a", first=10))
        lines, _ = self.lines(f"?since={cursor}")
        self.assertEqual(
            [(r["item_id"], r["chosen"]) for r in lines],
            [("p-0", "Antwort A0"), ("p-1", "Antwort A1")],
        )
        status, retracted, _ = self.retractions(f"?since={cursor}&min_agreement=0.9")
        self.assertEqual((status, retracted), (200, ["p-0", "p-1"]))
        self.assertEqual(self.lines(f"?since={cursor}&min_agreement=0.9")[0], [])

    def test_margin_only_when_asked_and_then_in_zero_one(self):
        rows = self.lines("?margin=scaled&include_ties=true")[0]
        self.assertEqual(
            {r["item_id"]: r["margin"] for r in rows},
            {"p-0": 1.0, "p-1": 1.0, "p-2": 0.0, "p-6": 1.0},
        )
        self.assertTrue(all("margin" not in r for r in self.lines()[0]))

    def test_the_split_is_deterministic_and_keeps_each_prompt_on_one_side(self):
        everything = {r["item_id"] for r in self.lines("?include_ties=true")[0]}
        train = {
            r["item_id"] for r in self.lines("?include_ties=true&split=train&test_fraction=0.5")[0]
        }
        test = {
            r["item_id"] for r in self.lines("?include_ties=true&split=test&test_fraction=0.5")[0]
        }
        self.assertEqual((train | test, train & test), (everything, set()))
        self.assertEqual(
            train,
            {
                r["item_id"]
                for r in self.lines("?include_ties=true&split=train&test_fraction=0.5")[0]
            },
        )

    def test_a_prompt_template_writes_the_prompt(self):
        row = self.lines(
            "?prompt_template="
            + "Q: {prompt}\nA:".replace("\n", "%0A")
            .replace(" ", "%20")
            .replace("{", "%7B")
            .replace("}", "%7D")
        )[0][0]
        self.assertEqual(row["prompt"], "Q: Frage 0?\nA:")

    def test_signals_carry_each_sides_reward_and_log_prob(self):
        Item.objects.filter(external_id="p-1").update(
            reward_a=0.1, reward_b=0.9, token_logprobs=[-1.0, -3.0]
        )
        row = next(r for r in self.lines("?signals=1")[0] if r["item_id"] == "p-1")
        self.assertEqual((row["reward_chosen"], row["reward_rejected"]), (0.9, 0.1))
        # The log-probs are response A's, the rejected side here.
        self.assertEqual((row["mean_logprob_chosen"], row["mean_logprob_rejected"]), (None, -2.0))

    def test_bad_options_are_refused_by_field(self):
        for query, field in (
            ("?shape=unpaired", "shape"),
            ("?pairs=all", "pairs"),
            ("?min_gap=1", "min_gap"),
            ("?prompt_template=nothing", "prompt_template"),
            ("?test_fraction=0.5", "test_fraction"),
            ("?split=dev", "split"),
            ("?margin=raw", "margin"),
            ("?threshold=3", "threshold"),
            ("?style=conversational&prompt_template=%7Bprompt%7D", "prompt_template"),
        ):
            with self.subTest(query=query):
                response = self.call(
                    "get",
                    f"/api/v1/projects/chat-pairs/export/preferences/{query}",
                    token=self.export_token,
                )
                self.assertErrors(response, 400, field=field)
        _lines, cursor = self.lines()
        response = self.call(
            "get",
            f"/api/v1/projects/chat-pairs/export/preferences/?method=dawid_skene&since={cursor}",
            token=self.export_token,
        )
        self.assertErrors(response, 400, field="since", contains="pull it in full")

    def test_the_command_writes_nothing_for_an_empty_pull_and_lists_retractions(self):
        _lines, cursor = self.lines()
        err = io.StringIO()
        with tempfile.TemporaryDirectory() as tmp:
            call_command(
                "export_preferences",
                "--project",
                "chat-pairs",
                "--since",
                cursor,
                "-o",
                f"{tmp}/p.jsonl",
                stderr=err,
            )
            self.assertFalse(Path(f"{tmp}/p.jsonl").exists())
            self.assertIn("no lines; nothing written", err.getvalue())
            import_judgments(self.pairs, votes("p-6", "a", "a", "a", "a", first=10))
            call_command(
                "export_preferences",
                "--project",
                "chat-pairs",
                "--since",
                cursor,
                "--retractions",
                "--min-agreement",
                "0.9",
                "-o",
                f"{tmp}/r.jsonl",
                stderr=io.StringIO(),
            )
            self.assertEqual(Path(f"{tmp}/r.jsonl").read_text(), '{"item_id":"p-6"}\n')


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

"""The per-language parity report and `python manage.py parity`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.agreement import parity_report
from annotation.demo_data import numbered
from annotation.imports import judgments_import
from annotation.models import Assignment, GoldAnswer, Item, Judgment, Selection, TaskType
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _items_with_scores(
    project, language, prefix: str, scores_per_item, *, selection=Selection.DIRECT, days: int = 10
) -> None:
    Item.objects.bulk_create(
        [
            ItemFactory.build(
                project=project, language=language, external_id=f"{prefix}{n}", selection=selection
            )
            for n in range(len(scores_per_item))
        ]
    )
    lines = []
    for n, scores in enumerate(scores_per_item):
        for k, score in enumerate(scores):
            created = START + timedelta(days=days * n / max(1, len(scores_per_item) - 1))
            lines.append(
                {
                    "item_external_id": f"{prefix}{n}",
                    "rater": f"{language.tag}-r{k}",
                    "value": {"score": score},
                    "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
    judgments_import(project=project, records=numbered(lines))


class ParityReportTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        rng = np.random.default_rng(1)
        # German: good outputs, raters agree. 30 items judged over ten days.
        de_truth = rng.integers(3, 6, 30)
        _items_with_scores(cls.project, cls.de, "de", [[int(t)] * 3 for t in de_truth])
        # Items an uncertainty selector picked: hard cases with low scores. They must not
        # drag German quality down.
        _items_with_scores(
            cls.project, cls.de, "de-hard", [[1, 1, 1]] * 10, selection=Selection.UNCERTAINTY
        )
        # Arabic: worse outputs, raters disagree at random.
        _items_with_scores(
            cls.project, cls.ar, "ar", [[int(x) for x in rng.integers(1, 5, 3)] for _ in range(30)]
        )
        cls.de_quality = float(np.mean(de_truth))
        # Honeypots in German: alice answers one of two right.
        for n, (gold, given) in enumerate(((5, 5), (1, 4))):
            item = ItemFactory(
                project=cls.project, language=cls.de, external_id=f"gold{n}", is_gold=True
            )
            GoldAnswer.objects.create(item=item, value={"score": gold})
            assignment = Assignment.objects.create(
                item=item,
                evaluator=cls.alice,
                project=cls.project,
                kind="honeypot",
                lease_expires_at=item.created_at,
            )
            Judgment.objects.create(
                item=item,
                assignment=assignment,
                evaluator=cls.alice,
                kind="honeypot",
                value={"score": given},
            )

    def setUp(self) -> None:
        self.report = parity_report(project=self.project, resamples=300)
        self.rows = {row["language"]: row for row in self.report["languages"]}

    def test_it_has_a_row_per_language_with_counts(self):
        self.assertEqual(list(self.rows), ["ar", "de", "zh"])
        de = self.rows["de"]
        self.assertEqual(
            (de["items"], de["items_judged"], de["judgments"], de["raters"]), (40, 40, 120, 3)
        )
        self.assertEqual(self.rows["zh"]["items"], 0)
        json.dumps(self.report)

    def test_it_estimates_quality_without_uncertainty_picked_items(self):
        de = self.rows["de"]
        self.assertAlmostEqual(de["quality"]["value"], self.de_quality)
        self.assertEqual(de["quality"]["items"], 30)
        lo, hi = de["quality"]["ci"]
        self.assertLess(lo, self.de_quality)
        self.assertLess(self.de_quality, hi)
        self.assertEqual(self.report["quality"]["measure"], "mean_rating")
        self.assertIn("not picked by an uncertainty selector", self.report["quality"]["items_used"])
        self.assertEqual(self.report["quality"]["items_excluded_uncertainty"], 10)

    def test_it_reports_agreement_per_language_on_all_production_items(self):
        de, ar = self.rows["de"], self.rows["ar"]
        self.assertEqual(de["alpha"], 1.0)  # every German item has three equal scores
        self.assertEqual(de["units"], 40)  # agreement uses every item, hard ones included
        self.assertLess(ar["alpha"], 0.3)
        self.assertLess(ar["ci"][0], ar["alpha"])

    def test_it_gives_the_gap_to_the_best_language_and_flags(self):
        self.assertEqual(self.report["best_language"], "de")
        self.assertEqual(self.rows["de"]["gap"], 0.0)
        self.assertAlmostEqual(
            self.rows["ar"]["gap"], self.de_quality - self.rows["ar"]["quality"]["value"]
        )
        self.assertEqual([f["code"] for f in self.rows["ar"]["flags"]], ["low_agreement"])
        self.assertEqual(self.rows["de"]["flags"], [])
        self.assertEqual([f["code"] for f in self.rows["zh"]["flags"]], ["no_agreement"])
        self.assertIsNone(self.rows["zh"]["gap"])

    def test_it_flags_languages_the_data_cannot_tell_apart(self):
        project = ProjectFactory(slug="close", task_type=TaskType.RATING, languages=["de", "ar"])
        _items_with_scores(project, self.de, "de", [[4, 4], [3, 3], [5, 5], [4, 4]])
        _items_with_scores(project, self.ar, "ar", [[4, 4], [3, 3], [4, 4], [4, 4]])
        rows = {
            r["language"]: r for r in parity_report(project=project, resamples=300)["languages"]
        }
        self.assertIn("indistinct", [f["code"] for f in rows["ar"]["flags"]])

    def test_it_reports_honeypot_accuracy_and_throughput(self):
        self.assertEqual(self.rows["de"]["honeypot"], {"accuracy": 0.5, "judged": 2})
        self.assertEqual(self.rows["ar"]["honeypot"], {"accuracy": None, "judged": 0})
        # 90 German judgments spread over ten days (the hard items' too).
        self.assertAlmostEqual(self.rows["de"]["judgments_per_day"], 120 / 10)
        self.assertEqual(self.rows["de"]["first_judgment_at"], START.isoformat())

    def test_it_ranks_models_by_mean_rating(self):
        Item.objects.filter(project=self.project, external_id__in=["de0", "de1"]).update(
            model="m-small"
        )
        Item.objects.filter(project=self.project, language=self.de).exclude(model="m-small").update(
            model="m-large"
        )
        rows = {
            r["language"]: r for r in parity_report(project=self.project, resamples=0)["languages"]
        }
        self.assertEqual({m["model"] for m in rows["de"]["models"]}, {"m-small", "m-large"})
        self.assertEqual([r["rank"] for r in rows["de"]["ranking"]], [1, 2])


class PairwiseParityTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.arena = ProjectFactory(
            slug="arena", task_type=TaskType.PAIRWISE, languages=["de", "ar"]
        )
        rng = np.random.default_rng(2)
        lines = []
        for language, p_win in ((cls.de, 0.85), (cls.ar, 0.4)):
            for n in range(40):
                # Half the items show our model on the left, half on the right.
                ours_left = n % 2 == 0
                ItemFactory(
                    project=cls.arena,
                    language=language,
                    external_id=f"{language.tag}{n}",
                    model_a="ours" if ours_left else "theirs",
                    model_b="theirs" if ours_left else "ours",
                )
                for k in range(3):
                    ours_wins = rng.random() < p_win
                    choice = "a" if ours_wins == ours_left else "b"
                    lines.append(
                        {
                            "item_external_id": f"{language.tag}{n}",
                            "rater": f"r{k}",
                            "value": {"choice": choice, "strength": 1},
                        }
                    )
        judgments_import(project=cls.arena, records=numbered(lines))

    def test_it_reports_the_win_rate_and_the_bradley_terry_ranking(self):
        report = parity_report(project=self.arena, resamples=300)
        self.assertEqual(report["quality"]["measure"], "win_rate")
        self.assertEqual(report["quality"]["focus_model"], "ours")
        rows = {r["language"]: r for r in report["languages"]}
        self.assertGreater(rows["de"]["quality"]["value"], 0.7)
        self.assertLess(rows["ar"]["quality"]["value"], 0.5)
        self.assertEqual(report["best_language"], "de")
        self.assertEqual([r["model"] for r in rows["de"]["ranking"]], ["ours", "theirs"])
        self.assertEqual([r["model"] for r in rows["ar"]["ranking"]], ["theirs", "ours"])
        self.assertNotIn("indistinct", [f["code"] for f in rows["ar"]["flags"]])


class ParityCommandTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        _items_with_scores(cls.project, cls.de, "de", [[4, 5, 4], [2, 2, 3], [5, 5, 5]])

    def test_it_prints_json_and_a_table(self):
        out = StringIO()
        call_command(
            "parity", "--project", self.project.slug, "--json", "--resamples", "100", stdout=out
        )
        report = json.loads(out.getvalue())
        self.assertEqual([r["language"] for r in report["languages"]], ["ar", "de", "zh"])
        out = StringIO()
        call_command("parity", "--project", self.project.slug, "--resamples", "100", stdout=out)
        table = out.getvalue()
        self.assertIn("mean_rating", table)
        self.assertRegex(table, r"\nde\s+3\s+9\s")

    def test_it_exits_non_zero_on_bad_arguments(self):
        with self.assertRaisesMessage(CommandError, "no project with slug 'nope'"):
            call_command("parity", "--project", "nope")
        with self.assertRaisesMessage(CommandError, "--resamples must be between 0 and 100000"):
            call_command("parity", "--project", self.project.slug, "--resamples", "-1")

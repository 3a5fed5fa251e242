"""Aggregating judgments into one label per item (crowd-kit), and Bradley–Terry ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
from django.core.exceptions import ValidationError

from annotation.agreement import bradley_terry, item_labels
from annotation.demo_data import numbered
from annotation.imports import judgments_import
from annotation.models import Assignment, FinalLabel, Item, Judgment, TaskType
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory


def _historical(project, lines) -> None:
    judgments_import(project=project, records=numbered(lines))


class DawidSkeneTests(ParityTestCase):
    """Two honest evaluators (75% right) and one adversary (wrong 90% of the time).

    Majority vote is right only when both honest evaluators are; Dawid–Skene learns the
    adversary's confusion matrix and reads their answers backwards.
    """

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.labels = ProjectFactory(slug="safety", task_type=TaskType.LABELS, languages=["de"])
        rng = np.random.default_rng(3)
        items = Item.objects.bulk_create(
            [
                ItemFactory.build(project=cls.labels, language=cls.de, external_id=f"x{n}")
                for n in range(300)
            ]
        )
        ids = dict(Item.objects.filter(project=cls.labels).values_list("external_id", "pk"))
        cls.truth = {}
        lines = []
        for n in range(len(items)):
            truth = ["acceptable", "unacceptable"][int(rng.integers(0, 2))]
            other = "unacceptable" if truth == "acceptable" else "acceptable"
            cls.truth[ids[f"x{n}"]] = truth
            for rater, right in (("honest-1", 0.75), ("honest-2", 0.75), ("adversary", 0.10)):
                label = truth if rng.random() < right else other
                lines.append(
                    {"item_external_id": f"x{n}", "rater": rater, "value": {"labels": [label]}}
                )
        _historical(cls.labels, lines)

    def _accuracy(self, labels) -> float:
        return float(
            np.mean([labels[pk].value["labels"][0] == truth for pk, truth in self.truth.items()])
        )

    def test_it_beats_majority_vote_with_one_adversarial_evaluator(self):
        majority = item_labels(project=self.labels, method="majority")
        dawid_skene = item_labels(project=self.labels, method="dawid_skene")
        self.assertEqual({label.source for label in majority.values()}, {"majority"})
        self.assertEqual({label.source for label in dawid_skene.values()}, {"dawid_skene"})
        mv, ds = self._accuracy(majority), self._accuracy(dawid_skene)
        self.assertLess(mv, 0.75)
        self.assertGreater(ds, 0.8)
        self.assertGreater(ds - mv, 0.15)


class ItemLabelTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.pairwise = ProjectFactory(
            slug="arena", task_type=TaskType.PAIRWISE, languages=["de", "ar"]
        )
        cls.p1 = ItemFactory(project=cls.pairwise, language=cls.de, external_id="p1")
        cls.p2 = ItemFactory(project=cls.pairwise, language=cls.ar, external_id="p2")
        _historical(
            cls.pairwise,
            [
                {"item_external_id": "p1", "rater": "r1", "value": {"choice": "a", "strength": 2}},
                {"item_external_id": "p1", "rater": "r2", "value": {"choice": "a", "strength": 2}},
                {"item_external_id": "p1", "rater": "r3", "value": {"choice": "b", "strength": 1}},
                {"item_external_id": "p2", "rater": "r1", "value": {"choice": "tie"}},
            ],
        )
        for n, scores in enumerate(([4, 5, 5], [1, 2, 4, 5])):
            ItemFactory(project=cls.project, language=cls.de, external_id=f"r{n}")
            _historical(
                cls.project,
                [
                    {"item_external_id": f"r{n}", "rater": f"x{k}", "value": {"score": s}}
                    for k, s in enumerate(scores)
                ],
            )
        cls.multi = ProjectFactory(
            slug="tags",
            task_type=TaskType.LABELS,
            languages=["de"],
            schema={"labels": ["fluent", "wrong_language", "unsafe"], "multi": True, "issues": []},
        )
        ItemFactory(project=cls.multi, language=cls.de, external_id="m1")
        _historical(
            cls.multi,
            [
                {"item_external_id": "m1", "rater": "a", "value": {"labels": ["fluent", "unsafe"]}},
                {"item_external_id": "m1", "rater": "b", "value": {"labels": ["fluent"]}},
                {"item_external_id": "m1", "rater": "c", "value": {"labels": ["fluent", "unsafe"]}},
            ],
        )

    def test_it_takes_the_majority_choice_with_its_strength(self):
        labels = item_labels(project=self.pairwise)
        label = labels[self.p1.pk]
        self.assertEqual(label.value, {"choice": "a", "strength": 2})
        self.assertAlmostEqual(label.agreement, 2 / 3)
        self.assertEqual((label.n_judgments, label.source), (3, "majority"))
        # One judgment: a label, but no agreement to speak of.
        self.assertEqual(labels[self.p2.pk].value, {"choice": "tie"})
        self.assertIsNone(labels[self.p2.pk].agreement)

    def test_it_filters_by_language_and_items(self):
        self.assertEqual(set(item_labels(project=self.pairwise, language="ar")), {self.p2.pk})
        self.assertEqual(
            set(item_labels(project=self.pairwise, item_ids=[self.p1.pk])), {self.p1.pk}
        )

    def test_it_takes_the_median_rating_and_keeps_the_mean(self):
        labels = item_labels(project=self.project)
        by_external = {
            self.project.items.get(pk=pk).external_id: label for pk, label in labels.items()
        }
        self.assertEqual(by_external["r0"].value, {"score": 5})
        self.assertAlmostEqual(by_external["r0"].mean, 14 / 3)
        # Agreement at the scale's level: 5, 5, 4 are (0 + 1 + 1) / 3 apart on a width of 4.
        self.assertAlmostEqual(by_external["r0"].agreement, 1 - (2 / 3) / 4)
        # Median of 1, 2, 4, 5 is 3, rounded half up to a scale point; they are 14 / 6 apart.
        self.assertEqual(by_external["r1"].value, {"score": 3})
        self.assertAlmostEqual(by_external["r1"].agreement, 1 - (14 / 6) / 4)

    def test_it_aggregates_each_label_of_a_multi_label_project(self):
        label = next(iter(item_labels(project=self.multi).values()))
        self.assertEqual(label.value, {"labels": ["fluent", "unsafe"]})
        self.assertAlmostEqual(label.agreement, 2 / 3)

    def test_it_lets_a_final_label_win(self):
        FinalLabel.objects.create(
            item=self.p1,
            value={"choice": "b", "strength": 1},
            decided_by=self.lead,
            reason="A mistranslates the negation.",
        )
        for method in ("majority", "dawid_skene"):
            label = item_labels(project=self.pairwise, method=method)[self.p1.pk]
            self.assertEqual((label.value, label.source), ({"choice": "b", "strength": 1}, "final"))
            self.assertAlmostEqual(label.agreement, 1 / 3)

    def test_it_ignores_honeypot_and_calibration_judgments(self):
        for kind, user in (("honeypot", self.alice), ("calibration", self.bashir)):
            assignment = Assignment.objects.create(
                item=self.p2,
                evaluator=user,
                project=self.pairwise,
                kind=kind,
                lease_expires_at=self.p2.created_at,
                calibration_attempt_id=1 if kind == "calibration" else None,
            )
            Judgment.objects.create(
                item=self.p2,
                assignment=assignment,
                evaluator=user,
                kind=kind,
                value={"choice": "a", "strength": 1},
            )
        label = item_labels(project=self.pairwise)[self.p2.pk]
        self.assertEqual((label.value, label.n_judgments), ({"choice": "tie"}, 1))

    def test_it_refuses_an_unknown_method(self):
        with self.assertRaisesMessage(
            ValidationError, "method must be one of majority, dawid_skene"
        ):
            item_labels(project=self.pairwise, method="vibes")
        with self.assertRaisesMessage(ValidationError, "ratings use method=majority"):
            item_labels(project=self.project, method="dawid_skene")


class BradleyTerryTests(ParityTestCase):
    def test_it_ranks_models_by_their_wins(self):
        rng = np.random.default_rng(0)
        strength = {"m-strong": 3.0, "m-mid": 1.0, "m-weak": 0.3}
        rows = []
        models = list(strength)
        for n in range(300):
            left, right = rng.choice(models, size=2, replace=False)
            p_left = strength[left] / (strength[left] + strength[right])
            rows.append((f"w{n % 5}", left, right, left if rng.random() < p_left else right))
        ranking = bradley_terry(
            pd.DataFrame.from_records(rows, columns=["worker", "left", "right", "label"])
        )
        self.assertEqual([r["model"] for r in ranking], ["m-strong", "m-mid", "m-weak"])
        self.assertEqual([r["rank"] for r in ranking], [1, 2, 3])
        self.assertEqual(sum(r["comparisons"] for r in ranking), 600)

    def test_it_needs_two_models(self):
        self.assertEqual(
            bradley_terry(pd.DataFrame(columns=["worker", "left", "right", "label"])), []
        )

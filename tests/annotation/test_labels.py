"""The one label rule (annotation.labels) and every caller of it agreeing."""

from __future__ import annotations

import random

import numpy as np
from django.test import SimpleTestCase

from active_learning.training import labels_collect
from annotation.adjudication import adjudication_needed
from annotation.agreement import item_labels, parity_report
from annotation.exports import preference_export
from annotation.labels import CHOICES, LabelRule, item_label, label_score, label_scores, votes_of
from annotation.models import Item, Judgment, TaskType
from annotation.progress import progress_report
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.factories import ProjectFactory

PAIRWISE = LabelRule(task_type=TaskType.PAIRWISE)


def pairwise(*choices: str, strengths: tuple[int, ...] = ()) -> list[tuple[str, int | None]]:
    return [(c, strengths[i] if i < len(strengths) else None) for i, c in enumerate(choices)]


class LabelRuleTests(SimpleTestCase):
    def test_it_takes_a_strict_majority_of_pairwise_choices_with_its_median_strength(self):
        label = item_label(rule=PAIRWISE, votes=pairwise("a", "a", "b", strengths=(2, 1, 2)))
        self.assertEqual(
            (label.value, label.decided, label.source),
            ({"choice": "a", "strength": 2}, True, "majority"),
        )
        self.assertAlmostEqual(label.agreement, 2 / 3)

    def test_it_calls_an_even_pairwise_split_an_undecided_tie(self):
        for votes in (
            pairwise("a", "b"),
            pairwise("a", "a", "b", "b"),
            pairwise("a", "b", "tie"),
            pairwise("a", "a", "b", "tie"),
        ):
            label = item_label(rule=PAIRWISE, votes=votes)
            self.assertEqual((label.value, label.decided), ({"choice": "tie"}, False), votes)

    def test_a_voted_tie_is_a_decided_tie(self):
        label = item_label(rule=PAIRWISE, votes=pairwise("tie", "tie", "a"))
        self.assertEqual((label.value, label.decided), ({"choice": "tie"}, True))

    def test_a_final_label_always_wins(self):
        label = item_label(
            rule=PAIRWISE, votes=pairwise("a", "b"), final={"choice": "b", "strength": 1}
        )
        self.assertEqual(
            (label.value, label.source, label.decided, label.agreement),
            ({"choice": "b", "strength": 1}, "final", True, 0.5),
        )
        self.assertEqual(item_label(rule=PAIRWISE, votes=[], final={"choice": "a"}).n_judgments, 0)
        self.assertIsNone(item_label(rule=PAIRWISE, votes=[]))

    def test_ratings_take_the_median_and_agree_by_distance_on_the_scale(self):
        rule = LabelRule(
            task_type=TaskType.RATING, scale=(0.0, 100.0), level="interval", rating_spread=30
        )
        label = item_label(rule=rule, votes=[(70, None), (80, None), (90, None)])
        self.assertEqual((label.value, label.mean, label.decided), ({"score": 80}, 80.0, True))
        # Mean pairwise distance (10 + 20 + 10) / 3 over a width of 100.
        self.assertAlmostEqual(label.agreement, 1 - (40 / 3) / 100)
        self.assertFalse(item_label(rule=rule, votes=[(10, None), (90, None)]).decided)
        # Half up: the median of 3 and 4 is 3.5, a 4.
        five = LabelRule(task_type=TaskType.RATING, scale=(1.0, 5.0), level="nominal")
        label = item_label(rule=five, votes=[("3", None), ("4", None)])
        self.assertEqual((label.value, label.agreement), ({"score": 4}, 0.5))

    def test_labels_need_a_strict_majority(self):
        single = LabelRule(task_type=TaskType.LABELS, labels=("fluent", "wrong_language"))
        label = item_label(rule=single, votes=[(("fluent",), None), (("wrong_language",), None)])
        self.assertEqual((label.value, label.decided), ({"labels": ["fluent"]}, False))
        multi = LabelRule(task_type=TaskType.LABELS, multi=True, labels=("x", "y", "z"))
        label = item_label(
            rule=multi, votes=[(("y", "x"), None), (("x",), None), (("x", "z"), None)]
        )
        self.assertEqual((label.value, label.decided), ({"labels": ["x"]}, True))
        label = item_label(rule=multi, votes=[(("y", "x"), None), (("x",), None)])
        self.assertEqual((label.value, label.decided), ({"labels": ["x"]}, False))

    def test_an_items_quality_score_is_read_off_its_label(self):
        five = LabelRule(task_type=TaskType.RATING, scale=(1.0, 5.0))
        # The mean beside the median: a 3/4 split is 3.5, not the label's 4.
        label = item_label(rule=five, votes=[(3, None), (4, None)])
        self.assertEqual((label.value, label_score(rule=five, label=label)), ({"score": 4}, 3.5))
        final = item_label(rule=five, votes=[(3, None), (4, None)], final={"score": 1})
        self.assertEqual(label_score(rule=five, label=final), 1.0)
        # Pairwise: a 2:1 majority is a win; an even split is a tie, half a win.
        for votes, score in (
            (pairwise("a", "a", "b"), 1.0),
            (pairwise("b", "b", "a"), 0.0),
            (pairwise("a", "b"), 0.5),
            (pairwise("a", "b", "tie"), 0.5),
            (pairwise("both_bad", "both_bad", "a"), 0.5),
        ):
            label = item_label(rule=PAIRWISE, votes=votes)
            self.assertEqual(label_score(rule=PAIRWISE, label=label), score, votes)
        labels = LabelRule(task_type=TaskType.LABELS, labels=("fluent", "broken"))
        label = item_label(rule=labels, votes=[(("fluent",), None), (("broken",), None)])
        self.assertEqual(label_score(rule=labels, label=label), 1.0)

    def test_the_array_form_scores_every_item_as_the_rule_does(self):
        """label_scores (the reports' vectorised path) against item_label item by item, on
        random votes with even splits and ties among them."""
        rng = random.Random(7)
        rules = {
            TaskType.RATING: LabelRule(task_type=TaskType.RATING, scale=(1.0, 5.0)),
            TaskType.PAIRWISE: PAIRWISE,
            "single": LabelRule(task_type=TaskType.LABELS, labels=("fluent", "broken", "x")),
            "multi": LabelRule(task_type=TaskType.LABELS, multi=True, labels=("x", "y", "z")),
        }
        for name, rule in rules.items():
            items, votes = [], []
            for n in range(400):
                k = rng.choice((1, 2, 2, 3, 4, 5))
                if rule.task_type == TaskType.RATING:
                    item_votes = [(rng.randint(1, 5), None) for _ in range(k)]
                elif rule.task_type == TaskType.PAIRWISE:
                    pool = ("a", "b") if n % 3 == 0 else ("a", "b", "tie", "both_bad")
                    item_votes = [(rng.choice(pool), rng.choice((1, 2))) for _ in range(k)]
                else:
                    item_votes = [
                        (
                            tuple(
                                rng.sample(
                                    rule.labels, 1 if name == "single" else rng.randint(0, 2)
                                )
                            ),
                            None,
                        )
                        for _ in range(k)
                    ]
                items.extend([n] * k)
                votes.extend(item_votes)
            item = np.array(items)
            order = np.random.default_rng(1).permutation(len(item))  # any order of votes
            if rule.task_type == TaskType.RATING:
                arrays = {"score": np.array([v[0] for v in votes], dtype=float)[order]}
            elif rule.task_type == TaskType.PAIRWISE:
                arrays = {"choice": np.array([CHOICES.index(v[0]) for v in votes])[order]}
            else:
                arrays = {"labels": [votes[k][0] for k in order]}
            got = label_scores(rule=rule, item=item[order], n_items=400, **arrays)
            for n in range(400):
                own = [v for i, v in zip(items, votes, strict=True) if i == n]
                want = label_score(rule=rule, label=item_label(rule=rule, votes=own))
                self.assertAlmostEqual(got[n], want, msg=f"{name} item {n}: {own}")


class OneRuleEverywhereTests(ApiTestCase):
    """The same votes, even splits included, through every caller: one answer."""

    def test_export_agreement_adjudication_active_learning_and_the_reports_agree(self):
        rng = random.Random(3)
        project = ProjectFactory(
            slug="one-rule", task_type=TaskType.PAIRWISE, languages=["de"], overlap=2
        )
        choices = ("a", "b", "tie", "both_bad")
        votes_by_item: dict[str, list[dict]] = {}
        lines = []
        for n in range(60):
            # Every fourth item an exact even split, the rest at random.
            picks = (
                ["a", "b"] * rng.choice((1, 2))
                if n % 4 == 0
                else [rng.choice(choices) for _ in range(rng.choice((2, 3, 4, 5)))]
            )
            values = [
                {"choice": c, "strength": rng.choice((1, 2))} if c in "ab" else {"choice": c}
                for c in picks
            ]
            votes_by_item[f"p-{n}"] = values
            lines.append(
                {
                    "external_id": f"p-{n}",
                    "language": "de",
                    "prompt": f"Q{n}",
                    "response_a": f"A{n}",
                    "response_b": f"B{n}",
                }
            )
        import_items(project, lines)
        for ext, values in votes_by_item.items():
            import_judgments(
                project,
                [
                    {"item_external_id": ext, "rater": f"r{k}", "value": v}
                    for k, v in enumerate(values)
                ],
            )
        rule = LabelRule.of(project)
        agreement_labels = item_labels(project=project)
        exported = {
            line["item_id"]: line
            for line in preference_export(project=project, exclude_ties=False).rows
        }
        trained = labels_collect(project=project, parameters={})
        trained_class = dict(
            zip(trained.item_ids, (trained.classes[k] for k in trained.y), strict=True)
        )
        splits = 0
        quality = []
        for item in Item.objects.filter(project=project):
            values = list(
                Judgment.objects.filter(item=item).order_by("id").values_list("value", flat=True)
            )
            want = item_label(rule=rule, votes=votes_of(rule.task_type, values))
            splits += not want.decided
            quality.append(label_score(rule=rule, label=want))
            got = agreement_labels[item.pk]
            self.assertEqual(
                (got.value, got.agreement, got.decided),
                (want.value, want.agreement, want.decided),
                item.external_id,
            )
            self.assertEqual(adjudication_needed(project=project, values=values), not want.decided)
            self.assertEqual(trained_class[item.pk], want.value["choice"])
            line = exported.get(item.external_id)
            if want.value["choice"] == "both_bad":
                self.assertIsNone(line)
                continue
            self.assertEqual(line["tie"], want.value["choice"] == "tie", item.external_id)
            if want.value["choice"] != "tie":
                self.assertEqual(
                    line["chosen"],
                    item.response_b if want.value["choice"] == "b" else item.response_a,
                )
        self.assertGreaterEqual(splits, 15)
        # The parity and progress reports average the same labels: side A's win rate is
        # the mean of the items' scores (an even split half a win), not of the votes.
        snapshot = parity_report(project=project, resamples=0)
        self.assertEqual(snapshot["quality"]["focus_model"], "A")
        self.assertAlmostEqual(snapshot["languages"][0]["quality"]["value"], np.mean(quality))
        progress = progress_report(project=project, by="period", resamples=0)
        (entry,) = progress["languages"][0]["series"]
        self.assertAlmostEqual(entry["value"], np.mean(quality))
        by_model = {
            e["key"]: e["value"]
            for e in progress_report(project=project, by="model", resamples=0)["languages"][0][
                "series"
            ]
        }
        self.assertAlmostEqual(by_model["A"], np.mean(quality))
        self.assertAlmostEqual(by_model["B"], 1 - np.mean(quality))

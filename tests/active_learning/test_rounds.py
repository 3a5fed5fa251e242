from __future__ import annotations

import io
import json
from unittest import mock

import numpy as np
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from active_learning.models import ModelVersion, RoundItem, RoundStatus, SelectionRound
from active_learning.rounds import round_execute, round_preview, round_request_clean
from active_learning.training import label_weights
from annotation.models import Item, ItemStatus, Selection, TaskType
from annotation.queue import items_enqueue
from tests.active_learning.data import ARABIC, GERMAN, historical_scores, pool_items
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory


def run(project, budget, strategy="parity", seed=0, **parameters):
    request = round_request_clean(
        project=project, budget=budget, strategy=strategy, seed=seed, parameters=parameters
    )
    return round_execute(request=request)


class RoundsTests(ParityTestCase):
    def setUp(self):
        self.de_items = pool_items(self.project, self.de, GERMAN * 3, prefix="de")
        # Repeated texts get distinct ids; their texts repeat on purpose.
        self.ar_items = pool_items(self.project, self.ar, ARABIC * 3, prefix="ar")

    def test_it_queues_the_selected_items_with_their_score_as_priority(self):
        selection_round = run(self.project, 20, seed=1)
        self.assertEqual(selection_round.status, RoundStatus.DONE)
        picked = list(RoundItem.objects.filter(round=selection_round))
        self.assertEqual(len(picked), 20)
        self.assertEqual(sum(a["total"] for a in selection_round.allocation.values()), 20)
        self.assertEqual(
            selection_round.allocation["zh"]["total"], 0
        )  # no qualified evaluator, no pool
        for row in picked:
            item = Item.objects.get(pk=row.item_id)
            self.assertEqual(item.status, ItemStatus.QUEUED)
            self.assertEqual(item.open_slots, self.project.overlap)
            self.assertAlmostEqual(item.priority, row.score)
            self.assertEqual(item.selection, row.selection)
        self.assertEqual(
            Item.objects.filter(project=self.project, status=ItemStatus.POOL).count(), 72 - 20
        )
        self.assertFalse(Item.objects.filter(status=ItemStatus.POOL, priority__gt=0).exists())

    def test_it_records_what_it_did_and_why(self):
        selection_round = run(self.project, 12, strategy="uniform", seed=3)
        self.assertEqual(selection_round.strategy, "uniform")
        self.assertEqual(selection_round.seed, 3)
        self.assertEqual(selection_round.parameters["features"], "hashing")
        self.assertIsNone(selection_round.model_version)  # no labels yet
        self.assertEqual(selection_round.summary["scorers"], ["min_logprob", "nll"])
        row = RoundItem.objects.filter(round=selection_round).first()
        self.assertEqual(set(row.components), {"nll", "min_logprob"})
        for part in row.components.values():
            self.assertGreater(part["pct"], 0)
            self.assertLessEqual(part["pct"], 1)

    def test_it_sends_the_most_uncertain_outputs(self):
        project = ProjectFactory(slug="uncertain", languages=["de"])
        confidences = [0.05] * 6 + [0.95] * 30
        texts = [f"Satz {i} über etwas anderes." for i in range(36)]
        items = pool_items(project, self.de, texts, prefix="u", confidences=confidences)
        selection_round = run(project, 6, strategy="uniform", evaluator_capacity=None, mix=1.0)
        picked = set(
            RoundItem.objects.filter(round=selection_round).values_list("item_id", flat=True)
        )
        self.assertEqual(picked, {item.pk for item in items[:6]})

    def test_it_marks_the_random_audit_slice(self):
        selection_round = run(self.project, 60, strategy="parity", evaluator_capacity=None)
        audit = RoundItem.objects.filter(round=selection_round, selection=Selection.AUDIT)
        self.assertGreaterEqual(audit.count(), 6)  # 10–15% of 60
        self.assertLessEqual(audit.count(), 9)
        self.assertEqual(
            Item.objects.filter(pk__in=audit.values("item_id"), selection=Selection.AUDIT).count(),
            audit.count(),
        )
        self.assertTrue(
            Item.objects.filter(selection=Selection.UNCERTAINTY, status=ItemStatus.QUEUED).exists()
        )

    def test_it_picks_the_same_items_for_the_same_seed(self):
        def picks(seed):
            with transaction.atomic():
                selection_round = run(self.project, 15, seed=seed)
                ids = list(
                    RoundItem.objects.filter(round=selection_round)
                    .order_by("item_id")
                    .values_list("item_id", "selection")
                )
                transaction.set_rollback(True)
            return ids

        self.assertEqual(picks(4), picks(4))
        self.assertNotEqual(picks(4), picks(5))  # the audit sample follows the seed

    def test_it_never_queues_two_identical_texts_in_a_language(self):
        selection_round = run(self.project, 24, strategy="uniform")
        for language in (self.de, self.ar):
            texts = list(
                Item.objects.filter(
                    pk__in=RoundItem.objects.filter(
                        round=selection_round, language=language
                    ).values("item_id")
                ).values_list("response", flat=True)
            )
            self.assertEqual(len(texts), 12)
            self.assertEqual(len(set(texts)), 12)

    def test_it_is_all_or_nothing(self):
        real = items_enqueue
        calls = []

        def fail_second(**kwargs):
            calls.append(kwargs["selection"])
            if len(calls) == 2:
                raise ValidationError("an item left the pool")
            return real(**kwargs)

        with (
            mock.patch("active_learning.rounds.items_enqueue", side_effect=fail_second),
            self.assertRaises(ValidationError),
        ):
            run(self.project, 20)
        self.assertEqual(calls, ["audit", "uncertainty"])
        self.assertEqual(SelectionRound.objects.count(), 0)
        self.assertEqual(RoundItem.objects.count(), 0)
        self.assertFalse(Item.objects.filter(status=ItemStatus.QUEUED).exists())

    def test_it_trains_a_committee_on_the_labels_and_stores_its_accuracy(self):
        labelled = {}
        for n, text in enumerate(GERMAN + ARABIC):
            language = self.de if n < len(GERMAN) else self.ar
            item = ItemFactory(
                project=self.project,
                language=language,
                external_id=f"done-{n}",
                response=text + (" kaputt" if n % 2 else " gut"),
                status=ItemStatus.DONE,
            )
            labelled[item.external_id] = [2, 1, 2] if n % 2 else [4, 5, 4]
        historical_scores(self.project, labelled)
        selection_round = run(self.project, 10)
        version = selection_round.model_version
        self.assertIsNotNone(version)
        self.assertEqual(version.n_labels, 24)
        self.assertEqual(version.classes, ["bad", "ok"])
        self.assertEqual(version.label_rule, {"task_type": "rating", "bad_below": 3.0})
        self.assertEqual(set(version.accuracy["languages"]), {"de", "ar"})
        self.assertIsNotNone(version.accuracy["overall"])
        self.assertIn("committee_vote_entropy", selection_round.summary["scorers"])
        # No new label: the next round reuses the version instead of retraining.
        again = run(self.project, 10)
        self.assertEqual(again.model_version_id, version.pk)
        self.assertEqual(ModelVersion.objects.count(), 1)

    def test_it_weighs_each_audit_item_by_the_part_of_the_pool_it_stands_for(self):
        project = ProjectFactory(slug="weights", languages=["de"])
        confidences = [0.5 + 0.49 * ((n * 7) % 40) / 40 for n in range(40)]
        pool_items(
            project,
            self.de,
            [f"Satz {n} über das Thema {n * 3}." for n in range(40)],
            prefix="w",
            confidences=confidences,
        )
        first = run(project, 20, strategy="parity", evaluator_capacity=None)
        share = first.allocation["de"]
        audit = list(
            RoundItem.objects.filter(round=first, selection="audit").values_list(
                "item_id", flat=True
            )
        )
        picked = list(
            RoundItem.objects.filter(round=first, selection="uncertainty").values_list(
                "item_id", flat=True
            )
        )
        self.assertGreaterEqual(len(audit), 2)
        weights = label_weights(project=project, item_ids=audit + picked)
        expected = (share["pool"] - share["uncertainty"]) / share["audit"]  # e.g. (40 − 17) ÷ 3
        np.testing.assert_allclose(weights[: len(audit)], expected)
        np.testing.assert_allclose(weights[len(audit) :], 1.0)
        # Judged, the labels train the committee with these weights and the quality model
        # with equal ones (the picks were chosen by its own features: no bias to undo), and
        # the next round ranks by the quality model.
        by_id = dict(Item.objects.filter(pk__in=audit + picked).values_list("pk", "external_id"))
        historical_scores(
            project,
            {
                by_id[pk]: [1, 2] if confidences[int(by_id[pk].split("-")[1])] < 0.75 else [4, 5]
                for pk in audit + picked
            },
        )
        second = run(project, 6, strategy="uniform", evaluator_capacity=None)
        version = second.model_version
        self.assertIsNotNone(version.quality_blob)
        self.assertEqual(version.quality["n_labels"], 20)
        self.assertTrue(version.parameters["weighted"])
        self.assertEqual(version.quality["weighting"], "none")
        self.assertTrue(second.summary["quality_model"])
        self.assertIn("predicted_bad", second.summary["scorers"])
        for row in RoundItem.objects.filter(round=second):
            # The quality model is the combination: the priority is its percentile.
            self.assertAlmostEqual(row.score, row.components["predicted_bad"]["pct"], places=5)
        self.assertEqual(
            set(second.summary["seconds"]),
            {"pool", "features", "committee", "scoring", "selection", "write", "total"},
        )

    def test_it_starts_cold_with_a_representative_batch(self):
        project = ProjectFactory(slug="cold", languages=["de"])
        pool_items(project, self.de, GERMAN * 2, prefix="c", with_logprobs=False)
        selection_round = run(project, 8, strategy="uniform", evaluator_capacity=None)
        self.assertEqual(selection_round.summary["cold_start_languages"], ["de"])
        self.assertEqual(selection_round.summary["scorers"], [])
        texts = Item.objects.filter(project=project, status=ItemStatus.QUEUED).values_list(
            "response", flat=True
        )
        self.assertEqual(len(set(texts)), 8)
        self.assertEqual(
            set(
                Item.objects.filter(project=project, status=ItemStatus.QUEUED).values_list(
                    "priority", flat=True
                )
            ),
            {0.5},
        )

    def test_it_scores_pairwise_items_by_their_reward_margin(self):
        project = ProjectFactory(slug="pairs", task_type=TaskType.PAIRWISE, languages=["de"])
        margins = [0.0, 0.1, 3.0, 4.0, 5.0, 6.0]
        for n, margin in enumerate(margins):
            ItemFactory(
                project=project,
                language=self.de,
                external_id=f"p{n}",
                response_a=f"Antwort A {n}",
                response_b=f"Antwort B {n}",
                reward_a=1.0 + margin,
                reward_b=1.0,
                status=ItemStatus.POOL,
                open_slots=0,
            )
        selection_round = run(project, 2, strategy="uniform", evaluator_capacity=None, mix=1.0)
        picked = set(
            Item.objects.filter(
                pk__in=RoundItem.objects.filter(round=selection_round).values("item_id")
            ).values_list("external_id", flat=True)
        )
        self.assertEqual(picked, {"p0", "p1"})
        self.assertEqual(selection_round.summary["scorers"], ["reward_margin"])

    def test_it_gives_more_to_the_language_whose_judged_quality_lags(self):
        judged = {}
        for n in range(8):
            for language, scores in ((self.de, [5, 5, 4]), (self.ar, [2, 1, 2])):
                item = ItemFactory(
                    project=self.project,
                    language=language,
                    external_id=f"j-{language.tag}-{n}",
                    response=f"Antwort {n} {language.tag}",
                    status=ItemStatus.DONE,
                    selection=Selection.AUDIT,
                )
                judged[item.external_id] = scores
        # Outputs picked for being uncertain say nothing about quality: bad ones here change nothing.
        for n in range(8):
            item = ItemFactory(
                project=self.project,
                language=self.de,
                external_id=f"u-{n}",
                response=f"Unsicher {n}",
                status=ItemStatus.DONE,
                selection=Selection.UNCERTAINTY,
            )
            judged[item.external_id] = [1, 1, 1]
        historical_scores(self.project, judged)
        request = round_request_clean(
            project=self.project,
            budget=30,
            strategy="parity",
            parameters={"evaluator_capacity": None},
        )
        parity = {a.tag: a for a in round_preview(request=request)}
        uniform = {
            a.tag: a
            for a in round_preview(
                request=round_request_clean(
                    project=self.project,
                    budget=30,
                    strategy="uniform",
                    parameters={"evaluator_capacity": None},
                )
            )
        }
        self.assertAlmostEqual(
            parity["de"].quality, (14 / 3 - 1) / 4, places=3
        )  # mean 4.67 on a 1–5 scale
        self.assertGreater(parity["ar"].total, uniform["ar"].total)
        self.assertGreater(parity["ar"].total, parity["de"].total)
        self.assertEqual(parity["zh"].total, 0)  # nothing in its pool

    def test_it_caps_each_language_by_its_evaluators(self):
        # One qualified evaluator, 200 judgments a round, overlap 3: 66 items at most in de and in ar.
        allocation = {
            a.tag: a
            for a in round_preview(
                request=round_request_clean(project=self.project, budget=30, strategy="uniform")
            )
        }
        self.assertEqual(allocation["de"].capacity, 66)
        self.assertEqual(allocation["zh"].capacity, 0)
        self.assertEqual(allocation["de"].evaluators, 1)
        with self.assertRaises(ValidationError) as caught:
            round_request_clean(
                project=self.project,
                budget=30,
                strategy="uniform",
                parameters={"evaluator_capacity": 20},
            )
        self.assertIn("qualified evaluators' capacity", str(caught.exception))


class RoundBadInputTests(ParityTestCase):
    def setUp(self):
        pool_items(self.project, self.de, GERMAN, prefix="de")

    def assertRefused(self, message, **kwargs):
        kwargs.setdefault("budget", 5)
        kwargs.setdefault("strategy", "uniform")
        with self.assertRaises(ValidationError) as caught:
            request = round_request_clean(project=kwargs.pop("project", self.project), **kwargs)
            round_execute(request=request)
        self.assertIn(message, " ".join(caught.exception.messages))
        self.assertEqual(SelectionRound.objects.count(), 0)
        self.assertFalse(Item.objects.filter(status=ItemStatus.QUEUED).exists())
        return caught.exception

    def test_it_refuses_a_budget_of_zero_or_less(self):
        self.assertRefused("budget must be at least 1, not 0", budget=0)
        self.assertRefused("budget must be at least 1, not -3", budget=-3)
        self.assertRefused("budget must be a whole number", budget=2.5)

    def test_it_refuses_a_budget_above_the_pool(self):
        error = self.assertRefused("the budget 13 is above the pool: 12 items wait", budget=13)
        self.assertEqual(list(error.message_dict), ["budget"])

    def test_it_refuses_an_unknown_strategy(self):
        self.assertRefused(
            "unknown strategy 'greedy'; use one of uniform, proportional, parity", strategy="greedy"
        )

    def test_it_refuses_a_project_with_no_items(self):
        empty = ProjectFactory(slug="empty", languages=["de"])
        self.assertRefused("project empty has no items; import items first", project=empty)

    def test_it_refuses_a_pool_that_is_empty(self):
        Item.objects.filter(project=self.project).update(status=ItemStatus.DONE)
        self.assertRefused("no items wait in the pool")

    def test_it_refuses_model_paths_that_do_not_exist(self):
        self.assertRefused(
            "encoder path '/nowhere/encoder' does not exist",
            parameters={"features": "encoder", "encoder_path": "/nowhere/encoder"},
        )
        self.assertRefused(
            "causal LM path '/nowhere/lm' does not exist",
            parameters={"causal_lm_path": "/nowhere/lm"},
        )
        with self.settings(PARITY_ENCODER_PATH=""):
            self.assertRefused("no encoder path is configured", parameters={"features": "encoder"})

    def test_it_refuses_unknown_parameters_and_scorers(self):
        self.assertRefused("unknown parameter 'colour'", parameters={"colour": "blue"})
        self.assertRefused("unknown scorer 'vibes'", parameters={"scorers": ["vibes"]})
        self.assertRefused("mix must be between 0.0 and 1.0", parameters={"mix": 2})

    def test_the_command_says_why_and_records_nothing(self):
        for args, message in (
            (["--budget", "0"], "budget must be at least 1"),
            (["--budget", "99"], "above the pool"),
            (["--budget", "3", "--strategy", "greedy"], "unknown strategy 'greedy'"),
            (
                ["--budget", "3", "--features", "encoder", "--encoder-path", "/nowhere"],
                "does not exist",
            ),
        ):
            with self.assertRaises(CommandError) as caught:
                call_command(
                    "al_round", "--project", self.project.slug, *args, stdout=io.StringIO()
                )
            self.assertIn("no round was run", str(caught.exception))
            self.assertIn(message, str(caught.exception))
        with self.assertRaisesMessage(CommandError, "no project with slug 'nope'"):
            call_command("al_round", "--project", "nope", "--budget", "3", stdout=io.StringIO())
        self.assertEqual(SelectionRound.objects.count(), 0)


class RoundCommandTests(ParityTestCase):
    def setUp(self):
        pool_items(self.project, self.de, GERMAN, prefix="de")
        pool_items(self.project, self.ar, ARABIC, prefix="ar")

    def test_it_previews_without_queueing(self):
        out = io.StringIO()
        call_command(
            "al_round",
            "--project",
            self.project.slug,
            "--budget",
            "10",
            "--preview",
            "--json",
            stdout=out,
        )
        payload = json.loads(out.getvalue())
        self.assertTrue(payload["preview"])
        self.assertEqual(sum(row["total"] for row in payload["allocation"].values()), 10)
        self.assertEqual(SelectionRound.objects.count(), 0)
        self.assertFalse(Item.objects.filter(status=ItemStatus.QUEUED).exists())
        out = io.StringIO()
        call_command(
            "al_round", "--project", self.project.slug, "--budget", "10", "--preview", stdout=out
        )
        self.assertIn("uncert.", out.getvalue())

    def test_it_runs_a_round_and_prints_the_selected_ids(self):
        out = io.StringIO()
        call_command(
            "al_round",
            "--project",
            self.project.slug,
            "--budget",
            "10",
            "--strategy",
            "proportional",
            "--seed",
            "2",
            "--json",
            stdout=out,
        )
        payload = json.loads(out.getvalue())
        self.assertEqual(payload["status"], "done")
        self.assertEqual(len(payload["selected_ids"]), 10)
        self.assertEqual(
            set(payload["selected_ids"]),
            set(Item.objects.filter(status=ItemStatus.QUEUED).values_list("pk", flat=True)),
        )
        out = io.StringIO()
        call_command("al_round", "--project", self.project.slug, "--budget", "4", stdout=out)
        self.assertIn("queued 4 items", out.getvalue())


class ItemsEnqueueTests(ParityTestCase):
    def test_it_moves_pool_items_to_the_queue_in_one_go(self):
        items = pool_items(self.project, self.de, GERMAN[:3], prefix="q")
        moved = items_enqueue(
            project=self.project,
            item_ids=[i.pk for i in items],
            priorities=[0.1, 0.9, 0.5],
            selection=Selection.UNCERTAINTY,
        )
        self.assertEqual(moved, 3)
        rows = dict(Item.objects.filter(pk__in=[i.pk for i in items]).values_list("pk", "priority"))
        self.assertEqual([rows[i.pk] for i in items], [0.1, 0.9, 0.5])
        self.assertEqual(
            set(
                Item.objects.filter(pk__in=[i.pk for i in items]).values_list(
                    "status", "open_slots", "selection"
                )
            ),
            {(ItemStatus.QUEUED, 3, Selection.UNCERTAINTY)},
        )

    def test_it_refuses_items_no_longer_in_the_pool(self):
        items = pool_items(self.project, self.de, GERMAN[:3], prefix="q")
        Item.objects.filter(pk=items[1].pk).update(status=ItemStatus.QUEUED)
        with (
            self.assertRaisesMessage(ValidationError, "1 of the 3 items are no longer in the pool"),
            transaction.atomic(),
        ):
            items_enqueue(
                project=self.project,
                item_ids=[i.pk for i in items],
                priorities=[1, 1, 1],
                selection="audit",
            )
        self.assertEqual(Item.objects.filter(status=ItemStatus.POOL).count(), 2)
        with self.assertRaisesMessage(ValidationError, "unknown selection"):
            items_enqueue(
                project=self.project, item_ids=[items[0].pk], priorities=[1], selection="vibes"
            )

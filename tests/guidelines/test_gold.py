from __future__ import annotations

from django.core.exceptions import ValidationError

from annotation.gold import gold_create, gold_matches, gold_promote
from annotation.imports import ImportRejected, items_import
from annotation.models import FinalLabel, GoldAnswer, Item, ItemStatus, TaskType
from annotation.schema import gold_tolerance_validate, schema_validate
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory

LABELS_SCHEMA = {"labels": ["fluent", "wrong_language", "offensive"], "multi": True}


class GoldMatchTests(ParityTestCase):
    def test_rating_tolerance_is_plus_or_minus_points(self):
        self.assertTrue(
            gold_matches(
                task_type="rating",
                gold_value={"score": 4},
                tolerance={"points": 1},
                value={"score": 5},
            )
        )
        self.assertFalse(
            gold_matches(
                task_type="rating",
                gold_value={"score": 4},
                tolerance={"points": 1},
                value={"score": 2},
            )
        )
        self.assertFalse(
            gold_matches(
                task_type="rating", gold_value={"score": 4}, tolerance={}, value={"score": 5}
            )
        )

    def test_pairwise_ties_count_only_when_configured(self):
        gold = {"choice": "a", "strength": 2}
        self.assertTrue(
            gold_matches(
                task_type="pairwise",
                gold_value=gold,
                tolerance={},
                value={"choice": "a", "strength": 1},
            )
        )
        self.assertFalse(
            gold_matches(
                task_type="pairwise", gold_value=gold, tolerance={}, value={"choice": "tie"}
            )
        )
        self.assertTrue(
            gold_matches(
                task_type="pairwise",
                gold_value=gold,
                tolerance={"tie_ok": True},
                value={"choice": "tie"},
            )
        )
        self.assertFalse(
            gold_matches(
                task_type="pairwise",
                gold_value=gold,
                tolerance={"tie_ok": True},
                value={"choice": "b", "strength": 1},
            )
        )

    def test_labels_need_the_exact_set_or_a_jaccard_overlap(self):
        gold = {"labels": ["fluent", "offensive"]}
        self.assertFalse(
            gold_matches(
                task_type="labels", gold_value=gold, tolerance={}, value={"labels": ["fluent"]}
            )
        )
        self.assertTrue(
            gold_matches(
                task_type="labels",
                gold_value=gold,
                tolerance={"jaccard": 0.5},
                value={"labels": ["fluent"]},
            )
        )
        self.assertFalse(
            gold_matches(
                task_type="labels",
                gold_value=gold,
                tolerance={"jaccard": 0.6},
                value={"labels": ["fluent"]},
            )
        )


class GoldCreateTests(ParityTestCase):
    def test_a_lead_creates_a_gold_item_from_scratch(self):
        gold = gold_create(
            project=self.project,
            external_id="g-1",
            language="ar",
            prompt="Translate: Hello",
            prompt_language="EN",
            response="مرحبا",
            value={"score": 5},
            tolerance={"points": 1},
            explanation="A faithful, fluent translation.",
            actor=self.lead,
        )
        item = gold.item
        self.assertEqual(item.metadata, {"prompt_language": "en"})
        self.assertTrue(item.is_gold)
        self.assertEqual(item.open_slots, 0)
        self.assertEqual(item.language, self.ar)
        self.assertEqual((gold.value, gold.tolerance), ({"score": 5}, {"points": 1}))
        self.assertEqual(GoldAnswer.objects.get(pk=gold.pk).created_by, self.lead)

    def test_it_refuses_a_gold_answer_outside_the_schema(self):
        cases = [
            (
                {"score": 9},
                {},
                "does not fit the project's schema: score: 9 is outside the scale 1–5",
            ),
            ({"choice": "a"}, {}, "score: a whole number is required"),
            ({"score": 4}, {"points": 7}, "tolerance.points: must be between 0 and 4"),
            ({"score": 4}, {"jaccard": 0.5}, "'jaccard' does not apply to a rating project"),
            ({"score": 4}, {"points": "one"}, "tolerance.points: must be a number"),
        ]
        for value, tolerance, message in cases:
            with (
                self.subTest(value=value, tolerance=tolerance),
                self.assertRaisesMessage(ValidationError, message),
            ):
                gold_create(
                    project=self.project,
                    external_id="g-bad",
                    language="de",
                    response="Text",
                    value=value,
                    tolerance=tolerance,
                    actor=self.lead,
                )
        with self.assertRaisesMessage(
            ValidationError, "prompt_language: 'english!' is not a valid BCP 47"
        ):
            gold_create(
                project=self.project,
                external_id="g-bad",
                language="de",
                response="Text",
                prompt_language="english!",
                value={"score": 3},
                actor=self.lead,
            )
        with self.assertRaisesMessage(ValidationError, "'fr' is not enabled for project mt-rating"):
            gold_create(
                project=self.project,
                external_id="g-bad",
                language="fr",
                response="Texte",
                value={"score": 3},
                actor=self.lead,
            )
        self.assertFalse(Item.objects.filter(external_id="g-bad").exists())

    def test_it_refuses_an_external_id_that_exists(self):
        ItemFactory(project=self.project, language=self.de, external_id="taken")
        with self.assertRaisesMessage(ValidationError, "an item 'taken' already exists"):
            gold_create(
                project=self.project,
                external_id="taken",
                language="de",
                response="x",
                value={"score": 3},
            )

    def test_labels_and_pairwise_tolerances_are_validated(self):
        labels = ProjectFactory(
            slug="labels-p",
            task_type=TaskType.LABELS,
            schema=schema_validate(task_type="labels", schema=LABELS_SCHEMA),
        )
        pairwise = ProjectFactory(
            slug="pair-p",
            task_type=TaskType.PAIRWISE,
            schema=schema_validate(task_type="pairwise", schema=None),
        )
        self.assertEqual(
            gold_tolerance_validate(
                task_type="labels", schema=labels.schema, tolerance={"jaccard": 0.5}
            ),
            {"jaccard": 0.5},
        )
        with self.assertRaisesMessage(
            ValidationError, "tolerance.jaccard: must be above 0 and at most 1"
        ):
            gold_tolerance_validate(
                task_type="labels", schema=labels.schema, tolerance={"jaccard": 1.5}
            )
        with self.assertRaisesMessage(ValidationError, "tolerance.tie_ok: must be true or false"):
            gold_tolerance_validate(
                task_type="pairwise", schema=pairwise.schema, tolerance={"tie_ok": "yes"}
            )
        with self.assertRaisesMessage(
            ValidationError, "labels: 'rude' not in the project's labels"
        ):
            gold_create(
                project=labels,
                external_id="l-1",
                language="de",
                response="Text",
                value={"labels": ["rude"]},
            )

    def test_an_import_line_with_a_bad_gold_tolerance_is_refused(self):
        line = {
            "external_id": "imp-1",
            "language": "de",
            "response": "Text",
            "gold": {"value": {"score": 3}, "tolerance": {"points": -1}},
        }
        with self.assertRaises(ImportRejected) as caught:
            items_import(project=self.project, records=[(1, line)])
        error = caught.exception.errors[0]
        self.assertEqual((error.line, error.field), (1, "gold.tolerance"))
        self.assertIn("must be between 0 and 4", error.message)
        self.assertFalse(Item.objects.filter(external_id="imp-1").exists())


class GoldPromoteTests(ParityTestCase):
    def test_an_adjudicated_item_becomes_gold_with_its_final_label(self):
        item = ItemFactory(project=self.project, language=self.de, status=ItemStatus.FINAL)
        FinalLabel.objects.create(
            item=item,
            value={"score": 2, "comment": "settled"},
            decided_by=self.lead,
            reason="Two said 2, one said 5.",
        )
        gold = gold_promote(
            item=item,
            explanation="Grammar errors cap it at 2.",
            tolerance={"points": 0},
            actor=self.lead,
        )
        item.refresh_from_db()
        self.assertTrue(item.is_gold)
        self.assertEqual(item.open_slots, 0)
        self.assertEqual(gold.value, {"score": 2})
        self.assertEqual(gold.explanation, "Grammar errors cap it at 2.")

    def test_it_refuses_an_item_without_a_final_label_or_already_gold(self):
        item = ItemFactory(project=self.project, language=self.de)
        with self.assertRaisesMessage(ValidationError, "has no final label yet"):
            gold_promote(item=item, explanation="x", actor=self.lead)
        item.refresh_from_db()
        self.assertFalse(item.is_gold)
        self.assertEqual(item.open_slots, 3)
        gold = gold_create(
            project=self.project, external_id="g", language="de", response="x", value={"score": 1}
        )
        with self.assertRaisesMessage(ValidationError, "gold already"):
            gold_promote(item=gold.item, explanation="x", actor=self.lead)

    def test_the_lead_page_promotes_and_creates(self):
        item = ItemFactory(
            project=self.project, language=self.de, status=ItemStatus.FINAL, external_id="adj-1"
        )
        FinalLabel.objects.create(item=item, value={"score": 4}, decided_by=self.lead, reason="r")
        self.client.force_login(self.lead)
        page = self.client.get("/p/mt-rating/lead/gold/")
        self.assertContains(page, "adj-1")
        response = self.client.post(
            "/p/mt-rating/lead/gold/promote/", {"item": item.pk, "explanation": "Why 4."}
        )
        self.assertRedirects(response, "/p/mt-rating/lead/gold/")
        self.assertTrue(GoldAnswer.objects.filter(item=item, value={"score": 4}).exists())
        response = self.client.post(
            "/p/mt-rating/lead/gold/",
            {
                "external_id": "new-gold",
                "language": "ar",
                "prompt": "Hello",
                "response": "مرحبا",
                "score": "9",
                "explanation": "x",
            },
        )
        self.assertContains(response, "9 is outside the scale 1–5", status_code=400)
        self.assertFalse(Item.objects.filter(external_id="new-gold").exists())
        response = self.client.post(
            "/p/mt-rating/lead/gold/",
            {
                "external_id": "new-gold",
                "language": "ar",
                "prompt": "Hello",
                "response": "مرحبا",
                "score": "5",
                "tolerance_points": "1",
                "explanation": "Faithful.",
            },
        )
        self.assertRedirects(response, "/p/mt-rating/lead/gold/")
        self.assertEqual(
            GoldAnswer.objects.get(item__external_id="new-gold").tolerance, {"points": 1}
        )

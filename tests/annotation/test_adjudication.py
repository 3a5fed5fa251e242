"""Adjudication: routing by the project rule, who may adjudicate, and the final label
flowing into item_labels and the preference export."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError

from annotation.adjudication import (
    adjudication_decide,
    adjudication_needed,
    adjudication_queue,
    adjudication_sweep,
)
from annotation.agreement import item_labels
from annotation.demo_data import numbered
from annotation.exports import preference_export
from annotation.imports import judgments_import
from annotation.models import AuditEvent, FinalLabel, Item, ItemStatus, TaskType
from annotation.qualification import evaluator_language_add, qualification_grant
from annotation.queue import item_claim_next, judgment_submit
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory, UserFactory


class AdjudicationRuleTests(ParityTestCase):
    def test_it_wants_a_strict_majority_of_choices_and_labels(self):
        pairwise = ProjectFactory(slug="duel", task_type=TaskType.PAIRWISE)
        a, b, tie = (
            {"choice": "a", "strength": 1},
            {"choice": "b", "strength": 1},
            {"choice": "tie"},
        )
        self.assertTrue(adjudication_needed(project=pairwise, values=[a, b]))
        self.assertTrue(adjudication_needed(project=pairwise, values=[a, b, tie]))
        self.assertFalse(adjudication_needed(project=pairwise, values=[a, a, b]))
        self.assertFalse(adjudication_needed(project=pairwise, values=[a]))
        labels = ProjectFactory(slug="safe", task_type=TaskType.LABELS)
        ok, bad = {"labels": ["acceptable"]}, {"labels": ["unacceptable"]}
        self.assertTrue(adjudication_needed(project=labels, values=[ok, bad]))
        self.assertFalse(adjudication_needed(project=labels, values=[ok, ok, bad]))

    def test_it_splits_multi_labels_label_by_label(self):
        multi = ProjectFactory(
            slug="multi",
            task_type=TaskType.LABELS,
            schema={"labels": ["fluent", "unsafe"], "multi": True, "issues": []},
        )
        self.assertTrue(
            adjudication_needed(
                project=multi, values=[{"labels": ["fluent"]}, {"labels": ["fluent", "unsafe"]}]
            )
        )
        self.assertFalse(adjudication_needed(project=multi, values=[{"labels": ["fluent"]}] * 2))

    def test_it_sends_ratings_by_their_spread_only_when_the_project_sets_one(self):
        values = [{"score": 1}, {"score": 3}]
        self.assertFalse(adjudication_needed(project=self.project, values=values))
        self.project.adjudication_rating_spread = 2
        self.assertFalse(adjudication_needed(project=self.project, values=values))
        self.project.adjudication_rating_spread = 1.5
        self.assertTrue(adjudication_needed(project=self.project, values=values))


class AdjudicationFlowTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.pairwise = ProjectFactory(
            slug="duel", task_type=TaskType.PAIRWISE, languages=["de", "ar"]
        )
        cls.pairwise.overlap = 2
        cls.pairwise.save()
        cls.pairwise.leads.add(cls.lead)
        cls.carla = UserFactory(username="carla")  # a second German evaluator
        cls.senior = UserFactory(username="senior")  # a senior German evaluator
        cls.senior_ar = UserFactory(username="senior-ar")
        for user in (cls.alice, cls.carla):
            evaluator_language_add(user=user, language=cls.de)
            qualification_grant(project=cls.pairwise, evaluator=user, language=cls.de)
        qualification_grant(
            project=cls.pairwise, evaluator=cls.senior, language=cls.de, is_senior=True
        )
        qualification_grant(
            project=cls.pairwise, evaluator=cls.senior_ar, language=cls.ar, is_senior=True
        )

    def _judge(self, item, choices) -> Item:
        for user, choice in zip((self.alice, self.carla), choices, strict=True):
            assignment = item_claim_next(evaluator=user, project=self.pairwise)
            self.assertEqual(assignment.item, item)
            value = (
                {"choice": choice, "strength": 1} if choice in ("a", "b") else {"choice": choice}
            )
            judgment_submit(assignment=assignment, evaluator=user, value=value)
        item.refresh_from_db()
        return item

    def test_it_routes_a_split_item_to_adjudication_when_its_judgments_are_in(self):
        item = self._judge(
            ItemFactory(project=self.pairwise, language=self.de, open_slots=2), ["a", "b"]
        )
        self.assertEqual(item.status, ItemStatus.ADJUDICATION)
        agreed = self._judge(
            ItemFactory(project=self.pairwise, language=self.de, open_slots=2), ["b", "b"]
        )
        self.assertEqual(agreed.status, ItemStatus.DONE)

    def test_it_queues_items_for_leads_and_senior_evaluators_of_that_language(self):
        item = self._judge(
            ItemFactory(project=self.pairwise, language=self.de, open_slots=2), ["a", "b"]
        )
        self.assertEqual(list(adjudication_queue(project=self.pairwise, user=self.lead)), [item])
        self.assertEqual(list(adjudication_queue(project=self.pairwise, user=self.senior)), [item])
        self.assertEqual(list(adjudication_queue(project=self.pairwise, user=self.senior_ar)), [])
        self.assertEqual(list(adjudication_queue(project=self.pairwise, user=self.alice)), [])

    def test_it_records_the_final_label_with_who_and_why(self):
        item = self._judge(
            ItemFactory(project=self.pairwise, language=self.de, open_slots=2), ["a", "b"]
        )
        final = adjudication_decide(
            item=item,
            user=self.senior,
            value={"choice": "b", "strength": 2},
            reason="A drops the negation in the second clause.",
        )
        item.refresh_from_db()
        self.assertEqual(item.status, ItemStatus.FINAL)
        self.assertEqual(
            (final.value, final.decided_by, final.reason),
            (
                {"choice": "b", "strength": 2},
                self.senior,
                "A drops the negation in the second clause.",
            ),
        )
        self.assertTrue(
            AuditEvent.objects.filter(
                verb="item.adjudicate", actor=self.senior, object_id=str(item.pk)
            ).exists()
        )
        with self.assertRaisesMessage(ValidationError, "not waiting for adjudication"):
            adjudication_decide(
                item=item, user=self.lead, value={"choice": "a", "strength": 1}, reason="no"
            )

    def test_it_refuses_anyone_but_leads_and_senior_evaluators_of_the_language(self):
        item = self._judge(
            ItemFactory(project=self.pairwise, language=self.de, open_slots=2), ["a", "b"]
        )
        for user in (self.alice, self.senior_ar, self.outsider):
            with self.subTest(user=user.username), self.assertRaises(PermissionDenied):
                adjudication_decide(
                    item=item, user=user, value={"choice": "a", "strength": 1}, reason="mine"
                )
        self.assertFalse(FinalLabel.objects.exists())

    def test_it_refuses_a_decision_without_a_reason_or_outside_the_schema(self):
        item = self._judge(
            ItemFactory(project=self.pairwise, language=self.de, open_slots=2), ["a", "b"]
        )
        with self.assertRaisesMessage(ValidationError, "reason: say why"):
            adjudication_decide(
                item=item, user=self.lead, value={"choice": "a", "strength": 1}, reason="  "
            )
        with self.assertRaisesMessage(ValidationError, "choice: must be one of"):
            adjudication_decide(item=item, user=self.lead, value={"choice": "c"}, reason="because")
        item.refresh_from_db()
        self.assertEqual(item.status, ItemStatus.ADJUDICATION)

    def test_it_sends_the_final_label_into_the_export_source(self):
        item = self._judge(
            ItemFactory(
                project=self.pairwise,
                language=self.de,
                open_slots=2,
                response_a="Ich habe keine Zeit.",
                response_b="Ich habe Zeit.",
            ),
            ["a", "b"],
        )
        # In adjudication, the item is not exported at all.
        self.assertEqual(list(preference_export(project=self.pairwise).rows), [])
        adjudication_decide(
            item=item,
            user=self.lead,
            value={"choice": "a", "strength": 2},
            reason="B drops 'keine'.",
        )
        label = item_labels(project=self.pairwise)[item.pk]
        self.assertEqual(
            (label.value, label.source, label.n_judgments),
            ({"choice": "a", "strength": 2}, "final", 2),
        )
        rows = list(preference_export(project=self.pairwise).rows)
        self.assertEqual(len(rows), 1)
        self.assertEqual(
            (rows[0]["chosen"], rows[0]["rejected"]), ("Ich habe keine Zeit.", "Ich habe Zeit.")
        )

    def test_it_sweeps_done_items_under_a_new_rule(self):
        ItemFactory(
            project=self.project,
            language=self.de,
            external_id="h1",
            status=ItemStatus.DONE,
            open_slots=0,
        )
        judgments_import(
            project=self.project,
            records=numbered(
                [
                    {"item_external_id": "h1", "rater": "r1", "value": {"score": 1}},
                    {"item_external_id": "h1", "rater": "r2", "value": {"score": 5}},
                ]
            ),
        )
        self.assertEqual(adjudication_sweep(project=self.project, actor=self.lead), 0)
        self.project.adjudication_rating_spread = 2
        self.project.save()
        self.assertEqual(adjudication_sweep(project=self.project, actor=self.lead), 1)
        self.assertEqual(Item.objects.get(external_id="h1").status, ItemStatus.ADJUDICATION)

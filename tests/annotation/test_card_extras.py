"""Issue 13, reading and judging: undo of the last submission (service invariants and the
card), progress on the card, label names from the schema, keys for issue tags, a slider
that says "not set"."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Item, ItemStatus, Judgment, TaskType
from annotation.qualification import qualification_grant
from annotation.queue import (
    UNDO_SECONDS,
    item_claim_next,
    judgment_revise,
    judgment_submit,
    judgment_undo,
)
from annotation.schema import schema_display_name, schema_validate
from tests.annotation.test_evaluator_pages import (
    HTMX,
    EvaluatorPagesTestCase,
    elements,
    submit_url,
    work_url,
)
from tests.factories import ItemFactory, ProjectFactory, UserFactory


def undo_url(assignment_id: int) -> str:
    return reverse("annotation:assignment_undo", args=[assignment_id])


class UndoServiceTests(EvaluatorPagesTestCase):
    def _submit(self, user, item_count: int = 2) -> tuple[Assignment, Judgment]:
        self.project.overlap = 1
        self.project.save(update_fields=["overlap"])
        if item_count:
            ItemFactory.create_batch(
                item_count, project=self.project, language=self.de, open_slots=1
            )
        assignment = item_claim_next(evaluator=user, project=self.project, language=self.de)
        judgment = judgment_submit(assignment=assignment, evaluator=user, value={"score": 4})
        return assignment, judgment

    def test_it_gives_the_slot_and_the_card_back_and_releases_the_next_lease(self):
        assignment, _ = self._submit(self.alice)
        item = Item.objects.get(pk=assignment.item_id)
        self.assertEqual(item.status, ItemStatus.DONE)  # k=1: this judgment completed it
        following = item_claim_next(evaluator=self.alice, project=self.project, language=self.de)
        slots_before = Item.objects.get(pk=following.item_id).open_slots

        judgment_undo(assignment=assignment, evaluator=self.alice)

        self.assertFalse(Judgment.objects.filter(assignment=assignment).exists())
        undone = Assignment.objects.get(pk=assignment.pk)
        self.assertEqual(undone.status, AssignmentStatus.LEASED)
        self.assertIsNone(undone.submitted_at)
        self.assertGreater(undone.lease_expires_at, timezone.now())
        item.refresh_from_db()
        self.assertEqual(
            (item.status, item.open_slots), (ItemStatus.QUEUED, 0)
        )  # held by the lease again
        # One live lease at a time: the card taken since is given back with its slot.
        self.assertFalse(Assignment.objects.filter(pk=following.pk).exists())
        self.assertEqual(Item.objects.get(pk=following.item_id).open_slots, slots_before + 1)
        self.assertEqual(
            Assignment.objects.filter(evaluator=self.alice, status=AssignmentStatus.LEASED).count(),
            1,
        )
        # And it can be submitted again: still never more than k judgments.
        judgment_submit(assignment=undone, evaluator=self.alice, value={"score": 2})
        self.assertEqual(Judgment.objects.filter(item=item, is_current=True).count(), 1)
        self.assertEqual(Item.objects.get(pk=item.pk).status, ItemStatus.DONE)

    def test_it_refuses_after_the_window_after_a_revision_and_for_someone_else(self):
        assignment, judgment = self._submit(self.alice)
        with self.assertRaises(PermissionDenied):
            judgment_undo(assignment=assignment, evaluator=self.bashir)
        late = judgment.created_at + timedelta(seconds=UNDO_SECONDS + 1)
        with self.assertRaisesMessage(ValidationError, "Too late to undo"):
            judgment_undo(assignment=assignment, evaluator=self.alice, now=late)
        judgment.item = Item.objects.get(pk=judgment.item_id)
        judgment_revise(judgment=judgment, evaluator=self.alice, value={"score": 5})
        with self.assertRaisesMessage(ValidationError, "Too late to undo"):
            judgment_undo(assignment=assignment, evaluator=self.alice)
        self.assertEqual(Judgment.objects.filter(assignment=assignment).count(), 2)
        self.assertEqual(
            Assignment.objects.get(pk=assignment.pk).status, AssignmentStatus.SUBMITTED
        )

    def test_it_refuses_once_the_item_went_on_to_adjudication_work_or_a_final_label(self):
        assignment, _ = self._submit(self.alice)
        Item.objects.filter(pk=assignment.item_id).update(status=ItemStatus.FINAL)
        with self.assertRaisesMessage(ValidationError, "Too late to undo"):
            judgment_undo(assignment=assignment, evaluator=self.alice)
        self.assertTrue(Judgment.objects.filter(assignment=assignment).exists())

    def test_a_leased_card_has_nothing_to_undo(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = item_claim_next(evaluator=self.alice, project=self.project, language=self.de)
        with self.assertRaisesMessage(ValidationError, "no submission of yours"):
            judgment_undo(assignment=assignment, evaluator=self.alice)


class UndoPageTests(EvaluatorPagesTestCase):
    def test_the_saved_notice_offers_undo_and_undo_brings_the_same_card_back_filled_in(self):
        ItemFactory.create_batch(2, project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        saved = self.client.post(
            submit_url(assignment.pk), {"score": "4", "comment": "fast", "language": "de"}, **HTMX
        )
        self.assertContains(saved, undo_url(assignment.pk))
        back = self.client.post(undo_url(assignment.pk), **HTMX)
        self.assertContains(back, f'data-assignment="{assignment.pk}"')
        self.assertContains(back, "Undone")
        checked = elements(back, tag="input", name="score", checked="")
        self.assertEqual([c["attrs"]["value"] for c in checked], ["4"])
        self.assertContains(back, ">fast</textarea>")
        again = self.client.post(undo_url(assignment.pk), **HTMX)
        self.assertContains(again, "no submission of yours", status_code=409)


class ProgressTests(EvaluatorPagesTestCase):
    def test_the_card_shows_done_today_and_left_in_this_language(self):
        ItemFactory.create_batch(3, project=self.project, language=self.de)
        assignment = self.claim(self.alice, self.project, "de")
        first = self.client.get(work_url(self.project, "de"))
        self.assertContains(first, "Done today: 0 · left in this language: 2")
        after = self.client.post(
            submit_url(assignment.pk), {"score": "3", "language": "de"}, **HTMX
        )
        self.assertContains(after, "Done today: 1 · left in this language: 1")
        arabic = self.client.get(work_url(self.project, "de"), HTTP_ACCEPT_LANGUAGE="ar")
        self.assertContains(arabic, "أُنجز اليوم: 1 · المتبقي في هذه اللغة: 1")

    def test_a_long_queue_is_counted_up_to_a_cap_and_read_no_further(self):
        from annotation.queue import selectors

        ItemFactory.create_batch(6, project=self.project, language=self.de)
        self.claim(self.alice, self.project, "de")
        with mock.patch.object(selectors, "LEFT_COUNT_CAP", 3):
            card = self.client.get(work_url(self.project, "de"))
            self.assertContains(card, "left in this language: 3+")
            capped = selectors.evaluator_progress(
                evaluator=self.alice, project=self.project, language=self.de
            )
        self.assertEqual((capped.left, capped.more), (3, True))
        with mock.patch.object(selectors, "LEFT_COUNT_CAP", 5):
            exact = selectors.evaluator_progress(
                evaluator=self.alice, project=self.project, language=self.de
            )
        # Six items, one claimed by alice: five left, exactly the cap, not "5+".
        self.assertEqual((exact.left, exact.more, exact.left_shown), (5, False, "5"))


class LabelNameTests(EvaluatorPagesTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.named = ProjectFactory(
            slug="named-labels",
            task_type=TaskType.LABELS,
            languages=["de"],
            schema=schema_validate(
                task_type=TaskType.LABELS,
                schema={
                    "labels": [
                        {
                            "id": "minor_issues",
                            "name": {"en": "Some small problems", "de": "Kleine Mängel"},
                        },
                        "wrong_language",
                    ],
                    "issues": [
                        {"id": "code_switching", "name": "Switches language"},
                        "mistranslation",
                    ],
                },
            ),
        )
        cls.dora = UserFactory(username="dora")
        qualification_grant(project=cls.named, evaluator=cls.dora, language=cls.de, actor=cls.lead)

    def test_the_schema_keeps_plain_ids_and_names_them(self):
        schema = self.named.schema
        self.assertEqual(schema["labels"], ["minor_issues", "wrong_language"])
        self.assertEqual(
            schema_display_name(schema=schema, field="labels", value="minor_issues", language="de"),
            "Kleine Mängel",
        )
        self.assertEqual(
            schema_display_name(
                schema=schema, field="labels", value="wrong_language", language="de"
            ),
            "Wrong language",
        )
        with self.assertRaisesMessage(ValidationError, "not one of the ids"):
            schema_validate(
                task_type=TaskType.LABELS, schema={"labels": ["a", "b"], "label_names": {"c": "C"}}
            )

    def test_the_card_shows_names_sends_ids_and_gives_issue_tags_keys(self):
        ItemFactory(project=self.named, language=self.de)
        self.claim(self.dora, self.named, "de")
        card = self.client.get(work_url(self.named, "de"))
        self.assertContains(card, "<bdi>Some small problems</bdi>")
        self.assertContains(card, "<bdi>Wrong language</bdi>")
        self.assertNotContains(card, "<bdi>minor_issues</bdi>")
        self.assertContains(card, "<bdi>Switches language</bdi>")
        issues = elements(card, tag="input", name="issues")
        self.assertEqual(
            [(i["attrs"]["value"], i["attrs"].get("data-issue-key")) for i in issues],
            [("code_switching", "1"), ("mistranslation", "2")],
        )


class SliderTests(EvaluatorPagesTestCase):
    def test_a_long_scale_says_not_set_until_a_score_is_given(self):
        wide = ProjectFactory(
            slug="wide",
            task_type=TaskType.RATING,
            languages=["de"],
            schema=schema_validate(
                task_type=TaskType.RATING, schema={"scale": {"min": 0, "max": 100}}
            ),
        )
        qualification_grant(project=wide, evaluator=self.alice, language=self.de, actor=self.lead)
        ItemFactory(project=wide, language=self.de)
        self.claim(self.alice, wide, "de")
        card = self.client.get(work_url(wide, "de"))
        unset = elements(card, tag="span", cls="score-unset")
        self.assertEqual(len(unset), 1)
        self.assertNotIn("hidden", unset[0]["attrs"])
        self.assertContains(card, "not set")


@pytest.mark.postgres
class CardProgressPlanTests(EvaluatorPagesTestCase):
    def test_todays_count_reads_a_range_of_the_index_not_every_submission(self):
        """An evaluator with a year of judgments in the project: the card counts today's
        from the index, not by reading each of them."""
        from annotation.queue import sql

        today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # the plan of a large table
            cursor.execute(
                "EXPLAIN " + sql.PROGRESS.format(cap=101),
                {
                    "evaluator": self.alice.pk,
                    "project": self.project.pk,
                    "since": today,
                    "language": self.de.pk,
                },
            )
            plan = "\n".join(row[0] for row in cursor.fetchall())
        self.assertRegex(plan, r"Index Cond: .*submitted_at >=")

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, OperationalError, transaction
from django.test import TransactionTestCase
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentStatus,
    Item,
    ItemStatus,
    Judgment,
    SkipReason,
    TaskType,
)
from annotation.qualification import qualification_grant
from annotation.queue import (
    NotQualified,
    assignment_skip,
    item_claim_next,
    judgment_history,
    judgment_revise,
    judgment_submit,
    queue_counts,
    queue_expire_leases,
)
from annotation.queue import db as queue_db
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory, UserFactory, language


class QueueRoutingTests(ParityTestCase):
    def test_it_routes_only_items_in_qualified_languages(self):
        ItemFactory(project=self.project, language=self.ar, external_id="ar-1")
        de_item = ItemFactory(project=self.project, language=self.de, external_id="de-1")
        assignment = item_claim_next(evaluator=self.alice, project=self.project)
        self.assertEqual(assignment.item, de_item)
        # Alice has no other German item: the Arabic one is never offered to her.
        judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 3})
        self.assertIsNone(item_claim_next(evaluator=self.alice, project=self.project))

    def test_it_refuses_an_unqualified_evaluator(self):
        ItemFactory(project=self.project, language=self.de)
        with self.assertRaises(NotQualified):
            item_claim_next(evaluator=self.outsider, project=self.project)
        with self.assertRaisesMessage(NotQualified, "not qualified for Arabic"):
            item_claim_next(evaluator=self.alice, project=self.project, language=self.ar)
        self.assertFalse(Assignment.objects.exists())

    def test_it_serves_higher_priority_first(self):
        ItemFactory(project=self.project, language=self.de, priority=0.1, external_id="low")
        high = ItemFactory(project=self.project, language=self.de, priority=0.9, external_id="high")
        self.assertEqual(item_claim_next(evaluator=self.alice, project=self.project).item, high)

    def test_it_resumes_the_live_lease_instead_of_claiming_another(self):
        ItemFactory.create_batch(2, project=self.project, language=self.de)
        first = item_claim_next(evaluator=self.alice, project=self.project)
        again = item_claim_next(evaluator=self.alice, project=self.project)
        self.assertEqual(first.pk, again.pk)
        self.assertEqual(Assignment.objects.count(), 1)

    def test_queue_counts_show_waiting_items_per_qualified_language(self):
        ItemFactory.create_batch(3, project=self.project, language=self.de)
        ItemFactory.create_batch(2, project=self.project, language=self.ar)
        counts = {
            c.language.tag: c.waiting
            for c in queue_counts(evaluator=self.alice, project=self.project)
        }
        self.assertEqual(counts, {"de": 3})


class OverlapTests(ParityTestCase):
    def test_it_never_gives_more_than_k_production_judgments(self):
        item = ItemFactory(project=self.project, language=self.de)
        evaluators = [UserFactory() for _ in range(4)]
        for ev in evaluators:
            qualification_grant(project=self.project, evaluator=ev, language=self.de)
        served = []
        for ev in evaluators:
            a = item_claim_next(evaluator=ev, project=self.project)
            if a:
                judgment_submit(assignment=a, evaluator=ev, value={"score": 4})
                served.append(ev)
        self.assertEqual(len(served), 3)
        item.refresh_from_db()
        self.assertEqual(item.open_slots, 0)
        self.assertEqual(item.status, ItemStatus.DONE)
        self.assertEqual(Judgment.objects.filter(item=item, kind="production").count(), 3)

    def test_the_database_refuses_negative_slots_and_a_second_assignment(self):
        item = ItemFactory(project=self.project, language=self.de)
        with self.assertRaises(IntegrityError), transaction.atomic():
            Item.objects.filter(pk=item.pk).update(open_slots=-1)
        item_claim_next(evaluator=self.alice, project=self.project)
        with self.assertRaises(IntegrityError), transaction.atomic():
            Assignment.objects.create(
                item=item,
                evaluator=self.alice,
                project=self.project,
                lease_expires_at=timezone.now(),
            )


class LeaseTests(ParityTestCase):
    def test_an_expired_lease_gives_its_slot_back(self):
        item = ItemFactory(project=self.project, language=self.de)
        a = item_claim_next(evaluator=self.alice, project=self.project)
        item.refresh_from_db()
        self.assertEqual(item.open_slots, 2)
        Assignment.objects.filter(pk=a.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        self.assertEqual(queue_expire_leases(project=self.project), 1)
        item.refresh_from_db()
        a.refresh_from_db()
        self.assertEqual(item.open_slots, 3)
        self.assertEqual(a.status, AssignmentStatus.EXPIRED)
        # Running it again changes nothing.
        self.assertEqual(queue_expire_leases(project=self.project), 0)

    def test_a_late_submit_is_kept_when_the_slot_is_still_free(self):
        item = ItemFactory(project=self.project, language=self.de)
        a = item_claim_next(evaluator=self.alice, project=self.project)
        Assignment.objects.filter(pk=a.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        queue_expire_leases()
        judgment_submit(assignment=a, evaluator=self.alice, value={"score": 5})
        item.refresh_from_db()
        self.assertEqual(item.open_slots, 2)

    def test_a_late_submit_is_refused_when_the_slot_went_to_someone_else(self):
        item = ItemFactory(project=self.project, language=self.de, open_slots=1)
        a = item_claim_next(evaluator=self.alice, project=self.project)
        Assignment.objects.filter(pk=a.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        other = UserFactory()
        qualification_grant(project=self.project, evaluator=other, language=self.de)
        b = item_claim_next(evaluator=other, project=self.project)  # expires Alice's lease first
        self.assertEqual(b.item, item)
        with self.assertRaisesMessage(ValidationError, "went to another evaluator"):
            judgment_submit(assignment=a, evaluator=self.alice, value={"score": 5})
        self.assertFalse(Judgment.objects.filter(assignment=a).exists())

    def test_a_claim_gives_back_its_own_projects_expired_slots_and_no_other_projects(self):
        mine = ItemFactory(project=self.project, language=self.de, open_slots=1)
        elsewhere = ProjectFactory(languages=["de"])
        theirs = ItemFactory(project=elsewhere, language=self.de, open_slots=1)
        qualification_grant(project=elsewhere, evaluator=self.alice, language=self.de)
        stale = [
            item_claim_next(evaluator=self.alice, project=p) for p in (self.project, elsewhere)
        ]
        Assignment.objects.filter(pk__in=[a.pk for a in stale]).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        other = UserFactory()
        qualification_grant(project=self.project, evaluator=other, language=self.de)
        self.assertEqual(item_claim_next(evaluator=other, project=self.project).item, mine)
        statuses = dict(
            Assignment.objects.filter(pk__in=[a.pk for a in stale]).values_list("item_id", "status")
        )
        self.assertEqual(
            statuses, {mine.pk: AssignmentStatus.EXPIRED, theirs.pk: AssignmentStatus.LEASED}
        )
        theirs.refresh_from_db()
        self.assertEqual(theirs.open_slots, 0)


class SkipTests(ParityTestCase):
    def test_skip_records_the_reason_returns_the_slot_and_never_reoffers(self):
        item = ItemFactory(project=self.project, language=self.de)
        a = item_claim_next(evaluator=self.alice, project=self.project)
        assignment_skip(assignment=a, evaluator=self.alice, reason=SkipReason.NOT_MY_DIALECT)
        item.refresh_from_db()
        self.assertEqual(item.open_slots, 3)
        self.assertEqual(Assignment.objects.get(pk=a.pk).skip_reason, "not_my_dialect")
        self.assertIsNone(item_claim_next(evaluator=self.alice, project=self.project))

    def test_skip_without_a_known_reason_is_refused(self):
        ItemFactory(project=self.project, language=self.de)
        a = item_claim_next(evaluator=self.alice, project=self.project)
        with self.assertRaisesMessage(ValidationError, "Choose a skip reason"):
            assignment_skip(assignment=a, evaluator=self.alice, reason="bored")
        self.assertEqual(Assignment.objects.get(pk=a.pk).status, AssignmentStatus.LEASED)


class SubmitTests(ParityTestCase):
    def setUp(self):
        self.item = ItemFactory(project=self.project, language=self.de)
        self.assignment = item_claim_next(evaluator=self.alice, project=self.project)

    def test_a_value_outside_the_schema_is_refused_and_nothing_changes(self):
        with self.assertRaisesMessage(ValidationError, "score: 9 is outside the scale 1–5"):
            judgment_submit(assignment=self.assignment, evaluator=self.alice, value={"score": 9})
        with self.assertRaisesMessage(
            ValidationError, "issues: 'nonsense' not in the project's issue tags"
        ):
            judgment_submit(
                assignment=self.assignment,
                evaluator=self.alice,
                value={"score": 3, "issues": ["nonsense"]},
            )
        self.assertFalse(Judgment.objects.exists())
        self.assertEqual(
            Assignment.objects.get(pk=self.assignment.pk).status, AssignmentStatus.LEASED
        )

    def test_a_second_submit_on_the_same_assignment_is_refused(self):
        judgment_submit(assignment=self.assignment, evaluator=self.alice, value={"score": 3})
        with self.assertRaisesMessage(ValidationError, "already submitted"):
            judgment_submit(assignment=self.assignment, evaluator=self.alice, value={"score": 4})
        self.assertEqual(Judgment.objects.get().value, {"score": 3})

    def test_another_evaluators_assignment_is_refused(self):
        with self.assertRaisesMessage(PermissionDenied, "not yours"):
            judgment_submit(assignment=self.assignment, evaluator=self.bashir, value={"score": 3})
        self.assertFalse(Judgment.objects.exists())

    def test_time_on_task_and_guideline_version_are_recorded(self):
        self.project.guideline_version = ""
        judgment = judgment_submit(
            assignment=self.assignment, evaluator=self.alice, value={"score": 3}, seconds=12.5
        )
        self.assertEqual(judgment.seconds, 12.5)

    def test_too_fast_judgments_are_flagged_by_reading_speed(self):
        self.project.max_chars_per_second = 10
        self.project.save()
        shown = len(self.item.shown_text)
        judgment = judgment_submit(
            assignment=self.assignment,
            evaluator=self.alice,
            value={"score": 3},
            seconds=shown / 10 / 2,
        )
        self.assertTrue(judgment.too_fast)


class RevisionTests(ParityTestCase):
    def test_revise_keeps_every_revision(self):
        ItemFactory(project=self.project, language=self.de)
        a = item_claim_next(evaluator=self.alice, project=self.project)
        first = judgment_submit(assignment=a, evaluator=self.alice, value={"score": 2})
        second = judgment_revise(
            judgment=first, evaluator=self.alice, value={"score": 4, "comment": "misread"}
        )
        history = list(judgment_history(judgment=second))
        self.assertEqual(
            [(j.revision, j.value["score"], j.is_current) for j in history],
            [(1, 2, False), (2, 4, True)],
        )
        with self.assertRaises(PermissionDenied):
            judgment_revise(judgment=second, evaluator=self.bashir, value={"score": 1})


class MultiLanguageTests(ParityTestCase):
    def setUp(self):
        qualification_grant(
            project=self.project, evaluator=self.alice, language=self.zh, actor=self.lead
        )

    def test_it_serves_the_highest_priority_across_all_the_evaluators_languages(self):
        de_low = ItemFactory(
            project=self.project, language=self.de, priority=0.2, external_id="de-low"
        )
        zh_high = ItemFactory(
            project=self.project, language=self.zh, priority=0.9, external_id="zh-high"
        )
        de_mid = ItemFactory(
            project=self.project, language=self.de, priority=0.5, external_id="de-mid"
        )
        ItemFactory(project=self.project, language=self.ar, priority=1.0, external_id="ar-top")
        served = []
        while (
            assignment := item_claim_next(evaluator=self.alice, project=self.project)
        ) is not None:
            served.append(assignment.item)
            judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 3})
        self.assertEqual(served, [zh_high, de_mid, de_low])

    def test_it_claims_in_the_asked_language_only(self):
        ItemFactory(project=self.project, language=self.zh, priority=0.9, external_id="zh")
        de_item = ItemFactory(
            project=self.project, language=self.de, priority=0.1, external_id="de"
        )
        self.assertEqual(
            item_claim_next(evaluator=self.alice, project=self.project, language=self.de).item,
            de_item,
        )

    def test_a_live_lease_in_another_language_neither_blocks_nor_is_lost(self):
        de_item = ItemFactory(project=self.project, language=self.de, external_id="de")
        zh_item = ItemFactory(project=self.project, language=self.zh, external_id="zh")
        de_lease = item_claim_next(evaluator=self.alice, project=self.project, language=self.de)
        zh_lease = item_claim_next(evaluator=self.alice, project=self.project, language=self.zh)
        self.assertEqual((de_lease.item, zh_lease.item), (de_item, zh_item))
        # Coming back to German resumes the German lease.
        self.assertEqual(
            item_claim_next(evaluator=self.alice, project=self.project, language=self.de).pk,
            de_lease.pk,
        )
        self.assertEqual(Assignment.objects.filter(evaluator=self.alice).count(), 2)

    def test_the_claimed_item_comes_with_its_language(self):
        ItemFactory(project=self.project, language=self.zh, external_id="zh")
        assignment = item_claim_next(evaluator=self.alice, project=self.project)
        with self.assertNumQueries(0):
            self.assertEqual(
                (assignment.item.language.tag, assignment.item.language.direction), ("zh", "ltr")
            )


class CompletionTests(ParityTestCase):
    def test_an_item_is_done_at_its_kth_judgment_and_not_before(self):
        item = ItemFactory(project=self.project, language=self.de)
        evaluators = [UserFactory() for _ in range(3)]
        for n, ev in enumerate(evaluators, start=1):
            qualification_grant(project=self.project, evaluator=ev, language=self.de)
            judgment_submit(
                assignment=item_claim_next(evaluator=ev, project=self.project),
                evaluator=ev,
                value={"score": 2},
            )
            item.refresh_from_db()
            self.assertEqual(item.status, ItemStatus.DONE if n == 3 else ItemStatus.QUEUED)
        # A revision does not count as another judgment.
        first = Judgment.objects.filter(item=item).order_by("id").first()
        judgment_revise(judgment=first, evaluator=first.evaluator, value={"score": 5})
        self.assertEqual(Judgment.objects.filter(item=item, is_current=True).count(), 3)

    def test_a_late_submit_on_a_done_item_is_refused_and_nothing_changes(self):
        item = ItemFactory(project=self.project, language=self.de, open_slots=1)
        late = item_claim_next(evaluator=self.alice, project=self.project)
        Assignment.objects.filter(pk=late.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        other = UserFactory()
        qualification_grant(project=self.project, evaluator=other, language=self.de)
        judgment_submit(
            assignment=item_claim_next(evaluator=other, project=self.project),
            evaluator=other,
            value={"score": 4},
        )
        with self.assertRaisesMessage(ValidationError, "went to another evaluator"):
            judgment_submit(assignment=late, evaluator=self.alice, value={"score": 1})
        item.refresh_from_db()
        self.assertEqual((item.open_slots, Judgment.objects.filter(item=item).count()), (0, 1))
        self.assertEqual(Assignment.objects.get(pk=late.pk).status, AssignmentStatus.EXPIRED)

    def test_submit_keeps_the_callers_assignment_in_step(self):
        ItemFactory(project=self.project, language=self.de)
        assignment = item_claim_next(evaluator=self.alice, project=self.project)
        judgment = judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 3})
        self.assertEqual(assignment.status, AssignmentStatus.SUBMITTED)
        self.assertEqual(Assignment.objects.get(pk=assignment.pk).submitted_at, judgment.created_at)


class _DatabaseAbort(Exception):
    """What psycopg raises for a transaction PostgreSQL aborted; Django wraps it."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _aborted_once(
    real: Any, *, sqlstate: str, when: Callable[..., bool]
) -> tuple[Callable[..., Any], list[int]]:
    """`real`, except that the first call `when` accepts does its work and then fails the
    way PostgreSQL fails a deadlock victim; returns the wrapper and a call counter."""
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if when(*args, **kwargs):
            calls[0] += 1
            if calls[0] == 1:
                raise OperationalError("deadlock detected") from _DatabaseAbort(sqlstate)
        return result

    return wrapper, calls


class DeadlockRetryTests(TransactionTestCase):
    """A claim, submit or skip the database aborts as a deadlock victim is rolled back and run
    again, so the evaluator never sees the error and nothing is half-written."""

    def setUp(self) -> None:
        self.de = language("de")
        self.project = ProjectFactory(
            slug="retry", task_type=TaskType.RATING, overlap=2, languages=["de"]
        )
        self.alice = UserFactory(username="alice")
        qualification_grant(
            project=self.project, evaluator=self.alice, language=self.de, actor=None
        )
        self.item = ItemFactory(project=self.project, language=self.de)

    def test_an_aborted_claim_is_rolled_back_and_retried(self):
        wrapper, calls = _aborted_once(
            queue_db.insert_with_change, sqlstate="40P01", when=lambda *a, **k: True
        )
        with mock.patch.object(queue_db, "insert_with_change", wrapper):
            assignment = item_claim_next(evaluator=self.alice, project=self.project)
        self.assertEqual(calls[0], 2)  # the aborted attempt and the one that committed
        self.assertEqual(list(Assignment.objects.values_list("pk", flat=True)), [assignment.pk])
        self.assertEqual(Item.objects.get(pk=self.item.pk).open_slots, 1)

    def test_an_aborted_submit_is_rolled_back_and_retried(self):
        assignment = item_claim_next(evaluator=self.alice, project=self.project)
        is_judgment = lambda obj, **kwargs: isinstance(obj, Judgment)  # noqa: E731
        wrapper, calls = _aborted_once(queue_db.insert_row, sqlstate="40001", when=is_judgment)
        with mock.patch.object(queue_db, "insert_row", wrapper):
            judgment = judgment_submit(
                assignment=assignment, evaluator=self.alice, value={"score": 4}
            )
        self.assertEqual(calls[0], 2)
        self.assertEqual(
            list(Judgment.objects.values_list("pk", "value")), [(judgment.pk, {"score": 4})]
        )
        self.assertEqual(
            Assignment.objects.get(pk=assignment.pk).status, AssignmentStatus.SUBMITTED
        )

    def test_other_database_errors_and_aborts_inside_an_outer_transaction_are_not_retried(self):
        for sqlstate, outer in (("57014", False), ("40P01", True)):  # 57014: statement timeout
            wrapper, calls = _aborted_once(
                queue_db.insert_with_change, sqlstate=sqlstate, when=lambda *a, **k: True
            )
            with (
                self.subTest(sqlstate=sqlstate, outer=outer),
                mock.patch.object(queue_db, "insert_with_change", wrapper),
                self.assertRaises(OperationalError),
            ):
                if outer:
                    with transaction.atomic():
                        item_claim_next(evaluator=self.alice, project=self.project)
                else:
                    item_claim_next(evaluator=self.alice, project=self.project)
            self.assertEqual(calls[0], 1)
            self.assertFalse(Assignment.objects.exists())
            self.assertEqual(Item.objects.get(pk=self.item.pk).open_slots, 2)

"""The claimable rule exists twice: as ORM (`selectors.claimable_items`, behind the queue
counts an evaluator sees) and as SQL (`sql.CLAIMABLE`, behind the claim itself). They must
name the same items in the same order, or the queue home promises work a claim cannot
find (or hides work it would hand out). Runs on SQLite and, with DATABASE_URL, PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from annotation.models import Assignment, AssignmentKind, AssignmentStatus, GoldAnswer, ItemStatus
from annotation.qualification import evaluator_language_add, qualification_grant
from annotation.queue import item_claim_next, queue_counts, queue_expire_leases
from annotation.queue import sql as queue_sql
from annotation.queue.claim import _best_language
from annotation.queue.selectors import claimable_items
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory, UserFactory

STATUSES = [ItemStatus.QUEUED] * 4 + [
    ItemStatus.POOL,
    ItemStatus.DONE,
    ItemStatus.ADJUDICATION,
    ItemStatus.FINAL,
]
# Every kind and status an assignment of an evaluator can have; calibration does not make an item "seen".
ASSIGNMENTS = [(kind, status) for kind in AssignmentKind for status in AssignmentStatus]


class ClaimableRuleTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        rng = random.Random(15)
        now = timezone.now()
        cls.other_project = ProjectFactory(slug="other", languages=["de", "ar"])
        cls.carla = UserFactory(username="carla")  # German and Arabic
        for lang in (cls.de, cls.ar):
            evaluator_language_add(user=cls.carla, language=lang)
            qualification_grant(project=cls.project, evaluator=cls.carla, language=lang)
        cls.evaluators = [cls.alice, cls.bashir, cls.carla]
        items = []
        for n in range(120):
            project = cls.project if n % 10 else cls.other_project
            is_gold = rng.random() < 0.1
            item = ItemFactory(
                project=project,
                language=rng.choice([cls.de, cls.ar, cls.zh]) if project == cls.project else cls.de,
                status=rng.choice(STATUSES),
                is_gold=is_gold,
                open_slots=0 if is_gold else rng.choice([0, 1, 2, 3]),
                # Few distinct priorities, so ties are ordered by id.
                priority=rng.choice([0.0, 0.5, 1.0, 2.5]),
            )
            if is_gold:
                GoldAnswer.objects.create(item=item, value={"score": 3})
            items.append(item)
        for evaluator in cls.evaluators:
            for item in rng.sample(items, 40):
                kind, status = rng.choice(ASSIGNMENTS)
                expired = rng.random() < 0.3  # a lease past its time the sweep has not seen yet
                Assignment.objects.create(
                    item=item,
                    evaluator=evaluator,
                    project=item.project,
                    kind=kind,
                    status=status,
                    calibration_attempt_id=1 if kind == AssignmentKind.CALIBRATION else None,
                    skip_reason="cannot_judge" if status == AssignmentStatus.SKIPPED else "",
                    lease_expires_at=now - timedelta(minutes=5)
                    if expired
                    else now + timedelta(minutes=5),
                )

    def _sql_claimable(self, evaluator, language_ids: list[int]) -> list[int]:
        placeholders = ", ".join(f"%(language_{n})s" for n in range(len(language_ids)))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT i.id FROM {queue_sql.ITEM} i WHERE i.language_id IN ({placeholders}) "
                f"AND {queue_sql.CLAIMABLE} ORDER BY i.priority DESC, i.id",
                {
                    "project": self.project.pk,
                    "evaluator": evaluator.pk,
                    **{f"language_{n}": pk for n, pk in enumerate(language_ids)},
                },
            )
            return [row[0] for row in cursor.fetchall()]

    def test_the_orm_and_the_sql_rule_name_the_same_items_in_the_same_order(self):
        languages = [self.de.pk, self.ar.pk, self.zh.pk]
        for evaluator in self.evaluators:
            for language_ids in ([self.de.pk], [self.ar.pk], [self.zh.pk], languages):
                with self.subTest(evaluator=evaluator.username, languages=language_ids):
                    orm = list(
                        claimable_items(
                            evaluator=evaluator, project=self.project, language_ids=language_ids
                        ).values_list("id", flat=True)
                    )
                    self.assertEqual(orm, self._sql_claimable(evaluator, language_ids))
        # The fixture is varied enough to mean something: some claimable, many not.
        claimable = self._sql_claimable(self.carla, languages)
        self.assertTrue(5 <= len(claimable) <= 60, len(claimable))

    def test_the_claim_statements_pick_the_orm_rules_first_item(self):
        for evaluator in self.evaluators:
            for language_ids in ([self.de.pk], [self.ar.pk], [self.de.pk, self.ar.pk, self.zh.pk]):
                with self.subTest(evaluator=evaluator.username, languages=language_ids):
                    first = (
                        claimable_items(
                            evaluator=evaluator, project=self.project, language_ids=language_ids
                        )
                        .select_related("language")
                        .first()
                    )
                    params = {"project": self.project.pk, "evaluator": evaluator.pk}
                    with connection.cursor() as cursor:
                        best = _best_language(cursor, params=params, language_ids=language_ids)
                        self.assertEqual(best, first.language_id if first else None)
                        if first is None:
                            continue
                        cursor.execute(
                            queue_sql.candidate_sql(skip_locked=True), {**params, "language": best}
                        )
                        self.assertEqual(cursor.fetchone()[0], first.pk)

    def test_the_counts_an_evaluator_sees_are_what_claims_hand_out(self):
        self.project.honeypot_rate = 0
        self.project.save()
        # Leases past their time give their slots back first (every claim sweeps); carla's
        # live ones are done with, so each claim below takes a new item.
        queue_expire_leases(project=self.project)
        Assignment.objects.filter(evaluator=self.carla, status=AssignmentStatus.LEASED).update(
            status=AssignmentStatus.SUBMITTED
        )
        counts = {
            c.language.pk: c.waiting
            for c in queue_counts(evaluator=self.carla, project=self.project)
        }
        self.assertTrue(all(counts.values()), counts)
        claimed = {self.de.pk: 0, self.ar.pk: 0}
        while (
            assignment := item_claim_next(evaluator=self.carla, project=self.project)
        ) is not None:
            Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.SUBMITTED)
            claimed[assignment.item.language_id] += 1
        self.assertEqual(counts, claimed)

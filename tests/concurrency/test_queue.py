"""The queue under real concurrency on PostgreSQL: many evaluators, each in its own thread
with its own database connection, claim, submit, skip and abandon at once.

The invariants are what is asserted, never timings: no item gets more than k production
judgments, no evaluator judges an item twice, every submit that was answered OK is stored,
abandoned leases come back, and the queue is worked down to exactly k judgments per item.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction
from django.db.models import Count
from django.test import TransactionTestCase
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentStatus,
    Item,
    ItemStatus,
    Judgment,
    Qualification,
    QualificationStatus,
    SkipReason,
    TaskType,
)
from annotation.queue import assignment_skip, item_claim_next, judgment_submit
from tests.factories import ItemFactory, ProjectFactory, UserFactory, language

K = 3


@dataclass
class Ledger:
    """What the threads did, as they saw it; compared with the database afterwards."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: list[tuple[int, int]] = field(default_factory=list)  # (evaluator, item)
    skipped: list[tuple[int, int]] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)  # assignment ids
    late_refused: int = 0
    errors: list[str] = field(default_factory=list)


def _run_threads(targets: list[Callable[[], None]], ledger: Ledger) -> None:
    barrier = threading.Barrier(len(targets))

    def run(target: Callable[[], None]) -> None:
        try:
            barrier.wait(timeout=30)
            target()
        except Exception as exc:  # reported by the test, never swallowed
            with ledger.lock:
                ledger.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"


def _settle(*, evaluator: Any, assignment: Any, what: str, ledger: Ledger) -> None:
    if what == "submit":
        judgment_submit(
            assignment=assignment, evaluator=evaluator, value={"score": random.randint(1, 5)}
        )
        with ledger.lock:
            ledger.submitted.append((evaluator.pk, assignment.item_id))
    elif what == "skip":
        assignment_skip(assignment=assignment, evaluator=evaluator, reason=SkipReason.CANNOT_JUDGE)
        with ledger.lock:
            ledger.skipped.append((evaluator.pk, assignment.item_id))
    else:
        # The evaluator walks away and the lease runs out (its time moves into the past).
        Assignment.objects.filter(pk=assignment.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        with ledger.lock:
            ledger.abandoned.append(assignment.pk)


def _work(
    *,
    evaluator: Any,
    project: Any,
    ledger: Ledger,
    act: Callable[[Any], str],
    limit: int | None = None,
    patience: int = 3,
) -> None:
    """Claim and settle (act → "submit" | "skip" | "abandon") until the queue has had nothing
    for this evaluator `patience` times running (others' skips may still give slots back;
    the sequential drain afterwards picks up what comes back after the threads stop)."""
    idle = 0
    done = 0
    while idle < patience and (limit is None or done < limit):
        assignment = item_claim_next(evaluator=evaluator, project=project)
        if assignment is None:
            idle += 1
            time.sleep(0.02)
            continue
        idle = 0
        done += 1
        _settle(evaluator=evaluator, assignment=assignment, what=act(assignment), ledger=ledger)


def _drain(
    *, evaluators: list[Any], project: Any, ledger: Ledger, act: Callable[[Any], str]
) -> int:
    """One evaluator at a time, pass after pass, until a whole pass finds nothing; returns
    how many items it claimed."""
    claimed = 0
    while True:
        before = claimed
        for evaluator in evaluators:
            while (assignment := item_claim_next(evaluator=evaluator, project=project)) is not None:
                claimed += 1
                _settle(
                    evaluator=evaluator, assignment=assignment, what=act(assignment), ledger=ledger
                )
        if claimed == before:
            return claimed


def _holding(
    item_id: int, *, locked: threading.Event, release: threading.Event
) -> Callable[[], None]:
    """A thread body that locks the item as a submit in flight does, sets `locked`, and
    keeps the lock until `release` is set."""

    def hold() -> None:
        try:
            with transaction.atomic():
                Item.objects.select_for_update().get(pk=item_id)
                locked.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    return hold


@pytest.mark.postgres
class QueueConcurrencyTests(TransactionTestCase):
    def setUp(self) -> None:
        self.de = language("de")
        self.ar = language("ar")
        self.project = ProjectFactory(
            slug="concurrent", task_type=TaskType.RATING, overlap=K, languages=["de", "ar"]
        )

    def _evaluators(
        self, n: int, *, tags: tuple[str, ...] = ("de",), prefix: str = "ev"
    ) -> list[Any]:
        users = [UserFactory(username=f"{prefix}{i}") for i in range(n)]
        Qualification.objects.bulk_create(
            Qualification(
                evaluator=u,
                project=self.project,
                language=language(tag),
                status=QualificationStatus.QUALIFIED,
            )
            for u in users
            for tag in tags
        )
        return users

    def _items(self, n: int, *, lang: Any, prefix: str) -> None:
        Item.objects.bulk_create(
            ItemFactory.build(
                project=self.project,
                language=lang,
                external_id=f"{prefix}-{i}",
                priority=random.random(),
                content_hash=f"{prefix}-{i}",
            )
            for i in range(n)
        )

    def _assert_invariants(self, ledger: Ledger) -> None:
        self.assertEqual(ledger.errors, [])
        production = Judgment.objects.filter(
            item__project=self.project, kind="production", is_current=True
        )
        over_k = production.values("item").annotate(n=Count("id")).filter(n__gt=K)
        self.assertFalse(over_k.exists(), "an item got more than k production judgments")
        twice = (
            Assignment.objects.values("item", "evaluator").annotate(n=Count("id")).filter(n__gt=1)
        )
        self.assertFalse(twice.exists(), "an evaluator was given the same item twice")
        # Every submit the service answered OK is stored, and nothing else is.
        stored = sorted(production.values_list("evaluator_id", "item_id"))
        self.assertEqual(stored, sorted(ledger.submitted))
        # The queue was worked down: every item has exactly k judgments, is done, has no slot.
        per_item = dict(production.values_list("item").annotate(n=Count("id")))
        items = Item.objects.filter(project=self.project)
        self.assertEqual(
            {item.pk: per_item.get(item.pk, 0) for item in items}, {item.pk: K for item in items}
        )
        self.assertEqual(set(items.values_list("status", flat=True)), {ItemStatus.DONE})
        self.assertEqual(set(items.values_list("open_slots", flat=True)), {0})
        self.assertFalse(Assignment.objects.filter(status=AssignmentStatus.LEASED).exists())

    def test_it_keeps_the_invariants_with_16_evaluators_working_200_items_at_once(self):
        # Half the evaluators also work Arabic and claim across both languages at once.
        evaluators = self._evaluators(8, tags=("de",), prefix="de") + self._evaluators(
            8, tags=("de", "ar"), prefix="bi"
        )
        self._items(150, lang=self.de, prefix="de")
        self._items(50, lang=self.ar, prefix="ar")
        ledger = Ledger()
        _run_threads(
            [
                lambda ev=ev: _work(
                    evaluator=ev,
                    project=self.project,
                    ledger=ledger,
                    act=lambda a: "submit",
                    patience=1,
                )
                for ev in evaluators
            ],
            ledger,
        )
        # Each thread stopped at its first empty claim. Without skips or expiry that is final,
        # even while other claims and submits hold the last items locked: nothing is left over.
        self.assertEqual(
            _drain(
                evaluators=evaluators, project=self.project, ledger=ledger, act=lambda a: "submit"
            ),
            0,
        )
        self.assertEqual(len(ledger.submitted), 200 * K)
        self._assert_invariants(ledger)

    def test_it_reclaims_abandoned_leases_while_others_claim(self):
        honest = self._evaluators(12, prefix="honest")
        walkers = self._evaluators(6, prefix="walker")
        self._items(100, lang=self.de, prefix="de")
        ledger = Ledger()
        rng = random.Random(7)
        targets = [
            lambda ev=ev: _work(
                evaluator=ev, project=self.project, ledger=ledger, act=lambda a: "submit"
            )
            for ev in honest
        ]
        # A walker abandons every item it claims: its lease expires while everyone claims,
        # and the claims themselves sweep it, concurrently, giving the slot back.
        targets += [
            lambda ev=ev: _work(
                evaluator=ev, project=self.project, ledger=ledger, act=lambda a: "abandon", limit=15
            )
            for ev in walkers
        ]
        _run_threads(targets, ledger)
        _drain(evaluators=honest, project=self.project, ledger=ledger, act=lambda a: "submit")
        self.assertGreater(len(ledger.abandoned), 0)
        self.assertEqual(
            Assignment.objects.filter(
                pk__in=ledger.abandoned, status=AssignmentStatus.EXPIRED
            ).count(),
            len(ledger.abandoned),
        )
        self.assertFalse(Judgment.objects.filter(evaluator__in=walkers).exists())
        self._assert_invariants(ledger)
        # Late submits on the expired leases, all at once: stored only where a slot is free
        # (none is, the queue is done), refused with the reason otherwise, never over k.
        late = Assignment.objects.filter(pk__in=ledger.abandoned).select_related(
            "evaluator", "project"
        )
        ledger_late = Ledger()

        def submit_late(assignment: Assignment) -> None:
            try:
                judgment_submit(
                    assignment=assignment,
                    evaluator=assignment.evaluator,
                    value={"score": rng.randint(1, 5)},
                )
            except ValidationError as exc:
                self.assertIn("went to another evaluator", " ".join(exc.messages))
                with ledger_late.lock:
                    ledger_late.late_refused += 1

        _run_threads([lambda a=a: submit_late(a) for a in late], ledger_late)
        self.assertEqual(ledger_late.errors, [])
        self.assertEqual(ledger_late.late_refused, len(ledger.abandoned))
        self._assert_invariants(ledger)

    def test_it_returns_skipped_slots_to_evaluators_who_have_not_seen_the_item(self):
        evaluators = self._evaluators(16)
        self._items(120, lang=self.de, prefix="de")
        ledger = Ledger()

        def act_for(seed: int) -> Callable[[Any], str]:
            rng = random.Random(seed)
            return lambda assignment: "skip" if rng.random() < 0.25 else "submit"

        _run_threads(
            [
                lambda ev=ev, i=i: _work(
                    evaluator=ev, project=self.project, ledger=ledger, act=act_for(i)
                )
                for i, ev in enumerate(evaluators)
            ],
            ledger,
        )
        _drain(evaluators=evaluators, project=self.project, ledger=ledger, act=act_for(99))
        self.assertGreater(len(ledger.skipped), 0)
        # A skip is kept with its reason and never offered to that evaluator again.
        skipped = Assignment.objects.filter(status=AssignmentStatus.SKIPPED)
        self.assertEqual(
            sorted(skipped.values_list("evaluator_id", "item_id")), sorted(ledger.skipped)
        )
        self.assertEqual(
            set(skipped.values_list("skip_reason", flat=True)), {SkipReason.CANNOT_JUDGE}
        )
        self._assert_invariants(ledger)

    def test_it_gives_one_evaluator_claiming_from_many_tabs_at_once_a_single_lease(self):
        (alice,) = self._evaluators(1)
        self._items(20, lang=self.de, prefix="de")
        ledger = Ledger()
        claimed: list[int] = []

        def claim() -> None:
            assignment = item_claim_next(evaluator=alice, project=self.project)
            with ledger.lock:
                claimed.append(assignment.pk)

        _run_threads([claim for _ in range(8)], ledger)
        self.assertEqual(ledger.errors, [])
        self.assertEqual(len(set(claimed)), 1, "two tabs got two different leases")
        self.assertEqual(Assignment.objects.filter(evaluator=alice).count(), 1)
        self.assertEqual(Item.objects.get(pk=Assignment.objects.get().item_id).open_slots, K - 1)

    def test_it_serves_another_language_before_waiting_for_a_locked_item(self):
        (alice,) = self._evaluators(1, tags=("de", "ar"))
        self._items(1, lang=self.de, prefix="de")
        self._items(1, lang=self.ar, prefix="ar")
        Item.objects.filter(language=self.de).update(priority=0.9)  # German ranks first
        Item.objects.filter(language=self.ar).update(priority=0.1)
        german = Item.objects.get(language=self.de)
        locked, release = threading.Event(), threading.Event()
        claimed: list[Any] = []

        # A submit in flight holds the only German item.
        hold = _holding(german.pk, locked=locked, release=release)

        def claim() -> None:
            try:
                claimed.append(item_claim_next(evaluator=alice, project=self.project))
            finally:
                connections.close_all()

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            self.assertTrue(locked.wait(timeout=30))
            claimer = threading.Thread(target=claim)
            claimer.start()
            claimer.join(timeout=10)
            # Answered while the German item is still locked: it did not queue behind it.
            self.assertEqual(len(claimed), 1, "the claim waited for the locked German item")
            self.assertEqual(claimed[0].item.language_id, self.ar.pk)
        finally:
            release.set()
            holder.join(timeout=30)

    def test_it_waits_for_an_item_a_submit_holds_instead_of_reporting_an_empty_queue(self):
        (alice,) = self._evaluators(1)
        self._items(1, lang=self.de, prefix="de")
        item = Item.objects.get()
        locked, release = threading.Event(), threading.Event()
        claimed: list[Any] = []

        # Another evaluator's submit on the only item, in flight (it keeps 2 open slots).
        hold = _holding(item.pk, locked=locked, release=release)

        def claim() -> None:
            try:
                locked.wait(timeout=30)
                claimed.append(item_claim_next(evaluator=alice, project=self.project))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=t) for t in (hold, claim)]
        for t in threads:
            t.start()
        # Let the claim reach the lock and wait there, then let the submit finish.
        with connection.cursor() as cursor:
            for _ in range(300):
                cursor.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.01)
        release.set()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(len(claimed), 1, "the claim failed")
        self.assertIsNotNone(
            claimed[0], "the claim reported an empty queue while the item had open slots"
        )
        self.assertEqual(claimed[0].item_id, item.pk)

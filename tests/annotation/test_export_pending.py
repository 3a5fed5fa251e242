"""What an incremental pull reads: the items recorded as changed (ExportPending).

The database records every move of an item's `label_version` (trigger
`item_export_pending`), whatever wrote it; a pull takes and clears what it marked, and a
write still in flight while a pull marks is never lost: its row stays locked until it
commits, so the pull waits for it and reads the new version (PostgreSQL, real threads).
"""

from __future__ import annotations

import importlib
import json
import random
import threading
import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, connections, transaction
from django.db.models import F
from django.test import TransactionTestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from active_learning.tasks import background_sweep
from annotation.exports import export_marks_refresh, preference_export, preference_retractions
from annotation.exports import marks as marks_module
from annotation.models import (
    ExportMark,
    ExportPending,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Project,
    TaskType,
)
from annotation.progress import items_adjudication_send
from annotation.queue import item_claim_next, judgment_submit, judgment_undo
from tests.annotation import test_incremental_export as incremental
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.annotation.test_evaluator_pages import EvaluatorPagesTestCase
from tests.annotation.test_incremental_export import Consumer, _comparable
from tests.factories import ItemFactory, ProjectFactory, UserFactory


def _pairwise(slug: str, *, items: int) -> tuple[object, list[Item]]:
    project = ProjectFactory(slug=slug, task_type=TaskType.PAIRWISE, languages=["de"], overlap=3)
    import_items(
        project,
        [
            {
                "external_id": f"p{n}",
                "language": "de",
                "prompt": f"Frage {n}",
                "response_a": f"A{n}",
                "response_b": f"B{n}",
            }
            for n in range(items)
        ],
    )
    return project, list(Item.objects.filter(project=project).order_by("pk"))


def _votes(project: object, item: Item, choices: list[str]) -> None:
    import_judgments(
        project,
        [
            {
                "item_external_id": item.external_id,
                "rater": f"rater{n}",
                "value": {"choice": choice},
            }
            for n, choice in enumerate(choices)
        ],
    )


class PendingRecordTests(ApiTestCase):
    def test_every_move_of_an_items_label_version_is_recorded_by_the_database(self):
        project, (first, second) = _pairwise("pending-trigger", items=2)
        ExportPending.objects.filter(project=project).delete()
        # A write that goes around every service still leaves its trace.
        Item.objects.filter(pk=first.pk).update(label_version=F("label_version") + 1)
        # Other columns of the item are not a change of its line.
        Item.objects.filter(pk=second.pk).update(priority=5.0)
        pending = list(
            ExportPending.objects.filter(project=project).values_list("item_id", "version")
        )
        first.refresh_from_db()
        self.assertEqual(pending, [(first.pk, first.label_version)])

    def test_a_since_pull_takes_what_it_marked_and_leaves_other_projects_alone(self):
        project, items = _pairwise("pending-take", items=3)
        other, other_items = _pairwise("pending-other", items=1)
        cursor = preference_export(project=project).cursor
        for item in items:
            _votes(project, item, ["a", "a", "b"])
        _votes(other, other_items[0], ["b", "b", "b"])
        self.assertEqual(ExportPending.objects.filter(project=project).count(), 3)
        lines = list(preference_export(project=project, since=cursor).rows)
        self.assertEqual(len(lines), 3)
        self.assertFalse(ExportPending.objects.filter(project=project).exists())
        self.assertEqual(ExportPending.objects.filter(project=other).count(), 1)


class _Editor:
    """What the migration's function uses of a schema editor, inside the test's transaction
    (SQLite's own editor cannot open there)."""

    connection = connection

    def execute(self, sql: str, params: tuple = ()) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


class MarkSnapshotTests(ApiTestCase):
    """Each mark keeps what decides its item's line (migration 0009)."""

    def _snapshots(self, project: object) -> list[tuple]:
        return list(
            ExportMark.objects.filter(project=project)
            .order_by("item_id")
            .values_list(
                "item_id",
                "external_id",
                "language_id",
                "prompt_id",
                "status",
                "is_gold",
                "votes",
                "final",
            )
        )

    def test_the_migration_fills_the_marks_written_before_it_as_a_pull_writes_them(self):
        project, items = _pairwise("snapshot-fill", items=3)
        for item, choices in zip(
            items, (["a", "a", "b"], ["b", "b", "b"], ["a", "b"]), strict=True
        ):
            _votes(project, item, choices)
        FinalLabel.objects.create(item=items[2], value={"choice": "b"})
        before = list(preference_export(project=project).rows)
        written = self._snapshots(project)
        self.assertEqual(len(written), 3)
        # Marks as migration 0008 left them: no snapshot.
        ExportMark.objects.filter(project=project).update(
            external_id="",
            language=None,
            prompt_id="",
            status="",
            is_gold=False,
            votes=None,
            version=None,
            final=None,
        )
        fill = importlib.import_module("annotation.migrations.0009_export_mark_snapshot")
        fill._fill(None, _Editor())
        self.assertEqual(self._snapshots(project), written)
        # Nothing changed since the pull: the same lines again.
        self.assertEqual(list(preference_export(project=project).rows), before)

    def test_an_item_sent_to_adjudication_is_retracted_by_the_next_pull(self):
        project, items = _pairwise("snapshot-adjudicate", items=2)
        for item in items:
            _votes(project, item, ["a", "a", "b"])
        Item.objects.filter(project=project).update(status=ItemStatus.DONE)
        cursor = preference_export(project=project).cursor
        items_adjudication_send(project=project, item_ids=[items[0].pk], actor=None)
        retracted = list(preference_retractions(project=project, since=cursor).rows)
        self.assertEqual(retracted, [{"item_id": "p0"}])
        self.assertEqual(
            [line["item_id"] for line in preference_export(project=project).rows], ["p1"]
        )

    def test_retractions_need_no_item_rows(self):
        project, items = _pairwise("snapshot-retract", items=2)
        cursor = preference_export(project=project).cursor
        _votes(project, items[0], ["a", "a", "b"])
        _votes(project, items[1], ["a", "b", "b"])
        with CaptureQueriesContext(connection) as queries:
            retracted = list(
                preference_retractions(project=project, since=cursor, min_agreement=0.9).rows
            )
        self.assertEqual(sorted(r["item_id"] for r in retracted), ["p0", "p1"])
        streamed = [
            q["sql"]
            for q in queries
            if "annotation_exportmark" in q["sql"] and "m.id >" in q["sql"]
        ]
        self.assertEqual(len(streamed), 1)
        self.assertNotIn("annotation_item", streamed[0])
        self.assertNotIn("annotation_judgment", streamed[0])


class BackgroundMarkingTests(ApiTestCase):
    def test_the_sweep_marks_what_changed_so_a_since_pull_only_streams(self):
        project, items = _pairwise("sweep-marks", items=3)
        cursor = preference_export(project=project).cursor
        for item in items:
            _votes(project, item, ["a", "a", "b"])
        self.assertEqual(background_sweep(older_than=timedelta(0))["export_projects"], 1)
        self.assertFalse(ExportPending.objects.filter(project=project).exists())
        marked = list(ExportMark.objects.filter(project=project).values_list("item_id", "id"))
        lines = list(preference_export(project=project, since=cursor).rows)
        self.assertEqual(sorted(line["item_id"] for line in lines), ["p0", "p1", "p2"])
        # The pull found its marks made: it marked nothing again.
        self.assertEqual(
            list(ExportMark.objects.filter(project=project).values_list("item_id", "id")), marked
        )
        self.assertEqual(lines, list(preference_export(project=project).rows))
        # Nothing pending: the next sweep has nothing to mark.
        self.assertEqual(background_sweep(older_than=timedelta(0))["export_projects"], 0)

    def test_a_marking_that_fails_leaves_every_change_pending_for_the_next_sweep(self):
        project, items = _pairwise("sweep-fails", items=2)
        cursor = preference_export(project=project).cursor
        for item in items:
            _votes(project, item, ["b", "b", "a"])
        with (
            mock.patch(
                "annotation.exports.marks._marks_write", side_effect=OperationalError("gone")
            ),
            self.assertLogs("parity.background", level="ERROR") as logged,
        ):
            self.assertEqual(export_marks_refresh(), 0)
        self.assertIn("sweep-fails", logged.output[0])
        self.assertEqual(ExportPending.objects.filter(project=project).count(), 2)
        self.assertEqual(export_marks_refresh(), 1)
        lines = list(preference_export(project=project, since=cursor).rows)
        self.assertEqual(sorted(line["item_id"] for line in lines), ["p0", "p1"])

    def test_one_project_whose_marking_fails_does_not_hold_back_the_others(self):
        broken, broken_items = _pairwise("sweep-broken", items=2)
        fine, fine_items = _pairwise("sweep-fine", items=2)
        for project, items in ((broken, broken_items), (fine, fine_items)):
            preference_export(project=project)
            for item in items:
                _votes(project, item, ["a", "a", "b"])
        self.assertLess(broken.pk, fine.pk)  # the broken one comes first in the sweep
        real = marks_module._marks_write

        def failing_for_broken(cursor, *, project, **kwargs):
            if project.pk == broken.pk:
                raise OperationalError("canceling statement due to lock timeout")
            return real(cursor, project=project, **kwargs)

        with (
            mock.patch("annotation.exports.marks._marks_write", side_effect=failing_for_broken),
            self.assertLogs("parity.background", level="ERROR"),
        ):
            self.assertEqual(export_marks_refresh(), 1)
        self.assertFalse(ExportPending.objects.filter(project=fine).exists())
        self.assertEqual(ExportPending.objects.filter(project=broken).count(), 2)


@pytest.mark.postgres
class PendingRaceTests(TransactionTestCase):
    """A writer flips an item's label while a since pull marks: nothing is lost."""

    def test_a_write_in_flight_while_a_pull_marks_reaches_the_consumer(self):
        UserFactory()  # the import's actor-less path needs nothing else
        project, (item,) = _pairwise("pending-race", items=1)
        _votes(project, item, ["a", "a", "b"])
        consumer = Consumer(project, {})
        consumer.pull()
        self.assertEqual(consumer.lines[item.external_id]["chosen"].strip(), "A0")
        # A change is pending (committed, not yet pulled) when the writer starts.
        Item.objects.filter(pk=item.pk).update(label_version=F("label_version") + 1)

        bumped, commit = threading.Event(), threading.Event()
        failures: list[BaseException] = []

        def writer() -> None:
            try:
                with transaction.atomic():
                    # The minority becomes the majority: the line flips to B.
                    Judgment.objects.filter(item=item, value__choice="a").update(
                        value={"choice": "b"}
                    )
                    Item.objects.filter(pk=item.pk).update(label_version=F("label_version") + 1)
                    bumped.set()
                    commit.wait(timeout=20)
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                failures.append(exc)
                bumped.set()
            finally:
                connections.close_all()

        def puller() -> None:
            try:
                consumer.pull()
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)
            finally:
                connections.close_all()

        write = threading.Thread(target=writer)
        write.start()
        self.assertTrue(bumped.wait(timeout=20))
        pull = threading.Thread(target=puller)
        pull.start()
        time.sleep(0.5)  # the pull reaches the pending row the writer holds
        commit.set()
        write.join(timeout=30)
        pull.join(timeout=30)
        self.assertEqual(failures, [])
        # Whatever the pull saw, one more pull leaves the consumer equal to a full pull.
        consumer.pull()
        connection.close()
        self.assertEqual(consumer.lines[item.external_id]["chosen"].strip(), "B0")
        self.assertEqual(_comparable(consumer.lines), _comparable(consumer.full()))


class ExportedMeansPulledTests(EvaluatorPagesTestCase):
    def test_a_sweep_does_not_take_away_the_undo_window(self):
        """Undo is refused once a pull may have handed the item's line out; the background
        sweep marks settled items without any pull, and must not count as one."""
        self.project.overlap = 1
        self.project.save(update_fields=["overlap"])
        ItemFactory.create_batch(2, project=self.project, language=self.de, open_slots=1)
        assignment = item_claim_next(evaluator=self.alice, project=self.project, language=self.de)
        judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 4})
        export_marks_refresh()  # the background sweep runs; no pipeline pulled anything
        judgment_undo(assignment=assignment, evaluator=self.alice)

    def test_a_pull_still_closes_the_undo_window(self):
        self.project.overlap = 1
        self.project.save(update_fields=["overlap"])
        ItemFactory.create_batch(2, project=self.project, language=self.de, open_slots=1)
        assignment = item_claim_next(evaluator=self.alice, project=self.project, language=self.de)
        judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 4})
        export_marks_refresh()
        lines = list(preference_export(project=self.project, shape="unpaired").rows)
        self.assertEqual([line["item_id"] for line in lines], [assignment.item.external_id])
        with self.assertRaisesMessage(ValidationError, "Too late to undo"):
            judgment_undo(assignment=assignment, evaluator=self.alice)

    def _submitted_later(self):
        self.project.overlap = 1
        self.project.save(update_fields=["overlap"])
        ItemFactory.create_batch(2, project=self.project, language=self.de, open_slots=1)
        return item_claim_next(evaluator=self.alice, project=self.project, language=self.de)

    def test_a_full_pull_that_streamed_the_sweeps_mark_closes_the_undo_window(self):
        assignment = self._submitted_later()
        export = preference_export(project=self.project, shape="unpaired")  # marking done
        judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 4})
        export_marks_refresh()  # the sweep marks the item above the pull's cursor
        lines = list(export.rows)
        self.assertEqual([line["item_id"] for line in lines], [assignment.item.external_id])
        # The line built from alice's judgment is in a consumer's hands now.
        with self.assertRaisesMessage(ValidationError, "Too late to undo"):
            judgment_undo(assignment=assignment, evaluator=self.alice)

    def test_a_handed_out_line_keeps_the_undo_window_closed_after_a_re_mark(self):
        assignment = self._submitted_later()
        judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 4})
        item = assignment.item
        pulled = list(preference_export(project=self.project, shape="unpaired").rows)
        self.assertEqual([line["item_id"] for line in pulled], [item.external_id])
        import_judgments(
            self.project,
            [{"item_external_id": item.external_id, "rater": "hist", "value": {"score": 2}}],
        )
        export_marks_refresh()  # marked again, above anything handed out
        with self.assertRaisesMessage(ValidationError, "Too late to undo"):
            judgment_undo(assignment=assignment, evaluator=self.alice)

    def test_a_pull_before_the_submission_leaves_the_undo_open(self):
        assignment = self._submitted_later()
        list(preference_export(project=self.project, shape="unpaired").rows)
        judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 4})
        export_marks_refresh()
        judgment_undo(assignment=assignment, evaluator=self.alice)


class ExportHandedMigrationTests(ApiTestCase):
    def test_the_migration_counts_every_existing_mark_as_handed_out(self):
        project, items = _pairwise("handed-migration", items=3)
        for item in items:
            _votes(project, item, ["a", "a", "b"])
        unmarked = ProjectFactory(slug="handed-migration-none")
        export_marks_refresh()
        handed = importlib.import_module("annotation.migrations.0011_project_export_handed")
        handed._handed_so_far(django_apps, None)
        project.refresh_from_db()
        unmarked.refresh_from_db()
        self.assertIsNotNone(project.export_handed_at)
        self.assertIsNone(unmarked.export_handed_at)


class FullPullRaceTests(ApiTestCase):
    def test_a_full_pull_holds_every_settled_item_when_the_sweep_marks_meanwhile(self):
        project, items = _pairwise("full-sweep", items=3)
        for item in items:
            _votes(project, item, ["a", "a", "b"])
        preference_export(project=project)
        # A full pull: its marking commits, then its rows stream.
        export = preference_export(project=project)
        # Meanwhile one more vote on p0 (still settled, still a line) and the sweep runs.
        import_judgments(
            project, [{"item_external_id": "p0", "rater": "late", "value": {"choice": "a"}}]
        )
        export_marks_refresh()
        lines = list(export.rows)
        self.assertEqual(sorted(line["item_id"] for line in lines), ["p0", "p1", "p2"])
        # The late vote is in p0's line: the stream read the mark the sweep made.
        self.assertEqual(lines, list(preference_export(project=project).rows))
        # A consumer that goes on from this pull's cursor gets p0 again: harmless (upsert).
        again = preference_export(project=project, since=export.cursor)
        self.assertEqual([line["item_id"] for line in again.rows], ["p0"])


class DeletedItemTests(ApiTestCase):
    def test_a_deleted_item_is_retracted(self):
        project, items = _pairwise("deleted", items=2)
        for item in items:
            _votes(project, item, ["a", "a", "b"])
        consumer = Consumer(project, {})
        consumer.pull()
        self.assertEqual(sorted(consumer.lines), ["p0", "p1"])
        Item.objects.get(pk=items[0].pk).delete()  # the admin's delete
        consumer.pull()
        self.assertEqual(_comparable(consumer.lines), _comparable(consumer.full()))
        self.assertEqual(sorted(consumer.lines), ["p1"])

    def _rating(self, slug: str) -> tuple[object, dict[str, Item]]:
        project = ProjectFactory(
            slug=slug,
            task_type=TaskType.RATING,
            languages=["de"],
            overlap=1,
            schema={"scale": {"min": 1, "max": 5}},
        )
        import_items(
            project,
            [
                {
                    "external_id": f"r{n}",
                    "language": "de",
                    "prompt": "Frage",
                    "prompt_id": "q1",
                    "response": f"Antwort {n}",
                }
                for n in range(3)
            ],
        )
        import_judgments(
            project,
            [
                {"item_external_id": f"r{n}", "rater": "rater", "value": {"score": score}}
                for n, score in enumerate((5, 3, 1))
            ],
        )
        return project, {i.external_id: i for i in Item.objects.filter(project=project)}

    def test_a_deleted_rating_response_takes_its_pairs_with_it(self):
        for filters in ({}, {"pairs": "all"}, {"shape": "unpaired"}):
            with self.subTest(**filters):
                project, items = self._rating(f"deleted-rating-{len(filters)}-{filters}"[:50])
                consumer = Consumer(project, filters)
                consumer.pull()
                self.assertTrue(consumer.lines)
                items["r0"].delete()  # the best response: its pair changes
                consumer.pull()
                self.assertEqual(_comparable(consumer.lines), _comparable(consumer.full()))
                self.assertNotIn("r0", json.dumps(consumer.lines))

    def test_a_deleted_item_is_retracted_for_a_consumer_of_one_split(self):
        project, items = _pairwise("deleted-split", items=8)
        for item in items:
            _votes(project, item, ["a", "a", "b"])
        for split in ("train", "test"):
            with self.subTest(split=split):
                consumer = Consumer(project, {"split": split, "test_fraction": 0.5})
                consumer.pull()
                self.assertTrue(consumer.lines)
                held = sorted(consumer.lines)[0]
                Item.objects.get(project=project, external_id=held).delete()
                consumer.pull()
                self.assertNotIn(held, consumer.lines)
                self.assertEqual(_comparable(consumer.lines), _comparable(consumer.full()))

    def test_a_deleted_rating_response_is_retracted_for_a_consumer_of_one_split(self):
        for split in ("train", "test"):
            with self.subTest(split=split):
                project, items = self._rating(f"deleted-rating-split-{split}")
                filters = {"split": split, "test_fraction": 0.5, "pairs": "all"}
                consumer = Consumer(project, filters)
                consumer.pull()
                items["r0"].delete()
                consumer.pull()
                self.assertNotIn("r0", json.dumps(consumer.lines))
                self.assertEqual(_comparable(consumer.lines), _comparable(consumer.full()))

    def test_an_item_never_exported_leaves_nothing_behind_once_the_sweep_ran(self):
        project, items = _pairwise("deleted-unexported", items=2)
        Item.objects.filter(pk=items[0].pk).delete()
        # Recorded all the same: a pull marking it for the first time might not have
        # committed its mark yet.
        self.assertTrue(ExportPending.objects.filter(item_id=items[0].pk).exists())
        export_marks_refresh()
        self.assertFalse(ExportPending.objects.filter(project=project).exists())
        self.assertFalse(ExportMark.objects.filter(item_id=items[0].pk).exists())

    def test_deleting_a_project_leaves_the_sweep_nothing_to_trip_on(self):
        project, items = _pairwise("deleted-project", items=3)
        for item in items:
            _votes(project, item, ["a", "a", "b"])
        preference_export(project=project)

        project.delete()
        export_marks_refresh()
        self.assertFalse(ExportPending.objects.filter(project_id=project.pk).exists())
        self.assertFalse(ExportMark.objects.filter(project_id=project.pk).exists())


@pytest.mark.postgres
class DeleteWhileMarkingTests(TransactionTestCase):
    """An item deleted while a full pull marks it for the first time: the delete trigger
    looks for a committed mark, the pull's fresh mark is not committed yet, so nothing is
    recorded; the pull still streams the item's line (its rows start before the delete
    commits), and no later pull ever retracts it."""

    def test_an_item_deleted_while_a_pull_marks_it_is_retracted_later(self):
        UserFactory()
        project, (item, other) = _pairwise("delete-race", items=2)
        _votes(project, item, ["a", "a"])  # two of three: not settled yet
        _votes(project, other, ["a", "a", "b"])
        consumer = Consumer(project, {})
        consumer.pull()
        self.assertEqual(sorted(consumer.lines), ["p1"])
        # The lead lowers the overlap (the admin's save): p0 is settled now, and nothing
        # moved its label version, so it has no pending row. A full pull marks it fresh.
        Project.objects.filter(pk=project.pk).update(overlap=2)
        project.refresh_from_db()
        self.assertFalse(ExportPending.objects.filter(item_id=item.pk).exists())

        marked, go, deleted, commit = (threading.Event() for _ in range(4))
        failures: list[BaseException] = []
        real = marks_module._marks_write
        lines: list[dict] = []
        cursors: list[str] = []

        def pausing(cursor, **kwargs):
            real(cursor, **kwargs)
            marked.set()
            go.wait(timeout=20)

        def puller() -> None:
            try:
                with mock.patch.object(marks_module, "_marks_write", side_effect=pausing):
                    export = preference_export(project=project)
                deleted.wait(timeout=20)
                lines.extend(export.rows)
                cursors.append(export.cursor)
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)
            finally:
                connections.close_all()

        def deleter() -> None:
            try:
                marked.wait(timeout=20)
                with transaction.atomic():
                    Item.objects.get(pk=item.pk).delete()
                    deleted.set()
                    go.set()
                    commit.wait(timeout=20)
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)
                deleted.set()
                go.set()
            finally:
                connections.close_all()

        pull = threading.Thread(target=puller)
        delete = threading.Thread(target=deleter)
        pull.start()
        delete.start()
        pull.join(timeout=30)
        commit.set()
        delete.join(timeout=30)
        self.assertEqual(failures, [])
        # The full pull handed out p0's line; a consumer keeps it with the pull's cursor.
        consumer.lines = {line["item_id"]: line for line in lines}
        consumer.cursor = cursors[0]
        self.assertIn("p0", consumer.lines)
        export_marks_refresh()  # the sweep runs
        consumer.pull()
        connection.close()
        self.assertEqual(_comparable(consumer.lines), _comparable(consumer.full()))


def _more(project, item, choice, n=4):
    import_judgments(
        project,
        [
            {"item_external_id": item.external_id, "rater": f"late{k}", "value": {"choice": choice}}
            for k in range(n)
        ],
    )


class AdminDeleteTests(ApiTestCase):
    def test_admin_deletes_of_items_and_a_project_leave_pulls_whole(self):
        admin_user = get_user_model().objects.create_superuser("root", "r@x.org", "pw")
        self.client.force_login(admin_user)
        project, items = _pairwise("admin-del", items=4)
        other, other_items = _pairwise("admin-other", items=3)
        for p, its in ((project, items), (other, other_items)):
            for item in its:
                _votes(p, item, ["a", "a", "b"])
        consumers = [Consumer(project, {}), Consumer(other, {})]
        for c in consumers:
            c.pull()
        response = self.client.post(
            reverse("admin:annotation_item_changelist"),
            {
                "action": "delete_selected",
                "_selected_action": [items[0].pk, items[1].pk],
                "post": "yes",
            },
        )
        self.assertEqual(response.status_code, 302, response.content[:500])
        self.assertFalse(Item.objects.filter(pk=items[0].pk).exists())
        _more(other, other_items[0], "b")
        for c in consumers:
            c.pull()
            self.assertEqual(_comparable(c.lines), _comparable(c.full()))
        self.assertEqual(sorted(consumers[0].lines), ["p2", "p3"])
        _more(project, items[2], "b")  # pending when the project goes
        # (The admin refuses a project with audit events: AuditEvent is undeletable there.)
        project.delete()
        self.assertEqual(export_marks_refresh(), 0)
        self.assertFalse(ExportMark.objects.filter(project_id=project.pk).exists())
        self.assertFalse(ExportPending.objects.filter(project_id=project.pk).exists())
        _more(other, other_items[1], "b")
        self.assertEqual(export_marks_refresh(), 1)
        consumers[1].pull()
        self.assertEqual(_comparable(consumers[1].lines), _comparable(consumers[1].full()))


class DeletionPropertyTests(incremental.IncrementalPullTests):
    """The random property test of test_incremental_export with items deleted (and some
    imported again under the same external id) between pulls, under several filters at
    once: every consumer still equals a full pull."""

    def _step(self, rng: random.Random, project: Any, n_items: int) -> str:
        roll = rng.random()
        if roll < 0.08:
            alive = list(Item.objects.filter(project=project).order_by("pk"))
            if len(alive) > 8:
                item = rng.choice(alive)
                self._deleted.append(item.external_id)
                item.delete()
            return "delete"
        if roll < 0.11 and self._deleted:
            external_id = self._deleted.pop(rng.randrange(len(self._deleted)))
            n = int(external_id[1:])
            language = "de" if n % 4 else "sw"
            if project.task_type == TaskType.PAIRWISE:
                line = {
                    "external_id": external_id,
                    "language": language,
                    "prompt": f"Frage {n % 9}",
                    "response_a": f"A{n}'",
                    "response_b": f"B{n}'",
                }
            else:
                line = {
                    "external_id": external_id,
                    "language": language,
                    "prompt": f"Frage {n % 7}",
                    "prompt_id": f"q{n % 7}",
                    "response": f"Antwort {n}'",
                }
            import_items(project, [line])
            return "reimport"
        return super()._step(rng, project, n_items)

    # The parent's tests run here as they are; these two add deletions. One seed each: on
    # PostgreSQL the temporary tables of many markings in one test transaction hold locks
    # until it ends.
    test_pairwise_pulls_equal_a_full_pull_under_every_filter = None  # type: ignore[assignment]
    test_rating_pulls_equal_a_full_pull_in_every_shape = None  # type: ignore[assignment]

    def test_pairwise_with_deletions(self):
        self._deleted: list[str] = []
        self._run(
            task_type=TaskType.PAIRWISE,
            overlap=3,
            seed=21,
            filters_list=[
                {},
                {"language": "sw", "style": "conversational"},
                {"split": "test", "test_fraction": 0.5, "margin": "scaled"},
            ],
        )

    def test_rating_with_deletions(self):
        self._deleted = []
        self._run(
            task_type=TaskType.RATING,
            overlap=2,
            seed=22,
            schema={"scale": {"min": 1, "max": 5}},
            filters_list=[
                {"pairs": "all", "min_gap": 1},
                {"shape": "unpaired", "split": "test", "test_fraction": 0.5},
                {"split": "test", "test_fraction": 0.5},
            ],
        )

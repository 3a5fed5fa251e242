"""What an incremental pull reads: the items recorded as changed (ExportPending).

The database records every move of an item's `label_version` (trigger
`item_export_pending`), whatever wrote it; a pull takes and clears what it marked, and a
write still in flight while a pull marks is never lost: its row stays locked until it
commits, so the pull waits for it and reads the new version (PostgreSQL, real threads).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.models import F
from django.test import TransactionTestCase

from annotation.exports import preference_export
from annotation.models import ExportPending, Item, Judgment, TaskType
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.annotation.test_incremental_export import Consumer, _comparable
from tests.factories import ProjectFactory, UserFactory


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

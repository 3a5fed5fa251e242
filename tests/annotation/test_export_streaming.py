"""Streaming an export: votes aggregated by the database and labelled by the label rule,
the fetching thread on PostgreSQL, repeated marking, and the JSON Lines writer.
"""

from __future__ import annotations

import json
import random
import threading
from unittest import mock

import numpy as np
import pytest
from django.db import OperationalError, connection, transaction

from annotation.agreement import FittedChoices, item_labels
from annotation.exports import jsonl_stream, preference_export
from annotation.exports.writers import LINES_PER_WRITE
from annotation.labels import LabelRule, item_label
from annotation.models import ExportMark, ExternalRater, Item, ItemStatus, Judgment, TaskType
from annotation.qualification import evaluator_language_add, qualification_grant
from annotation.queue import item_claim_next, judgment_submit
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.annotation.export_support import pair_line, votes
from tests.factories import ProjectFactory, UserFactory


class StreamedLabelTests(ApiTestCase):
    """The export reads each item's votes as one aggregated row (SQL on each database) and
    labels them as the label rule labels the judgments read one by one."""

    def test_every_exported_pair_is_labelled_as_its_judgments_say(self):
        rng = random.Random(11)
        pairs = ProjectFactory(
            slug="sql-votes", task_type=TaskType.PAIRWISE, languages=["de"], overlap=2
        )
        import_items(pairs, [pair_line(n) for n in range(60)])
        choices = ("a", "b", "tie", "both_bad")
        for n in range(60):
            picks = [rng.choice(choices) for _ in range(rng.choice((2, 3, 4, 5)))]
            import_judgments(
                pairs,
                [
                    {
                        "item_external_id": f"p-{n}",
                        "rater": f"r{k}",
                        "value": {"choice": c, "strength": rng.choice((1, 2))}
                        if c in "ab"
                        else {"choice": c},
                    }
                    for k, c in enumerate(picks)
                ],
            )
        lines = {
            line["item_id"]: line
            for line in preference_export(project=pairs, exclude_ties=False).rows
        }
        seen = {"a": 0, "b": 0, "tie": 0, "both_bad": 0}
        for item in Item.objects.filter(project=pairs):
            values = (
                Judgment.objects.filter(item=item).order_by("id").values_list("value", flat=True)
            )
            label = item_label(
                rule=LabelRule.of(pairs), votes=[(v["choice"], v.get("strength")) for v in values]
            )
            choice = label.value["choice"]
            seen[choice] += 1
            line = lines.pop(item.external_id, None)
            if choice == "both_bad":
                self.assertIsNone(line)
                continue
            self.assertEqual(line["tie"], choice == "tie", item.external_id)
            self.assertEqual(line["chosen"], item.response_b if choice == "b" else item.response_a)
            self.assertEqual(line["gap"], float(label.value.get("strength", 0)))
            self.assertEqual(
                (line["n_judgments"], line["agreement"]), (label.n_judgments, label.agreement)
            )
        self.assertEqual(lines, {})
        self.assertTrue(all(seen.values()), seen)  # every kind of outcome was exercised

    def test_dawid_skene_pairs_are_labelled_as_item_labels_labels_them(self):
        # Two raters who always answer "b" outvote the careful ones on items whose answer
        # is "a"; Dawid–Skene learns that their "b" says nothing and sides with the others.
        rng = random.Random(5)
        pairs = ProjectFactory(
            slug="ds-votes", task_type=TaskType.PAIRWISE, languages=["de"], overlap=2
        )
        import_items(pairs, [pair_line(n) for n in range(40)])
        judgments = []
        for n in range(40):
            truth = rng.choice("ab")
            raters = {
                "good1": truth,
                "good2": truth if rng.random() < 0.9 else "b",
                "good3": truth if rng.random() < 0.9 else "a",
                "spam1": "b",
                "spam2": "b",
            }
            if n % 4 == 0:
                del raters["good3"]
            judgments += [
                {
                    "item_external_id": f"p-{n}",
                    "rater": rater,
                    "value": {"choice": choice, "strength": rng.choice((1, 2))},
                }
                for rater, choice in raters.items()
            ]
        import_judgments(pairs, judgments)
        fitted = item_labels(project=pairs, method="dawid_skene")
        majority = item_labels(project=pairs)
        overruled = [
            pk for pk in fitted if fitted[pk].value["choice"] != majority[pk].value["choice"]
        ]
        self.assertGreaterEqual(len(overruled), 3)  # the test exercises a real difference
        lines = {
            line["item_id"]: line
            for line in preference_export(
                project=pairs, method="dawid_skene", exclude_ties=False
            ).rows
        }
        for item in Item.objects.filter(project=pairs):
            label, line = fitted[item.pk], lines.pop(item.external_id)
            choice = label.value["choice"]
            self.assertEqual(
                line["chosen"],
                item.response_b if choice == "b" else item.response_a,
                item.external_id,
            )
            self.assertEqual(line["gap"], float(label.value.get("strength", 0)))
            self.assertEqual(
                (line["n_judgments"], line["agreement"]), (label.n_judgments, label.agreement)
            )
            self.assertEqual(line["label_source"], "dawid_skene")
        self.assertEqual(lines, {})

    def test_dawid_skene_keeps_an_evaluator_and_an_external_rater_with_the_same_id_apart(self):
        rng = random.Random(7)
        pairs = ProjectFactory(
            slug="ds-mixed", task_type=TaskType.PAIRWISE, languages=["de"], overlap=2
        )
        import_items(pairs, [pair_line(n) for n in range(30)])
        evaluators = [UserFactory() for _ in range(2)]
        # External raters whose ids are the evaluators' ids: one integer column must not merge them.
        for user in evaluators:
            ExternalRater.objects.create(
                pk=user.pk, project=pairs, external_id=f"same-id-{user.pk}"
            )
        import_judgments(
            pairs,
            [
                {
                    "item_external_id": f"p-{n}",
                    "rater": rater,
                    "value": {
                        "choice": rng.choice("ab") if rater != "steady" else "a",
                        "strength": 1,
                    },
                }
                for n in range(30)
                for rater in (*(f"same-id-{u.pk}" for u in evaluators), "steady")
            ],
        )
        for user in evaluators:
            evaluator_language_add(user=user, language=self.de)
            qualification_grant(project=pairs, evaluator=user, language=self.de, actor=self.lead)
            for _ in range(30):
                assignment = item_claim_next(evaluator=user, project=pairs)
                judgment_submit(
                    assignment=assignment,
                    evaluator=user,
                    value={"choice": rng.choice(("a", "b", "b", "tie")), "strength": 2},
                )
        fitted = item_labels(project=pairs, method="dawid_skene")
        lines = {
            line["item_id"]: line
            for line in preference_export(
                project=pairs, method="dawid_skene", exclude_ties=False
            ).rows
        }
        for item in Item.objects.filter(project=pairs):
            label, line = fitted[item.pk], lines.pop(item.external_id, None)
            if label.value["choice"] == "both_bad" or item.status == ItemStatus.ADJUDICATION:
                self.assertIsNone(line)  # never exported; held back until adjudicated
                continue
            self.assertEqual(line["tie"], label.value["choice"] == "tie", item.external_id)
            if not line["tie"]:
                self.assertEqual(
                    line["chosen"],
                    item.response_b if label.value["choice"] == "b" else item.response_a,
                    item.external_id,
                )
            self.assertEqual((line["n_judgments"], line["agreement"]), (5, label.agreement))
        self.assertEqual(lines, {})
        self.assertGreater(Item.objects.filter(project=pairs, status=ItemStatus.DONE).count(), 10)

    def test_a_fitted_choice_no_judgment_made_has_strength_1_and_no_agreement(self):
        label = item_label(
            rule=LabelRule(task_type=TaskType.PAIRWISE), votes=[("a", "2"), ("a", "1")], choice="b"
        )
        self.assertEqual(
            (label.value, label.agreement, label.source),
            ({"choice": "b", "strength": 1}, 0.0, "dawid_skene"),
        )
        fitted = FittedChoices(np.array([3, 8]), np.array([1, 0], dtype=np.int8), ("a", "b"))
        self.assertEqual(
            (fitted.get(3), fitted.get(8), fitted.get(5), fitted.get(9)), ("b", "a", None, None)
        )


class _FailingCursor:
    """A server-side cursor whose second fetch fails, as a dropped connection would."""

    def __init__(self, cursor):
        self.cursor, self.fetches = cursor, 0

    def __enter__(self):
        self.cursor.__enter__()
        return self

    def __exit__(self, *exc):
        return self.cursor.__exit__(*exc)

    def execute(self, *args):
        return self.cursor.execute(*args)

    def fetchmany(self, size):
        self.fetches += 1
        if self.fetches == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return self.cursor.fetchmany(size)


def _fetchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "parity-export-fetch"]


@pytest.mark.postgres  # the fetching thread runs on PostgreSQL only
class FetchingThreadTests(ApiTestCase):
    """On PostgreSQL a helper thread fetches the next chunk of rows while the export writes
    the current one; it must never outlive its export."""

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.pairs = ProjectFactory(
            slug="fetching", task_type=TaskType.PAIRWISE, languages=["de"], overlap=1
        )
        import_items(cls.pairs, [pair_line(n) for n in range(20)])
        import_judgments(cls.pairs, [line for n in range(20) for line in votes(f"p-{n}", "a")])

    def test_all_rows_arrive_in_mark_order_across_many_chunks(self):
        with mock.patch("annotation.exports.rows.CHUNK", 3):
            lines = list(preference_export(project=self.pairs).rows)
        self.assertEqual([line["item_id"] for line in lines], [f"p-{n}" for n in range(20)])
        self.assertEqual(_fetchers(), [])

    def test_a_client_that_goes_away_stops_the_thread_and_leaves_the_connection_usable(self):
        with mock.patch("annotation.exports.rows.CHUNK", 2):
            rows = preference_export(project=self.pairs).rows
            self.assertEqual(next(rows)["item_id"], "p-0")
            self.assertEqual(len(_fetchers()), 1)  # waiting to fetch ahead
            rows.close()
        self.assertEqual(_fetchers(), [])
        self.assertEqual(Item.objects.filter(project=self.pairs).count(), 20)

    def test_a_writer_closed_by_a_client_that_goes_away_stops_the_thread(self):
        with (
            mock.patch("annotation.exports.rows.CHUNK", 2),
            mock.patch("annotation.exports.writers.LINES_PER_WRITE", 1),
        ):
            stream = jsonl_stream(preference_export(project=self.pairs).rows)
            self.assertIn(b'"p-0"', next(stream))
            self.assertEqual(len(_fetchers()), 1)
            stream.close()  # what the server does with the response of a client that left
        self.assertEqual(_fetchers(), [])

    def test_an_error_while_labelling_stops_the_thread_before_the_transaction_ends(self):
        real = item_label
        labelled = []

        def failing(**kwargs):
            labelled.append(1)
            if len(labelled) == 5:
                raise ValueError("cannot label this item")
            return real(**kwargs)

        with (
            mock.patch("annotation.exports.rows.CHUNK", 2),
            mock.patch("annotation.exports.preferences.item_label", failing),
        ):
            with self.assertRaisesMessage(ValueError, "cannot label this item") as raised:
                list(preference_export(project=self.pairs).rows)
        # The exception and its traceback are still held here; the cleanup must not wait for them.
        self.assertIsNotNone(raised.exception)
        self.assertEqual(_fetchers(), [])
        with transaction.atomic():
            self.assertEqual(Item.objects.filter(project=self.pairs).count(), 20)

    def test_an_error_while_fetching_reaches_the_export_and_stops_the_thread(self):
        real = connection.chunked_cursor
        with (
            mock.patch("annotation.exports.rows.CHUNK", 2),
            mock.patch.object(connection, "chunked_cursor", lambda: _FailingCursor(real())),
        ):
            rows = preference_export(project=self.pairs).rows
            got = []
            with self.assertRaisesMessage(OperationalError, "server closed the connection"):
                for line in rows:
                    got.append(line["item_id"])
        self.assertEqual(got, ["p-0", "p-1"])  # the first chunk, then the error
        self.assertEqual(_fetchers(), [])


@pytest.mark.postgres
class RepeatedMarkingTests(ApiTestCase):
    def test_marking_keeps_working_once_its_statements_are_prepared(self):
        # Marking drops and re-creates a temporary table each time; past the prepare
        # threshold its statements run prepared, and must still see the new table.
        pairs = ProjectFactory(
            slug="many-pulls", task_type=TaskType.PAIRWISE, languages=["de"], overlap=1
        )
        for n in range(8):
            import_items(pairs, [pair_line(n)])
            import_judgments(pairs, votes(f"p-{n}", "a"))
            self.assertEqual(len(list(preference_export(project=pairs).rows)), n + 1)
        self.assertEqual(ExportMark.objects.filter(project=pairs).count(), 8)


def test_jsonl_stream_writes_every_row_once_in_order_across_writes():
    # More rows than one write holds, one of them beyond orjson (an integer over 64 bits).
    rows = [{"n": n, "text": "ሰላም\n世界"} for n in range(LINES_PER_WRITE * 2 + 3)]
    rows[LINES_PER_WRITE]["n"] = 2**70
    chunks = list(jsonl_stream(iter(rows)))
    assert len(chunks) == 3
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    lines = b"".join(chunks).decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert list(jsonl_stream(iter([]))) == []

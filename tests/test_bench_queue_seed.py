"""The queue benchmark's set-up (bench/queue_seed.py) leaves the planner what a live database
would: statistics for the tables it filled, and none for the empty ones the run fills.

Analysed while empty, the assignments and judgments were known to be empty, and every
gunicorn worker's prepared statements settled on sequential scans of them for the whole
run: PostgreSQL's CPU per judgment grew through a run, most of all for the card's progress."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import TransactionTestCase

from bench.queue_seed import seed

RUN_FILLS = ("annotation_assignment", "annotation_judgment")


@pytest.mark.postgres
class QueueSeedStatisticsTests(TransactionTestCase):
    def _row_estimates(self, *tables: str) -> dict[str, float]:
        """pg_class.reltuples: -1 for a table never analysed (the planner then sizes it from
        its pages), 0 for one analysed while empty."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, reltuples FROM pg_class WHERE oid = ANY(%s::regclass[])",
                [list(tables)],
            )
            return dict(cursor.fetchall())

    def test_it_analyses_the_items_and_not_the_tables_the_run_fills(self):
        with connection.cursor() as cursor:
            # As in the bench's new database: empty, no pages, never analysed (earlier
            # tests' rolled-back rows leave pages behind).
            cursor.execute(f"TRUNCATE {', '.join(RUN_FILLS)} CASCADE")
        self.assertEqual(self._row_estimates(*RUN_FILLS), dict.fromkeys(RUN_FILLS, -1))

        seed(items=40, languages=["de"], evaluators=1, overlap=3, per_evaluator=1)

        self.assertEqual(
            self._row_estimates("annotation_item", *RUN_FILLS),
            {"annotation_item": 40, **dict.fromkeys(RUN_FILLS, -1)},
        )

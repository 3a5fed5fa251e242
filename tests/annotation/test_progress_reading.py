"""The progress report's read of a project (annotation/progress/loading.py and columns.py):
a fixed set of queries whatever the project's size, and text that survives the bulk read."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.demo_data import numbered
from annotation.imports import items_import, judgments_import
from annotation.progress import BY_CHOICES, progress_report
from tests.annotation.test_progress import _build, _rows
from tests.base import ParityTestCase


class ReadingAtScaleTests(ParityTestCase):
    """The report reads a project in a fixed set of queries of a fixed size: it once sent
    every judged item's id as a parameter, which PostgreSQL refuses beyond 65,535, so a
    project past that many judged items got no report at all."""

    def _queries(self, by: str) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            progress_report(project=self.project, by=by, resamples=20)
        # The text without its numbers: ids and counts may differ, the shape may not.
        return [re.sub(r"\d+", "0", q["sql"]) for q in queries.captured_queries]

    def test_its_queries_do_not_grow_with_the_items(self):
        _build(self.project, {("de", "v1"): 3.0, ("de", "v2"): 4.0}, n=5)
        small = {by: self._queries(by) for by in BY_CHOICES}
        _build(self.project, {("ar", "v1"): 3.0, ("zh", "v2"): 4.0}, n=60, seed=4)
        for by in BY_CHOICES:
            self.assertEqual(self._queries(by), small[by], by)

    def test_model_names_with_commas_quotes_and_newlines_survive_the_read(self):
        names = ['m,1 "quoted"', "NA", "two\nlines", ""]
        items_import(
            project=self.project,
            records=numbered(
                [
                    {"external_id": f"x{k}", "language": "de", "response": "r", "model": name}
                    for k in range(12)
                    for name in [names[k % 4]]
                ]
            ),
        )
        judgments_import(
            project=self.project,
            records=numbered(
                [
                    {"item_external_id": f"x{k}", "rater": "r", "value": {"score": 1 + k % 4}}
                    for k in range(12)
                ]
            ),
        )
        report = progress_report(project=self.project, by="model", resamples=20)
        series = _rows(report)["de"]
        self.assertEqual(set(series), {'m,1 "quoted"', "NA", "two\nlines", "(none)"})
        self.assertEqual(series["NA"]["value"], 2.0)
        self.assertEqual(series["(none)"]["value"], 4.0)

"""The progress report's `since_round`: each language before and after the latest
active-learning round (annotation/progress/since_round.py), in the JSON and on the pages."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.test import Client
from django.urls import reverse

from annotation.audit import AL_ROUND_RUN
from annotation.demo_data import numbered
from annotation.imports import items_import, judgments_import
from annotation.models import AuditEvent, FinalLabel, Item
from annotation.progress import progress_report, share_link_create
from tests.annotation.test_progress import START
from tests.base import ParityTestCase


class SinceRoundTests(ParityTestCase):
    """Each language before and after the latest active-learning round: what was judged
    when the round ran, against all there is now."""

    def _judge(self, start: int, stop: int, when: datetime, scores=(2, 4)) -> None:
        items_import(
            project=self.project,
            records=numbered(
                [
                    {"external_id": f"r{k}", "language": "de", "response": "r", "model": "m"}
                    for k in range(start, stop)
                ]
            ),
        )
        judgments_import(
            project=self.project,
            records=numbered(
                [
                    {
                        "item_external_id": f"r{k}",
                        "rater": f"x{r}",
                        "value": {"score": scores[k % len(scores)]},
                        "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                    for k in range(start, stop)
                    for r in range(2)
                ]
            ),
        )

    def test_without_a_round_there_is_nothing_to_compare(self):
        self._judge(0, 10, START)
        self.assertIsNone(progress_report(project=self.project, resamples=50)["since_round"])

    def test_it_compares_each_language_when_the_round_ran_with_now(self):
        self._judge(0, 12, START)
        AuditEvent.objects.create(
            project=self.project,
            verb=AL_ROUND_RUN,
            object_type="selectionround",
            object_id="7",
            data={"strategy": "parity", "selected": 24},
            created_at=START + timedelta(days=1),
        )
        # The round's picks, judged after it: a random audit slice, which counts towards
        # quality, and uncertainty picks, which are judged items but not quality items.
        self._judge(12, 24, START + timedelta(days=2), scores=(4, 5))
        self._judge(24, 36, START + timedelta(days=2), scores=(1,))
        Item.objects.filter(
            project=self.project, external_id__in=[f"r{k}" for k in range(24, 36)]
        ).update(selection="uncertainty")
        report = progress_report(project=self.project, resamples=300)
        since = report["since_round"]
        self.assertEqual(
            (since["round"], since["strategy"], since["selected"]), ("7", "parity", 24)
        )
        de = {row["language"]: row for row in since["languages"]}["de"]
        self.assertEqual((de["before"]["items_judged"], de["after"]["items_judged"]), (12, 36))
        self.assertEqual((de["before"]["items"], de["after"]["items"]), (12, 24))
        self.assertAlmostEqual(de["before"]["value"], 3.0)
        self.assertAlmostEqual(de["after"]["value"], (12 * 3.0 + 6 * 4 + 6 * 5) / 24)
        before, after = de["before"], de["after"]
        self.assertAlmostEqual(before["ci_width"], before["ci"][1] - before["ci"][0])
        self.assertLess(before["ci"][0], 3.0)
        self.assertGreater(before["ci"][1], 3.0)
        self.assertLess(after["ci_width"], before["ci_width"])
        # A language without judgments has nothing on either side.
        ar = {row["language"]: row for row in since["languages"]}["ar"]
        self.assertEqual((ar["before"]["items"], ar["after"]["value"]), (0, None))
        # The lead page and the printable report show it.
        client = Client()
        client.force_login(self.lead)
        page = client.get(reverse("annotation:progress", args=[self.project.slug]))
        self.assertContains(page, "Before and after active-learning round 7")
        self.assertContains(page, "12 → 36")
        token = share_link_create(project=self.project, by="model", days=1, actor=self.lead)
        shared = Client().get(reverse("annotation:progress_shared", args=[token]))
        self.assertContains(shared, "Before and after active-learning round 7")

    def test_a_final_label_counts_from_when_it_was_decided(self):
        self._judge(0, 6, START)
        AuditEvent.objects.create(
            project=self.project,
            verb=AL_ROUND_RUN,
            object_id="1",
            created_at=START + timedelta(days=1),
        )
        item = Item.objects.get(project=self.project, external_id="r0")
        FinalLabel.objects.create(
            item=item,
            value={"score": 5},
            reason="adjudicated",
            created_at=START + timedelta(days=3),
        )
        de = {
            row["language"]: row
            for row in progress_report(project=self.project, resamples=50)["since_round"][
                "languages"
            ]
        }["de"]
        self.assertAlmostEqual(de["before"]["value"], 3.0)
        self.assertAlmostEqual(de["after"]["value"], (5 + 4 + 2 + 4 + 2 + 4) / 6)

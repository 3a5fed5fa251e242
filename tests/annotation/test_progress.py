"""The progress report (quality per language across model versions and periods, with the
CI of each change), the model registry, the next actions, and the ways to share it."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from unittest import mock

import numpy as np
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from annotation.demo_data import numbered
from annotation.imports import items_import, judgments_import
from annotation.model_versions import model_versions_for, model_versions_register
from annotation.models import AuditEvent, Item, ItemStatus, ModelVersion, TaskType
from annotation.progress import (
    progress_csv,
    progress_report,
    regressed_items,
    share_link_create,
)
from annotation.progress.stats import (
    bootstrap_group_means,
    bradley_terry_bootstrap,
    progress_series,
)
from annotation.qualification import evaluator_language_add
from annotation.tokens import api_token_create
from tests.base import ParityTestCase
from tests.factories import ProjectFactory, UserFactory

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday

# True mean rating per (language, model version): v2 is better than v1 in German, worse in
# Arabic; Chinese lags far behind under v1 and catches up under v2 (its gap to the best
# language narrows).
TRUE = {
    ("de", "v1"): 3.0,
    ("de", "v2"): 4.2,
    ("ar", "v1"): 4.2,
    ("ar", "v2"): 3.0,
    ("zh", "v1"): 1.8,
    ("zh", "v2"): 3.9,
}


def _scores(rng: np.random.Generator, mean: float, n: int) -> list[int]:
    """n ratings on 1–5 with the given mean (a two-point distribution around it)."""
    low = int(np.floor(mean))
    p_high = mean - low
    return [int(low + (rng.random() < p_high)) for _ in range(n)]


def _build(
    project,
    effects: dict[tuple[str, str], float],
    *,
    n: int = 40,
    seed: int = 3,
    weeks: dict[str, int] | None = None,
    raters: int = 2,
    prompt_ids: bool = False,
    dated: bool = True,
) -> None:
    """Import n items per (language, model) through the importer, and `raters` equal
    ratings per item with the given mean, judged in the version's week."""
    rng = np.random.default_rng(seed)
    items, judgments = [], []
    for (tag, model), mean in effects.items():
        for k, score in enumerate(_scores(rng, mean, n)):
            external = f"{tag}-{model}-{k}"
            line = {
                "external_id": external,
                "language": tag,
                "prompt": f"p{k}",
                "response": f"r {external}",
                "model": model,
            }
            if prompt_ids:
                line["prompt_id"] = f"{tag}-p{k}"
            items.append(line)
            when = START + timedelta(weeks=(weeks or {}).get(model, 0), hours=k)
            for r in range(raters):
                judgments.append(
                    {
                        "item_external_id": external,
                        "rater": f"{tag}-r{r}",
                        "value": {"score": score},
                        "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                )
    items_import(project=project, records=numbered(items))
    judgments_import(project=project, records=numbered(judgments))
    if dated:
        # Versions follow each other by release date: v1, v2, … a month apart.
        for k, model in enumerate(sorted({model for _, model in effects})):
            ModelVersion.objects.filter(
                project=project, name=model, released_on__isnull=True
            ).update(released_on=date(2025, 1 + k, 1))


def _rows(report):
    return {row["language"]: {e["key"]: e for e in row["series"]} for row in report["languages"]}


class ModelRegistryTests(ParityTestCase):
    def test_it_registers_unknown_models_on_import_once(self):
        lines = [
            {"external_id": f"i{k}", "language": "de", "response": "x", "model": m}
            for k, m in enumerate(["m-large", "m-small", "m-large", ""])
        ]
        items_import(project=self.project, records=numbered(lines))
        items_import(project=self.project, records=numbered(lines))
        self.assertEqual(
            sorted(
                ModelVersion.objects.filter(project=self.project).values_list("name", flat=True)
            ),
            ["m-large", "m-small"],
        )

    def test_it_registers_both_sides_of_pairwise_items(self):
        arena = ProjectFactory(slug="arena-reg", task_type=TaskType.PAIRWISE, languages=["de"])
        items_import(
            project=arena,
            records=numbered(
                [
                    {
                        "external_id": "p1",
                        "language": "de",
                        "response_a": "a",
                        "response_b": "b",
                        "model_a": "x",
                        "model_b": "y",
                    }
                ]
            ),
        )
        self.assertEqual(sorted(arena.model_versions.values_list("name", flat=True)), ["x", "y"])

    def test_registering_a_known_name_again_is_a_no_op(self):
        ModelVersion.objects.create(project=self.project, name="m1", version="1.0")
        # As if a concurrent import registered "m1" between our look-up and our insert.
        with mock.patch("annotation.model_versions.ModelVersion.objects.filter") as lookup:
            lookup.return_value.values_list.return_value = []
            model_versions_register(project=self.project, names=["m1", "m2"])
        self.assertEqual(ModelVersion.objects.get(project=self.project, name="m1").version, "1.0")
        self.assertTrue(ModelVersion.objects.filter(project=self.project, name="m2").exists())

    def test_it_orders_versions_by_release_date_then_name(self):
        for name, released in (
            ("zeta", date(2024, 1, 1)),
            ("alpha", date(2024, 6, 1)),
            ("beta", None),
        ):
            ModelVersion.objects.create(project=self.project, name=name, released_on=released)
        self.assertEqual(
            [mv.name for mv in model_versions_for(project=self.project)], ["zeta", "alpha", "beta"]
        )

    def test_the_lead_edits_a_version_and_a_bad_date_changes_nothing(self):
        mv = ModelVersion.objects.create(project=self.project, name="m1")
        client = Client()
        client.force_login(self.lead)
        url = reverse("annotation:model_versions", args=[self.project.slug])
        response = client.post(
            url, {"id": mv.pk, "version": "1.1", "released_on": "2025-13-40", "notes": ""}
        )
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "YYYY-MM-DD", status_code=400)
        mv.refresh_from_db()
        self.assertEqual((mv.version, mv.released_on), ("", None))
        response = client.post(
            url, {"id": mv.pk, "version": "1.1", "released_on": "2025-02-01", "notes": "RC"}
        )
        self.assertEqual(response.status_code, 302)
        mv.refresh_from_db()
        self.assertEqual((mv.version, mv.released_on, mv.notes), ("1.1", date(2025, 2, 1), "RC"))
        self.assertTrue(
            AuditEvent.objects.filter(verb="model_version.update", object_id=str(mv.pk)).exists()
        )
        self.assertContains(client.get(url), "m1")

    def test_an_evaluator_cannot_see_or_edit_the_registry(self):
        mv = ModelVersion.objects.create(project=self.project, name="m1")
        client = Client()
        client.force_login(self.alice)
        url = reverse("annotation:model_versions", args=[self.project.slug])
        self.assertEqual(client.get(url).status_code, 403)
        self.assertEqual(client.post(url, {"id": mv.pk, "version": "x"}).status_code, 403)
        mv.refresh_from_db()
        self.assertEqual(mv.version, "")


class ProgressByModelTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        _build(cls.project, TRUE, weeks={"v1": 0, "v2": 3}, prompt_ids=True)
        # Names sort the other way round from the release dates: the dates must win.
        ModelVersion.objects.filter(project=cls.project, name="v1").update(
            released_on=date(2025, 2, 1)
        )
        ModelVersion.objects.filter(project=cls.project, name="v2").update(
            released_on=date(2025, 1, 1), version="2.0"
        )
        ModelVersion.objects.filter(project=cls.project, name="v2").update(
            released_on=date(2025, 3, 1)
        )
        cls.report = progress_report(project=cls.project, by="model", resamples=400)

    def test_it_orders_the_versions_by_release(self):
        self.assertEqual([k["key"] for k in self.report["keys"]], ["v1", "v2"])
        self.assertEqual(self.report["keys"][1]["released_on"], "2025-03-01")
        json.dumps(self.report)

    def test_it_finds_a_version_better_in_one_language_and_worse_in_another(self):
        rows = _rows(self.report)
        de, ar = rows["de"]["v2"]["change"], rows["ar"]["v2"]["change"]
        self.assertEqual((de["from"], de["verdict"]), ("v1", "better"))
        self.assertEqual(ar["verdict"], "worse")
        # Each interval holds the true change.
        self.assertLess(de["ci"][0], 1.2)
        self.assertLess(1.2, de["ci"][1])
        self.assertLess(ar["ci"][0], -1.2)
        self.assertLess(-1.2, ar["ci"][1])
        self.assertIsNone(rows["de"]["v1"]["change"])

    def test_it_finds_the_gap_that_narrowed(self):
        rows = _rows(self.report)
        self.assertEqual(rows["zh"]["v1"]["gap"]["best"], "ar")
        self.assertEqual(rows["zh"]["v2"]["gap"]["best"], "de")
        self.assertAlmostEqual(
            rows["zh"]["v1"]["gap"]["value"], rows["ar"]["v1"]["value"] - rows["zh"]["v1"]["value"]
        )
        self.assertEqual(rows["zh"]["v2"]["gap"]["change"]["verdict"], "narrowed")
        self.assertEqual(rows["de"]["v2"]["gap"]["value"], 0.0)

    def test_it_reports_a_regression_with_the_items_that_got_worse(self):
        ar = {row["language"]: row for row in self.report["languages"]}["ar"]
        codes = [a["code"] for a in ar["actions"]]
        self.assertIn("regression", codes)
        url = next(a["url"] for a in ar["actions"] if a["code"] == "regression")
        worse = regressed_items(
            project=self.project, language="ar", by="model", key="v2", previous="v1"
        )
        self.assertTrue(worse)
        self.assertTrue(all(r["score"] < r["before"] and r["matched_prompt"] for r in worse))
        self.assertEqual(worse[0]["item"].model, "v2")
        # The link opens the list, and the lead sends the items to adjudication from it.
        client = Client()
        client.force_login(self.lead)
        page = client.get(url)
        self.assertContains(page, worse[0]["item"].external_id)
        ids = [r["item"].pk for r in worse[:3]]
        Item.objects.filter(pk__in=ids).update(status=ItemStatus.DONE)
        client.post(url, {"items": ids})
        self.assertEqual(Item.objects.filter(pk__in=ids, status=ItemStatus.ADJUDICATION).count(), 3)

    def test_german_shows_no_regression(self):
        de = {row["language"]: row for row in self.report["languages"]}["de"]
        self.assertNotIn("regression", [a["code"] for a in de["actions"]])

    def test_it_writes_one_csv_row_per_language_and_version(self):
        rows = list(csv.DictReader(io.StringIO(progress_csv(self.report))))
        self.assertEqual(len(rows), 6)
        ar = next(r for r in rows if r["language"] == "ar" and r["key"] == "v2")
        self.assertEqual(ar["change_verdict"], "worse")
        self.assertEqual(ar["change_from"], "v1")


class ReleaseOrderTests(ParityTestCase):
    def test_versions_released_together_or_undated_are_not_compared(self):
        _build(
            self.project, {("de", "a"): 3.0, ("de", "b"): 4.2, ("de", "c"): 2.0}, n=20, dated=False
        )
        report = progress_report(project=self.project, by="model", resamples=100)
        de = _rows(report)["de"]
        self.assertEqual([de[k]["change"] for k in "abc"], [None, None, None])
        ModelVersion.objects.filter(project=self.project, name__in=["a", "b"]).update(
            released_on=date(2025, 1, 1)
        )
        ModelVersion.objects.filter(project=self.project, name="c").update(
            released_on=date(2025, 6, 1)
        )
        de = _rows(progress_report(project=self.project, by="model", resamples=100))["de"]
        self.assertIsNone(de["a"]["change"])
        self.assertIsNone(de["b"]["change"])  # released with a: not its successor
        self.assertEqual((de["c"]["change"]["from"], de["c"]["change"]["verdict"]), ("b", "worse"))

    def test_a_version_with_too_few_items_gets_no_verdict_and_is_skipped_as_a_baseline(self):
        _build(self.project, {("de", "v1"): 3.0, ("de", "v3"): 4.2}, n=20)
        _build(self.project, {("de", "v2"): 5.0}, n=3, dated=False)
        ModelVersion.objects.filter(project=self.project, name="v2").update(
            released_on=date(2025, 1, 15)
        )
        de = _rows(progress_report(project=self.project, by="model", resamples=100))["de"]
        self.assertEqual(
            (de["v2"]["items"], de["v2"]["change"]["ci"], de["v2"]["change"]["verdict"]),
            (3, [None, None], "no_evidence"),
        )
        # v3 is compared with v1, the last version with enough items.
        self.assertEqual(
            (de["v3"]["change"]["from"], de["v3"]["change"]["verdict"]), ("v1", "better")
        )


class ProgressByPeriodTests(ParityTestCase):
    def test_it_groups_items_by_week_and_by_month_of_judgment(self):
        _build(self.project, {("de", "v1"): 3.0, ("de", "v2"): 4.2}, weeks={"v1": 0, "v2": 5})
        weekly = progress_report(project=self.project, by="period", period="week", resamples=200)
        self.assertEqual([k["key"] for k in weekly["keys"]], ["2025-03-03", "2025-04-07"])
        de = _rows(weekly)["de"]
        self.assertEqual(de["2025-04-07"]["change"]["verdict"], "better")
        monthly = progress_report(project=self.project, by="period", period="month", resamples=200)
        self.assertEqual([k["key"] for k in monthly["keys"]], ["2025-03-01", "2025-04-01"])

    def test_it_refuses_bad_arguments_by_name(self):
        with self.assertRaisesMessage(ValidationError, "by must be one of model, period"):
            progress_report(project=self.project, by="language")
        with self.assertRaisesMessage(ValidationError, "period must be one of week, month"):
            progress_report(project=self.project, by="period", period="day")


class ProgressDetailsTests(ParityTestCase):
    def test_it_breaks_quality_down_by_dialect_domain_task_and_code_switching(self):
        items = []
        for k in range(20):
            items.append(
                {
                    "external_id": f"i{k}",
                    "language": "ar",
                    "response": "x",
                    "model": "m",
                    "metadata": {"domain": "news" if k < 10 else "chat", "task": "mt"},
                }
            )
        items_import(project=self.project, records=numbered(items))
        Item.objects.filter(project=self.project, external_id__in=["i0", "i1"]).update(
            language_check={
                "mixed": [{"language": "en", "start": 0, "end": 9}],
                "flags": ["code_switching"],
            }
        )
        Item.objects.filter(project=self.project, external_id__in=["i2"]).update(
            language_check={"flags": []}
        )
        # Two evaluators with different dialects judge every item through the queue model.
        egypt, gulf = UserFactory(username="egypt"), UserFactory(username="gulf")
        evaluator_language_add(user=egypt, language=self.ar, dialect="Egyptian")
        evaluator_language_add(user=gulf, language=self.ar, dialect="Gulf")
        from annotation.models import Assignment, Judgment

        for item in Item.objects.filter(project=self.project):
            for user, score in ((egypt, 5 if item.metadata["domain"] == "news" else 4), (gulf, 2)):
                assignment = Assignment.objects.create(
                    item=item,
                    evaluator=user,
                    project=self.project,
                    lease_expires_at=START,
                    status="submitted",
                )
                Judgment.objects.create(
                    item=item,
                    assignment=assignment,
                    evaluator=user,
                    kind="production",
                    value={"score": score},
                    guideline_version="1.0",
                )
        report = progress_report(project=self.project, by="model", resamples=200)
        ar = {row["language"]: row for row in report["languages"]}["ar"]["breakdowns"]
        dialects = {g["key"]: g for g in ar["dialect"]}
        self.assertEqual(dialects["Egyptian"]["value"], 4.5)
        self.assertEqual(dialects["Gulf"]["value"], 2.0)
        domains = {g["key"]: g["value"] for g in ar["domain"]}
        self.assertEqual(domains, {"chat": 3.0, "news": 3.5})
        self.assertEqual([g["key"] for g in ar["task"]], ["mt"])
        switched = {g["key"]: g["items"] for g in ar["code_switched"]}
        self.assertEqual(switched, {"code_switched": 2, "single_language": 1, "unchecked": 17})
        agreement = {row["language"]: row for row in report["languages"]}["ar"]["agreement"]
        self.assertEqual([g["version"] for g in agreement["by_guideline_version"]], ["1.0"])
        # The raters disagree: agreement is below the threshold and the report says calibrate.
        actions = {row["language"]: row for row in report["languages"]}["ar"]["actions"]
        calibrate = next(a for a in actions if a["code"] == "calibrate")
        self.assertEqual(calibrate["url"], f"/p/{self.project.slug}/lead/calibration/?language=ar")

    def test_it_suggests_an_active_learning_budget_when_intervals_are_too_wide(self):
        _build(
            self.project,
            {("de", "v1"): 3.0, ("de", "v2"): 3.3, ("ar", "v1"): 3.2, ("ar", "v2"): 3.5},
            n=8,
        )
        report = progress_report(project=self.project, by="model", resamples=300)
        de = {row["language"]: row for row in report["languages"]}["de"]
        self.assertEqual(de["series"][-1]["change"]["verdict"], "no_evidence")
        action = next(a for a in de["actions"] if a["code"] == "active_learning")
        self.assertGreater(action["budget"], 8)
        self.assertIn("strategy=parity", action["url"])
        self.assertIn(f"budget={action['budget']}", action["url"])

    def test_it_points_to_the_adjudication_backlog(self):
        _build(self.project, {("de", "v1"): 3.0}, n=5)
        first = Item.objects.filter(project=self.project).order_by("pk").first()
        Item.objects.filter(pk=first.pk).update(status=ItemStatus.ADJUDICATION)
        report = progress_report(project=self.project, by="model", resamples=0)
        de = {row["language"]: row for row in report["languages"]}["de"]
        action = next(a for a in de["actions"] if a["code"] == "adjudicate")
        self.assertEqual(
            (action["count"], action["url"]), (1, f"/p/{self.project.slug}/adjudication/")
        )


class PairwiseProgressTests(ParityTestCase):
    def test_it_gives_win_rates_and_bradley_terry_strengths_with_cis(self):
        arena = ProjectFactory(slug="arena-progress", task_type=TaskType.PAIRWISE, languages=["de"])
        rng = np.random.default_rng(5)
        strength = {"old": 0.0, "mid": 0.7, "new": 1.5}
        names = list(strength)
        items, judgments = [], []
        for k in range(300):
            a, b = rng.choice(names, 2, replace=False)
            p_a = 1 / (1 + np.exp(strength[b] - strength[a]))
            items.append(
                {
                    "external_id": f"p{k}",
                    "language": "de",
                    "response_a": "a",
                    "response_b": "b",
                    "model_a": str(a),
                    "model_b": str(b),
                }
            )
            judgments.append(
                {
                    "item_external_id": f"p{k}",
                    "rater": "r1",
                    "value": {"choice": "a" if rng.random() < p_a else "b"},
                }
            )
        items_import(project=arena, records=numbered(items))
        judgments_import(project=arena, records=numbered(judgments))
        report = progress_report(project=arena, by="model", resamples=300)
        bt = report["languages"][0]["bradley_terry"]
        self.assertEqual([m["model"] for m in bt], ["new", "mid", "old"])
        for m in bt:
            self.assertLess(m["ci"][0], m["strength"])
            self.assertLess(m["strength"], m["ci"][1])
            self.assertLess(m["win_ci"][0], m["win_rate"])
        # The true spread (new − old = 1.5) lies inside the estimated strengths' span.
        self.assertLess(bt[-1]["ci"][0] - 0.0, bt[0]["ci"][1])
        series = {e["key"]: e for e in report["languages"][0]["series"]}
        self.assertGreater(series["new"]["value"], 0.5)
        self.assertLess(series["old"]["value"], 0.5)


class CoverageTests(ParityTestCase):
    """Over seeded repetitions, the 95% interval of a change covers the true change at
    about the stated rate (vectorised: every repetition is a pair of groups of one
    bootstrap call)."""

    def test_the_interval_of_a_difference_covers_the_true_effect_at_the_stated_rate(self):
        rng = np.random.default_rng(11)
        reps, n = 400, 40
        p_old = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
        p_new = np.array([0.05, 0.1, 0.25, 0.35, 0.25])
        scale = np.arange(1, 6)
        truth = p_new @ scale - p_old @ scale
        old = rng.choice(scale, size=(reps, n), p=p_old)
        new = rng.choice(scale, size=(reps, n), p=p_new)
        # Groups 2r (old) and 2r+1 (new) of repetition r; "language" = repetition.
        language = np.repeat(np.arange(reps), 2 * n)
        key = np.tile(np.repeat([0, 1], n), reps)
        score = np.concatenate([old, new], axis=1).ravel()
        series = progress_series(
            language, key, score, n_languages=reps, n_keys=2, resamples=500, seed=3
        )
        lo, hi = series.change_ci[:, 1, 0], series.change_ci[:, 1, 1]
        coverage = float(np.mean((lo <= truth) & (truth <= hi)))
        self.assertGreater(coverage, 0.91)
        self.assertLess(coverage, 0.98)
        # And no effect: "better" or "worse" about 5% of the time, not more.
        same = rng.choice(scale, size=(reps, 2 * n), p=p_old).ravel()
        null = progress_series(
            language, key, same, n_languages=reps, n_keys=2, resamples=500, seed=4
        )
        self.assertLess(float(np.mean(null.change_verdict[:, 1] != 0)), 0.09)

    def test_group_means_match_a_plain_bootstrap(self):
        rng = np.random.default_rng(1)
        values = rng.integers(1, 6, 50).astype(float)
        gm = bootstrap_group_means(
            np.zeros(50, dtype=int), values, n_groups=1, resamples=4000, seed=2
        )
        plain = values[rng.integers(0, 50, (4000, 50))].mean(axis=1)
        self.assertAlmostEqual(gm.mean[0], values.mean())
        self.assertAlmostEqual(float(gm.draws[0].std()), float(plain.std()), delta=0.01)
        # A small group (fewer than four items per distinct value) is resampled by index.
        few = values[:12]
        gm_few = bootstrap_group_means(
            np.zeros(12, dtype=int), few, n_groups=1, resamples=4000, seed=2
        )
        plain_few = few[rng.integers(0, 12, (4000, 12))].mean(axis=1)
        self.assertAlmostEqual(float(gm_few.draws[0].std()), float(plain_few.std()), delta=0.03)
        # Many distinct values take the index path and agree too.
        cont = rng.normal(size=400)
        gm2 = bootstrap_group_means(
            np.zeros(400, dtype=int), cont, n_groups=1, resamples=2000, seed=2
        )
        self.assertAlmostEqual(float(gm2.draws[0].std()), 1 / np.sqrt(400), delta=0.01)

    def test_bradley_terry_ties_and_an_unbeaten_model_stay_finite(self):
        bt = bradley_terry_bootstrap(
            np.array([0, 0, 1]),
            np.array([1, 1, 2]),
            np.array([1.0, 1.0, 0.5]),
            n_models=3,
            resamples=100,
        )
        self.assertTrue(np.isfinite(bt.strength).all())
        self.assertGreater(bt.strength[0], bt.strength[1])


class ProgressSharingTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        _build(cls.project, {("de", "v1"): 3.0, ("de", "v2"): 4.2, ("ar", "v1"): 3.5}, n=12)

    def setUp(self) -> None:
        # The shared page caches its report per project: no test sees another's.
        cache.clear()

    def test_the_api_gives_the_report_by_model_and_period_as_json_and_csv(self):
        token = api_token_create(project=self.project, scope="read", name="r")[1]
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        url = f"/api/v1/projects/{self.project.slug}/parity/"
        body = client.get(url, {"by": "model", "resamples": 100}).json()
        self.assertEqual([k["key"] for k in body["keys"]], ["v1", "v2"])
        self.assertEqual(body["languages"][1]["series"][1]["change"]["verdict"], "better")
        self.assertEqual(client.get(url, {"by": "period"}).json()["by"], "period")
        response = client.get(url, {"by": "model", "format": "csv", "resamples": 50})
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertTrue(response.content.decode().startswith("language,key,items"))
        self.assertIn("languages", client.get(url).json())  # the snapshot stays as it was
        bad = client.get(url, {"by": "language"})
        self.assertEqual(bad.status_code, 400)
        self.assertEqual(bad.json()["errors"][0]["field"], "by")
        self.assertEqual(client.get(url, {"format": "csv"}).status_code, 400)

    def test_the_command_prints_json_csv_and_a_table(self):
        out = StringIO()
        call_command(
            "parity",
            "--project",
            self.project.slug,
            "--by",
            "model",
            "--json",
            "--resamples",
            "100",
            stdout=out,
        )
        self.assertEqual(json.loads(out.getvalue())["by"], "model")
        out = StringIO()
        call_command(
            "parity",
            "--project",
            self.project.slug,
            "--by",
            "period",
            "--csv",
            "--resamples",
            "50",
            stdout=out,
        )
        self.assertTrue(out.getvalue().startswith("language,key,items"))
        out = StringIO()
        call_command(
            "parity",
            "--project",
            self.project.slug,
            "--by",
            "model",
            "--resamples",
            "50",
            stdout=out,
        )
        self.assertIn("better", out.getvalue())
        with self.assertRaisesMessage(CommandError, "--csv needs --by"):
            call_command("parity", "--project", self.project.slug, "--csv")

    def test_the_lead_page_shows_the_report_and_a_csv(self):
        client = Client()
        client.force_login(self.lead)
        url = reverse("annotation:progress", args=[self.project.slug])
        page = client.get(url)
        self.assertContains(page, "<svg", count=2)
        self.assertContains(page, 'class="verdict better"')
        self.assertEqual(client.get(url, {"by": "period", "period": "month"}).status_code, 200)
        self.assertEqual(client.get(url, {"by": "x"}).status_code, 400)
        response = client.get(url, {"format": "csv"})
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        outsider = Client()
        outsider.force_login(self.alice)
        self.assertEqual(outsider.get(url).status_code, 403)

    def test_a_share_link_opens_the_printable_report_without_an_account_until_it_expires(self):
        client = Client()
        client.force_login(self.lead)
        response = client.post(
            reverse("annotation:progress_share", args=[self.project.slug]),
            {"by": "model", "days": "3"},
            follow=True,
        )
        share = response.context["share_url"]
        self.assertIn("/shared/progress/", share)
        path = share[share.index("/shared/") :]
        anonymous = Client()
        page = anonymous.get(path)
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, "<svg", count=2)
        self.assertNotContains(page, "csrfmiddlewaretoken")  # read-only: no form
        # Reloads within a few minutes reuse the computed report.
        with mock.patch("annotation.views.progress.progress_report") as compute:
            self.assertEqual(anonymous.get(path).status_code, 200)
        compute.assert_not_called()
        self.assertEqual(anonymous.get(path[:-3] + "xx/").status_code, 404)
        with mock.patch(
            "django.core.signing.time.time", return_value=__import__("time").time() + 4 * 86400
        ):
            self.assertEqual(anonymous.get(path).status_code, 410)
        self.assertTrue(AuditEvent.objects.filter(verb="progress.share").exists())

    def test_only_a_lead_creates_a_share_link_and_for_at_most_90_days(self):
        client = Client()
        client.force_login(self.alice)
        self.assertEqual(
            client.post(
                reverse("annotation:progress_share", args=[self.project.slug]),
                {"by": "model", "days": "3"},
            ).status_code,
            403,
        )
        with self.assertRaises(ValidationError):
            share_link_create(project=self.project, by="model", days=91, actor=self.lead)
        token = share_link_create(project=self.project, by="model", days=1, actor=self.lead)
        with self.assertRaises(signing.BadSignature):
            signing.TimestampSigner(salt="other").unsign_object(token)


class ActionLinkTests(ParityTestCase):
    def test_the_action_links_prefill_the_forms_they_open(self):
        client = Client()
        client.force_login(self.lead)
        page = client.get(f"/p/{self.project.slug}/lead/al/?strategy=parity&budget=137&language=ar")
        self.assertContains(page, 'value="137"')
        page = client.get(f"/p/{self.project.slug}/lead/calibration/?language=ar")
        self.assertContains(page, 'value="ar"')


class RegistryMigrationTests(ParityTestCase):
    def test_the_migration_registers_the_models_of_existing_items(self):
        import importlib

        from django.apps import apps

        from tests.factories import ItemFactory

        ItemFactory(project=self.project, model="old-model")
        arena = ProjectFactory(slug="arena-mig", task_type=TaskType.PAIRWISE, languages=["de"])
        ItemFactory(project=arena, model_a="a-model", model_b="b-model")
        ModelVersion.objects.all().delete()
        migration = importlib.import_module("annotation.migrations.0004_model_versions")
        migration._register_existing(apps, None)
        migration._register_existing(apps, None)  # again: nothing twice
        self.assertEqual(
            sorted(ModelVersion.objects.values_list("project__slug", "name")),
            [("arena-mig", "a-model"), ("arena-mig", "b-model"), ("mt-rating", "old-model")],
        )


class BudgetTests(ParityTestCase):
    def test_the_budget_shrinks_only_this_languages_share_of_the_interval(self):
        from annotation.progress.actions import _budget

        latest = {
            "key": "v2",
            "items": 10,
            "value": 3.5,
            "ci": [3.1, 3.9],
            "change": {"from": "v1", "value": 0.5, "ci": [-0.1, 1.0], "verdict": "no_evidence"},
            "gap": None,
        }
        row = {"language": "de", "series": [latest]}
        # h_this 0.4, h_other 0.2, target 0.25: this language's half-width must fall to
        # √(0.25² − 0.2²) = 0.15, i.e. 10 × (0.4 / 0.15)² = 71.1 items, 62 more.
        self.assertEqual(_budget(row, {("de", "v1"): [2.8, 3.2]}, 4.0), 62)
        # The previous version's interval alone is wider than the target: no items of this
        # version can call the change.
        self.assertEqual(_budget(row, {("de", "v1"): [2.4, 3.6]}, 4.0), 0)


class EmptyAndOtherTaskTests(ParityTestCase):
    def test_a_project_without_judgments_gives_empty_series(self):
        for by in ("model", "period"):
            report = progress_report(project=self.project, by=by, resamples=50)
            self.assertEqual(report["keys"], [])
            self.assertEqual([row["series"] for row in report["languages"]], [[], [], []])
            self.assertEqual(progress_csv(report).count("\n"), 1)
        client = Client()
        client.force_login(self.lead)
        self.assertEqual(
            client.get(reverse("annotation:progress", args=[self.project.slug])).status_code, 200
        )

    def test_a_labels_project_reports_the_share_of_its_first_label_by_period(self):
        from annotation.schema import schema_validate

        project = ProjectFactory(
            slug="labels-progress",
            task_type=TaskType.LABELS,
            languages=["de"],
            schema=schema_validate(
                task_type=TaskType.LABELS, schema={"labels": ["fluent", "broken"]}
            ),
        )
        items_import(
            project=project,
            records=numbered(
                [
                    {"external_id": f"l{k}", "language": "de", "response": "x", "model": "m"}
                    for k in range(20)
                ]
            ),
        )
        judgments_import(
            project=project,
            records=numbered(
                [
                    {
                        "item_external_id": f"l{k}",
                        "rater": f"r{r}",
                        "value": {"labels": ["fluent" if k < 15 else "broken"]},
                        "created": (START + timedelta(weeks=k // 10)).strftime(
                            "%Y-%m-%dT%H:%M:%SZ"
                        ),
                    }
                    for k in range(20)
                    for r in range(2)
                ]
            ),
        )
        report = progress_report(project=project, by="period", resamples=100)
        series = report["languages"][0]["series"]
        self.assertEqual([e["value"] for e in series], [1.0, 0.5])
        self.assertEqual(series[1]["change"]["verdict"], "worse")


class RegressedPageTests(ParityTestCase):
    def test_it_moves_only_done_items_of_its_own_project_and_refuses_unknown_languages(self):
        other = ProjectFactory(slug="other-project", languages=["de"])
        from tests.factories import ItemFactory

        mine = ItemFactory(project=self.project, status=ItemStatus.DONE)
        queued = ItemFactory(project=self.project, status=ItemStatus.QUEUED)
        foreign = ItemFactory(project=other, status=ItemStatus.DONE)
        client = Client()
        client.force_login(self.lead)
        url = reverse("annotation:progress_regressed", args=[self.project.slug, "de"])
        client.post(
            url,
            {"by": "model", "key": "v2", "from": "v1", "items": [mine.pk, queued.pk, foreign.pk]},
        )
        statuses = dict(
            Item.objects.filter(pk__in=[mine.pk, queued.pk, foreign.pk]).values_list("pk", "status")
        )
        self.assertEqual(
            statuses, {mine.pk: "adjudication", queued.pk: "queued", foreign.pk: "done"}
        )
        self.assertEqual(
            client.get(
                reverse("annotation:progress_regressed", args=[self.project.slug, "fr"])
            ).status_code,
            404,
        )
        self.assertEqual(
            client.get(
                reverse("annotation:progress_regressed", args=[self.project.slug, "!!"])
            ).status_code,
            404,
        )
        self.assertEqual(client.get(url, {"by": "nonsense"}).status_code, 404)


class UndatedHintTests(ParityTestCase):
    def test_the_lead_page_asks_for_release_dates_when_versions_lack_them(self):
        _build(self.project, {("de", "a"): 3.0, ("de", "b"): 4.0}, n=6, dated=False)
        client = Client()
        client.force_login(self.lead)
        url = reverse("annotation:progress", args=[self.project.slug])
        self.assertContains(client.get(url), "Add release dates on the Models page.")
        ModelVersion.objects.filter(project=self.project).update(released_on=date(2025, 1, 1))
        ModelVersion.objects.filter(project=self.project, name="b").update(
            released_on=date(2025, 2, 1)
        )
        self.assertNotContains(client.get(url), "Add release dates on the Models page.")

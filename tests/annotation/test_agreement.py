"""Krippendorff's alpha, its bootstrap CI, Cohen's kappa and the agreement breakdowns.

Expected values come from the literature, never from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import SimpleTestCase

from annotation.agreement import (
    agreement_report,
    alpha_with_ci,
    bootstrap_mean,
    kappa_matrix,
    matrix_alpha,
)
from annotation.agreement.evaluators import _kappa
from annotation.demo_data import MLQE_PAIRS, mlqe_items, mlqe_judgments, mlqe_segments, numbered
from annotation.imports import items_import, judgments_import
from annotation.models import Assignment, ExternalRater, Judgment, TaskType
from annotation.qualification import qualification_grant
from tests.base import ParityTestCase
from tests.factories import ItemFactory, ProjectFactory, UserFactory

nan = np.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the worked example of
# four observers coding twelve units on a 1–5 scale with missing values. The paper gives
# alpha = 0.743 (nominal), 0.815 (ordinal), 0.849 (interval) and 0.797 (ratio).
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]
KRIPPENDORFF_2011_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}

# The worked example of the Wikipedia article "Krippendorff's alpha" (after Krippendorff's
# own): three coders, fifteen units, most cells missing — one unit is coded by nobody and
# one by a single coder. alpha = 0.691 (nominal) and 0.811 (interval).
WIKIPEDIA_MISSING = [
    [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
    [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
    [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
]

# Altman, "Practical Statistics for Medical Research" (1991), chapter 14: two radiologists
# classify 85 xeromammograms as normal, benign, suspected cancer or cancer (rows: the
# first radiologist). Observed agreement 0.635, chance agreement 0.308, kappa = 0.47
# (reproduced as the `kap` example of the Stata manual: 0.4728).
ALTMAN_XEROMAMMOGRAMS = [
    [21, 12, 0, 0],
    [4, 17, 1, 0],
    [3, 9, 15, 2],
    [0, 0, 0, 1],
]


def _rows_from_table(table: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    first, second = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            first += [i] * count
            second += [j] * count
    return np.array(first), np.array(second)


class PublishedExampleTests(SimpleTestCase):
    def test_it_reproduces_krippendorffs_worked_example_at_all_four_levels(self):
        for level, expected in KRIPPENDORFF_2011_ALPHA.items():
            with self.subTest(level=level):
                result = matrix_alpha(
                    KRIPPENDORFF_2011, level=level, value_domain=[1, 2, 3, 4, 5], resamples=0
                )
                self.assertAlmostEqual(result.alpha, expected, places=3)
                # The vectorised coincidence formula used by the bootstrap gives the same number.
                self.assertAlmostEqual(result.alpha_vectorised, expected, places=3)
                self.assertEqual(result.estimator, "krippendorff")
                # And so does the package itself, on the paper's matrix.
                package = krippendorff.alpha(
                    KRIPPENDORFF_2011, value_domain=[1, 2, 3, 4, 5], level_of_measurement=level
                )
                self.assertAlmostEqual(package, expected, places=3)

    def test_it_counts_the_unit_with_one_value_as_excluded(self):
        result = matrix_alpha(KRIPPENDORFF_2011, level="nominal", resamples=0)
        # Unit 12 has a single value (3, by observer B): it cannot be paired.
        self.assertEqual((result.units, result.excluded_units), (11, 1))
        self.assertEqual(result.pairable_values, 40)

    def test_it_reproduces_the_example_with_missing_values(self):
        nominal = matrix_alpha(
            WIKIPEDIA_MISSING, level="nominal", value_domain=[1, 2, 3, 4], resamples=0
        )
        interval = matrix_alpha(
            WIKIPEDIA_MISSING, level="interval", value_domain=[1, 2, 3, 4], resamples=0
        )
        self.assertAlmostEqual(nominal.alpha, 0.691, places=3)
        self.assertAlmostEqual(interval.alpha, 0.811, places=3)
        # Units 2 and 14 (nobody) and unit 1 (one coder) drop out; unit 2 never shows up at all.
        self.assertEqual(nominal.units, 12)

    def test_it_reproduces_cohens_kappa_from_a_textbook_table(self):
        first, second = _rows_from_table(ALTMAN_XEROMAMMOGRAMS)
        self.assertEqual(len(first), 85)
        self.assertAlmostEqual(_kappa(first, second, n_values=4, weights=None), 0.4728, places=4)

    def test_it_leaves_alpha_undefined_when_nobody_could_disagree(self):
        result = alpha_with_ci(
            unit=np.array([0, 0, 1, 1]),
            value=np.array([2, 2, 2, 2]),
            domain=[1, 2, 3],
            level="nominal",
        )
        self.assertIsNone(result.alpha)
        self.assertEqual(result.ci, (None, None))

    def test_it_refuses_values_outside_the_domain(self):
        with self.assertRaisesMessage(ValueError, "outside the domain"):
            matrix_alpha([[1, 2], [1, 7]], level="nominal", value_domain=[1, 2, 3])


def _synthetic(
    n_units: int, *, seed: int, raters: int = 3, scale: int = 5, noise: float = 0.3
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, scale + 1, n_units)
    data = np.where(
        rng.random((raters, n_units)) < noise, rng.integers(1, scale + 1, (raters, n_units)), truth
    )
    data = data.astype(float)
    data[rng.random((raters, n_units)) < 0.1] = nan
    return data


class BootstrapTests(SimpleTestCase):
    def test_it_contains_the_point_estimate(self):
        for level in ("nominal", "ordinal", "interval", "ratio"):
            with self.subTest(level=level):
                result = matrix_alpha(
                    _synthetic(300, seed=1), level=level, value_domain=[1, 2, 3, 4, 5]
                )
                lo, hi = result.ci
                self.assertLess(lo, result.alpha)
                self.assertLess(result.alpha, hi)

    def test_it_narrows_as_units_grow(self):
        widths = []
        for n in (50, 500, 5000):
            lo, hi = matrix_alpha(
                _synthetic(n, seed=2), level="ordinal", value_domain=[1, 2, 3, 4, 5]
            ).ci
            widths.append(hi - lo)
        self.assertGreater(widths[0], widths[1])
        self.assertGreater(widths[1], widths[2])
        # Roughly 1/sqrt(n): ten times the units, about a third of the width.
        self.assertLess(widths[2], widths[0] / 5)

    def test_it_is_reproducible_with_a_seed(self):
        data = _synthetic(200, seed=3)
        first = matrix_alpha(data, level="ordinal", seed=7).ci
        again = matrix_alpha(data, level="ordinal", seed=7).ci
        other = matrix_alpha(data, level="ordinal", seed=8).ci
        self.assertEqual(first, again)
        self.assertNotEqual(first, other)

    def test_it_matches_a_plain_loop_of_package_calls_in_distribution(self):
        # The vectorised resampling is the textbook bootstrap: resample units, recompute alpha.
        data = _synthetic(120, seed=4)
        rng = np.random.default_rng(0)
        loop = []
        for _ in range(300):
            pick = rng.integers(0, data.shape[1], data.shape[1])
            loop.append(
                krippendorff.alpha(
                    data[:, pick], value_domain=[1, 2, 3, 4, 5], level_of_measurement="ordinal"
                )
            )
        lo, hi = matrix_alpha(
            data, level="ordinal", value_domain=[1, 2, 3, 4, 5], resamples=2000
        ).ci
        self.assertAlmostEqual(lo, float(np.percentile(loop, 2.5)), delta=0.03)
        self.assertAlmostEqual(hi, float(np.percentile(loop, 97.5)), delta=0.03)

    def test_it_resamples_many_distinct_units_the_same_way(self):
        # A 0–100 scale makes nearly every unit a pattern of its own: the other sampler.
        rng = np.random.default_rng(5)
        truth = rng.integers(0, 101, 400)
        data = np.clip(truth + rng.normal(0, 15, (3, 400)), 0, 100).round()
        result = matrix_alpha(data, level="interval", value_domain=list(range(101)))
        self.assertLess(result.ci[0], result.alpha)
        self.assertLess(result.alpha, result.ci[1])
        self.assertAlmostEqual(
            result.alpha,
            krippendorff.alpha(
                data, value_domain=list(range(101)), level_of_measurement="interval"
            ),
        )

    def test_it_bootstraps_a_mean(self):
        mean, (lo, hi) = bootstrap_mean(np.array([1, 2, 3, 4, 5] * 20), seed=0)
        self.assertEqual(mean, 3.0)
        self.assertLess(lo, 3.0)
        self.assertGreater(hi, 3.0)
        self.assertEqual(bootstrap_mean(np.array([]))[0], None)


def _import_matrix(project, matrix, *, prefix: str = "u", language: str = "de") -> None:
    """Items u1…uN and historical judgments by raters r1…rM from a raters × units matrix."""
    n_units = len(matrix[0])
    items_import(
        project=project,
        records=numbered(
            {"external_id": f"{prefix}{u + 1}", "language": language, "response": "Antwort"}
            for u in range(n_units)
        ),
    )
    lines = []
    for r, row in enumerate(matrix):
        for u, value in enumerate(row):
            if not np.isnan(value):
                lines.append(
                    {
                        "item_external_id": f"{prefix}{u + 1}",
                        "rater": f"r{r + 1}",
                        "value": {"score": int(value)},
                    }
                )
    judgments_import(project=project, records=numbered(lines))


class AgreementReportTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.project.schema = {"scale": {"min": 1, "max": 5, "labels": {}}, "issues": []}
        cls.project.save()
        _import_matrix(cls.project, KRIPPENDORFF_2011)

    def test_it_reports_krippendorffs_example_through_the_database(self):
        report = agreement_report(project=self.project, resamples=200)
        self.assertEqual(report["level"], "ordinal")  # a rating scale is ordinal by default
        self.assertAlmostEqual(report["alpha"], 0.815, places=3)
        self.assertEqual(
            (report["units"], report["excluded_units"], report["judgments"]), (11, 1, 41)
        )
        lo, hi = report["ci"]
        self.assertLess(lo, report["alpha"])
        self.assertLess(report["alpha"], hi)
        json.dumps(report)  # JSON-serialisable as the API returns it

    def test_it_takes_the_level_from_the_argument_then_the_schema(self):
        for level, expected in KRIPPENDORFF_2011_ALPHA.items():
            with self.subTest(level=level):
                self.assertAlmostEqual(
                    agreement_report(project=self.project, level=level, resamples=0)["alpha"],
                    expected,
                    places=3,
                )
        self.project.schema = {**self.project.schema, "level": "interval"}
        self.assertEqual(agreement_report(project=self.project, resamples=0)["level"], "interval")

    def test_it_uses_the_full_scale_as_the_value_domain(self):
        # The scale is 1–5 although nobody used every point; widening it to 1–9 changes no
        # nominal or ordinal value (unused categories carry no weight), and an observed
        # value outside the scale could never have been stored.
        self.project.schema = {"scale": {"min": 1, "max": 9, "labels": {}}, "issues": []}
        self.assertAlmostEqual(
            agreement_report(project=self.project, level="ordinal", resamples=0)["alpha"],
            0.815,
            places=3,
        )

    def test_it_counts_only_production_and_historical_judgments(self):
        item = self.project.items.get(external_id="u12")
        for kind, user in (("honeypot", self.alice), ("calibration", self.bashir)):
            assignment = Assignment.objects.create(
                item=item,
                evaluator=user,
                project=self.project,
                kind=kind,
                lease_expires_at=item.created_at,
                calibration_attempt_id=1 if kind == "calibration" else None,
            )
            Judgment.objects.create(
                item=item, assignment=assignment, evaluator=user, kind=kind, value={"score": 3}
            )
        report = agreement_report(project=self.project, resamples=0)
        self.assertEqual(report["excluded_units"], 1)
        self.assertAlmostEqual(report["alpha"], 0.815, places=3)

    def test_it_uses_the_current_revision_only(self):
        rater = ExternalRater.objects.get(project=self.project, external_id="r1")
        judgment = Judgment.objects.get(item__external_id="u1", external_rater=rater)
        Judgment.objects.filter(pk=judgment.pk).update(is_current=False)
        report = agreement_report(project=self.project, resamples=0)
        self.assertEqual(report["judgments"], 40)

    def test_it_breaks_down_by_language_and_metadata(self):
        _import_matrix(self.project, [[1, 2, 3, 4], [1, 2, 3, 4]], prefix="ar", language="ar")
        by_language = agreement_report(project=self.project, by="language", resamples=50)
        groups = {g["key"]: g for g in by_language["groups"]}
        self.assertEqual(set(groups), {"ar", "de"})
        self.assertAlmostEqual(groups["de"]["alpha"], 0.815, places=3)
        self.assertEqual(groups["ar"]["alpha"], 1.0)
        self.assertEqual(
            agreement_report(project=self.project, language="ar", resamples=0)["units"], 4
        )
        self.project.items.filter(external_id__in=["u1", "u2", "u3"]).update(
            metadata={"category": "qa"}
        )
        by_category = agreement_report(project=self.project, by="metadata:category", resamples=0)
        counts = {g["key"]: g["units"] for g in by_category["groups"]}
        self.assertEqual(counts, {"qa": 3, "(none)": 12})

    def test_it_refuses_bad_arguments_with_the_reason(self):
        with self.assertRaisesMessage(ValidationError, "level must be one of"):
            agreement_report(project=self.project, level="cardinal")
        with self.assertRaisesMessage(ValidationError, "by must be one of"):
            agreement_report(project=self.project, by="colour")
        with self.assertRaisesMessage(ValidationError, "not a language of project"):
            agreement_report(project=self.project, language="fr")
        with self.assertRaisesMessage(ValidationError, "not a valid BCP 47"):
            agreement_report(project=self.project, language="no such tag!")


class AgreementCommandTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        _import_matrix(cls.project, KRIPPENDORFF_2011)

    def test_it_prints_json(self):
        from io import StringIO

        out = StringIO()
        call_command(
            "agreement",
            "--project",
            self.project.slug,
            "--level",
            "ordinal",
            "--json",
            "--resamples",
            "100",
            stdout=out,
        )
        report = json.loads(out.getvalue())
        self.assertAlmostEqual(report["alpha"], 0.815, places=3)
        self.assertEqual(set(report) >= {"alpha", "level", "ci", "units", "judgments"}, True)

    def test_it_prints_a_line(self):
        from io import StringIO

        out = StringIO()
        call_command(
            "agreement",
            "--project",
            self.project.slug,
            "--language",
            "de",
            "--resamples",
            "50",
            stdout=out,
        )
        self.assertIn("alpha 0.815 (ordinal)", out.getvalue())
        self.assertIn("11 units, 41 judgments", out.getvalue())

    def test_it_exits_non_zero_on_bad_arguments(self):
        with self.assertRaisesMessage(CommandError, "no project with slug 'nope'"):
            call_command("agreement", "--project", "nope")
        with self.assertRaisesMessage(CommandError, "not a language of project"):
            call_command("agreement", "--project", self.project.slug, "--language", "fr")
        with self.assertRaisesMessage(CommandError, "by must be one of"):
            call_command("agreement", "--project", self.project.slug, "--by", "weather")


class MlqeTests(ParityTestCase):
    """Alpha on the MLQE-PE direct assessments equals the package's on the raw matrix."""

    def test_it_equals_the_package_on_every_language_pair(self):
        for pair in MLQE_PAIRS:
            with self.subTest(pair=pair):
                segments = list(mlqe_segments(pair))
                width = max(len(s["scores"]) for s in segments)
                raw = np.full((width, len(segments)), nan)
                for u, seg in enumerate(segments):
                    raw[: len(seg["scores"]), u] = seg["scores"]
                project = ProjectFactory(
                    slug=f"mlqe-{pair}",
                    task_type=TaskType.RATING,
                    languages=[next(mlqe_items(pair, limit=1))["language"]],
                    schema={"scale": {"min": 0, "max": 100, "labels": {}}, "issues": []},
                )
                items_import(project=project, records=numbered(mlqe_items(pair)))
                judgments_import(project=project, records=numbered(mlqe_judgments(pair)))
                for level in ("ordinal", "interval"):
                    expected = krippendorff.alpha(
                        raw, value_domain=list(range(101)), level_of_measurement=level
                    )
                    report = agreement_report(project=project, level=level, resamples=0)
                    self.assertAlmostEqual(report["alpha"], expected, places=10)
                    self.assertEqual(report["units"], len(segments))


class EvaluatorBreakdownTests(ParityTestCase):
    """One evaluator answers at random; leave-one-out and kappa must single them out."""

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        rng = np.random.default_rng(11)
        cls.evaluators = [UserFactory(username=f"ev{k}") for k in range(4)]
        for user in cls.evaluators:
            qualification_grant(project=cls.project, evaluator=user, language=cls.de)
        cls.random_one = cls.evaluators[2]
        for n in range(80):
            item = ItemFactory(project=cls.project, language=cls.de, external_id=f"e{n}")
            truth = int(rng.integers(1, 6))
            for user in cls.evaluators:
                if user == cls.random_one:
                    score = int(rng.integers(1, 6))
                else:
                    score = int(np.clip(truth + rng.choice([-1, 0, 0, 0, 1]), 1, 5))
                assignment = Assignment.objects.create(
                    item=item,
                    evaluator=user,
                    project=cls.project,
                    lease_expires_at=item.created_at,
                    status="submitted",
                )
                Judgment.objects.create(
                    item=item,
                    assignment=assignment,
                    evaluator=user,
                    kind="production",
                    value={"score": score},
                )

    def _key(self, user) -> str:
        return user.evaluator_profile.pseudonym

    def test_it_singles_out_the_random_evaluator_by_leave_one_out(self):
        report = agreement_report(project=self.project, by="evaluator", resamples=200)
        groups = {g["label"]: g for g in report["groups"]}
        outlier = groups[self._key(self.random_one)]
        others = [g for label, g in groups.items() if label != self._key(self.random_one)]
        # Leaving the random evaluator out raises alpha; leaving anyone else out lowers it.
        self.assertGreater(outlier["alpha_change"], 0)
        for group in others:
            self.assertLess(group["alpha_change"], 0)
        # Their agreement with the others is the lowest, and clearly apart.
        self.assertLess(outlier["alpha"], min(g["alpha"] for g in others))
        self.assertLess(outlier["ci"][1], min(g["ci"][0] for g in others))
        self.assertEqual(outlier["judgments"], 80)

    def test_it_singles_out_the_random_evaluator_by_pairwise_kappa(self):
        matrix = kappa_matrix(project=self.project)
        self.assertEqual(matrix["weights"], "quadratic")  # ordinal scale: weighted kappa
        labels = [r["label"] for r in matrix["raters"]]
        k = labels.index(self._key(self.random_one))
        with_random = [matrix["kappa"][k][j] for j in range(len(labels)) if j != k]
        between_others = [
            matrix["kappa"][i][j]
            for i in range(len(labels))
            for j in range(len(labels))
            if i != j and k not in (i, j)
        ]
        self.assertLess(max(with_random), min(between_others))
        self.assertLess(max(with_random), 0.3)
        self.assertGreater(min(between_others), 0.6)
        self.assertEqual(matrix["shared"][k][(k + 1) % len(labels)], 80)


class BreakdownTests(ParityTestCase):
    """Model, calibration round, pairwise levels and multi-label projects."""

    def test_it_breaks_down_by_model_pair_in_a_pairwise_project(self):
        arena = ProjectFactory(slug="arena", task_type=TaskType.PAIRWISE, languages=["de"])
        lines = []
        for n, (a, b, choices) in enumerate(
            [("m1", "m2", "aab"), ("m2", "m1", "bbb"), ("m1", "m3", "aaa"), ("m3", "m1", "abt")]
        ):
            ItemFactory(project=arena, language=self.de, external_id=f"p{n}", model_a=a, model_b=b)
            lines += [
                {
                    "item_external_id": f"p{n}",
                    "rater": f"r{k}",
                    "value": {"choice": c, "strength": 1} if c != "t" else {"choice": "tie"},
                }
                for k, c in enumerate(choices)
            ]
        judgments_import(project=arena, records=numbered(lines))
        report = agreement_report(project=arena, by="model", resamples=0)
        self.assertEqual(report["level"], "nominal")  # pairwise choices are nominal by default
        self.assertEqual(
            {g["key"]: g["units"] for g in report["groups"]}, {"m1 vs m2": 2, "m1 vs m3": 2}
        )
        # As graded preferences (ordinal), "a" slightly and "tie" are closer than "a" and "b".
        graded = agreement_report(project=arena, level="ordinal", resamples=0)
        self.assertEqual(graded["level"], "ordinal")
        self.assertNotEqual(graded["alpha"], report["alpha"])

    def test_it_measures_calibration_rounds_apart_from_production(self):
        _import_matrix(self.project, KRIPPENDORFF_2011)
        production = agreement_report(project=self.project, resamples=0)
        gold = [
            ItemFactory(project=self.project, language=self.de, external_id=f"g{n}", is_gold=True)
            for n in range(4)
        ]
        for version, scores in (
            ("1.0", {self.alice: [1, 2, 3, 4], self.bashir: [4, 3, 2, 1]}),
            ("2.0", {self.alice: [1, 2, 3, 4], self.bashir: [1, 2, 3, 5]}),
        ):
            for user, values in scores.items():
                for item, score in zip(gold, values, strict=True):
                    attempt = 10 if version == "1.0" else 20
                    assignment = Assignment.objects.create(
                        item=item,
                        evaluator=user,
                        project=self.project,
                        kind="calibration",
                        calibration_attempt_id=attempt + user.pk,
                        lease_expires_at=item.created_at,
                    )
                    Judgment.objects.create(
                        item=item,
                        assignment=assignment,
                        evaluator=user,
                        kind="calibration",
                        value={"score": score},
                        guideline_version=version,
                    )
        report = agreement_report(project=self.project, by="round", resamples=0)
        groups = {g["key"]: g for g in report["groups"]}
        self.assertEqual(set(groups), {"de · 1.0", "de · 2.0"})
        self.assertLess(
            groups["de · 1.0"]["alpha"], 0
        )  # the two read the scale in opposite directions
        self.assertGreater(
            groups["de · 2.0"]["alpha"], 0.8
        )  # after the guideline revision they agree
        self.assertEqual(groups["de · 2.0"]["judgments"], 8)
        # Calibration judgments never touch the production figure.
        self.assertEqual(report["alpha"], production["alpha"])
        self.assertEqual(report["judgments"], production["judgments"])

    def test_it_gives_one_binary_alpha_per_label_in_a_multi_label_project(self):
        tags = ProjectFactory(
            slug="tags",
            task_type=TaskType.LABELS,
            languages=["de"],
            schema={"labels": ["fluent", "unsafe"], "multi": True, "issues": []},
        )
        lines = []
        # "fluent": the raters agree on every item; "unsafe": they disagree on most.
        unsafe = [(True, False), (False, True), (True, False), (False, True)]
        for n, (first, second) in enumerate(unsafe):
            ItemFactory(project=tags, language=self.de, external_id=f"t{n}")
            fluent = n % 2 == 0
            for rater, flag in (("r1", first), ("r2", second)):
                labels = [label for label, on in (("fluent", fluent), ("unsafe", flag)) if on] or [
                    "unsafe"
                ]
                lines.append(
                    {"item_external_id": f"t{n}", "rater": rater, "value": {"labels": labels}}
                )
        judgments_import(project=tags, records=numbered(lines))
        report = agreement_report(project=tags, resamples=100)
        per_label = {row["label"]: row for row in report["labels"]}
        self.assertEqual(per_label["fluent"]["alpha"], 1.0)
        self.assertLess(per_label["unsafe"]["alpha"], 0)
        self.assertEqual(report["units"], 4)  # items, not (item, label) pairs
        self.assertLess(per_label["unsafe"]["alpha"], report["alpha"])
        self.assertLess(report["alpha"], per_label["fluent"]["alpha"])


class AlphaCoreTests(SimpleTestCase):
    def test_the_numeric_core_needs_no_django_and_knows_every_level(self):
        import subprocess
        import sys

        from annotation.agreement.alpha import LEVELS as CORE_LEVELS
        from annotation.models import AgreementLevel

        self.assertEqual(CORE_LEVELS, tuple(AgreementLevel.values))
        # Imported in a fresh interpreter, the alpha module loads no Django at all.
        code = (
            "import importlib.util, sys; spec = importlib.util.spec_from_file_location('alpha', "
            "'annotation/agreement/alpha.py'); m = importlib.util.module_from_spec(spec); "
            "sys.modules['alpha'] = m; spec.loader.exec_module(m); print(any(k.startswith('django') for k in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        self.assertEqual(out.stdout.strip(), "False")

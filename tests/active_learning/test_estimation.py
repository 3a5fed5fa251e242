from __future__ import annotations

import numpy as np
from django.test import SimpleTestCase

from active_learning import estimation, qe


def pool(n=600, seed=0):
    """A language's pool: token log-probs whose mean NLL drives the human score."""
    rng = np.random.default_rng(seed)
    nll = rng.exponential(0.5, n)
    scores = np.clip(90 - 40 * nll + rng.normal(0, 8, n), 0, 100)
    raw = qe.qe_features(
        prompts=[f"source sentence {i}" for i in range(n)],
        responses=[f"output sentence {i}" for i in range(n)],
        token_logprobs=[-np.full(8, v) * rng.uniform(0.8, 1.2, 8) for v in nll],
    )
    return raw, scores, nll


def labels_of(nll, *, picks, audit, seed):
    """Uncertainty picks (the highest NLL), then an audit slice drawn from the rest."""
    order = np.argsort(-nll, kind="stable")
    picked = order[:picks]
    rest = order[picks:]
    drawn = np.random.default_rng(seed).choice(rest, audit, replace=False)
    labelled = np.concatenate([picked, drawn])
    is_audit = np.r_[np.zeros(picks, dtype=bool), np.ones(audit, dtype=bool)]
    return labelled, is_audit


class MeanEstimateTests(SimpleTestCase):
    def test_it_counts_judged_items_as_themselves_and_corrects_the_predictions(self):
        # 10 items: 3 picks (scores 10, 20, 30), 2 audit items (60, 80) predicted 50 and
        # 70 when held out, 5 unjudged predicted 60 each. The audit residuals (+10, +10)
        # say the model is 10 too low on the rest: (10+20+30+60+80 + 5·60 + 5·10) ÷ 10.
        estimate = estimation.mean_estimate(
            n=10,
            scores=np.array([10, 20, 30, 60, 80]),
            audit=np.array([False, False, False, True, True]),
            labelled_predictions=np.array([0, 0, 0, 50, 70]),
            unlabelled_predictions=np.full(5, 60.0),
        )
        self.assertEqual(estimate.method, "difference")
        self.assertAlmostEqual(estimate.value, (200 + 300 + 50) / 10)
        self.assertEqual((estimate.labelled, estimate.audit), (5, 2))
        self.assertAlmostEqual(estimate.standard_error, 0.0)  # both residuals +10
        # Audit weights weigh the residuals: the first audit item stood for three times
        # as many items, so the correction is (3·10 + 1·30) ÷ 4 = 15.
        weighted = estimation.mean_estimate(
            n=10,
            scores=np.array([10, 20, 30, 60, 100]),
            audit=np.array([False, False, False, True, True]),
            audit_weights=np.array([3.0, 1.0]),
            labelled_predictions=np.array([0, 0, 0, 50, 70]),
            unlabelled_predictions=np.full(5, 60.0),
        )
        self.assertAlmostEqual(weighted.value, (220 + 300 + 5 * 15) / 10)

    def test_without_predictions_it_is_horvitz_thompson_and_without_audit_the_labelled_mean(
        self,
    ):
        scores = np.array([10.0, 20.0, 60.0, 80.0])
        audit = np.array([False, False, True, True])
        # 2 picks for themselves, the 2 audit items for themselves and the 6 unjudged.
        ht = estimation.mean_estimate(n=10, scores=scores, audit=audit)
        self.assertEqual(ht.method, "horvitz-thompson")
        self.assertAlmostEqual(ht.value, (10 + 20 + 4 * 60 + 4 * 80) / 10)
        biased = estimation.mean_estimate(n=10, scores=scores, audit=np.zeros(4, dtype=bool))
        self.assertEqual(biased.method, "labelled mean")
        self.assertAlmostEqual(biased.value, 42.5)
        self.assertIsNone(biased.standard_error)
        exact = estimation.mean_estimate(n=4, scores=scores, audit=audit)
        self.assertEqual((exact.method, exact.value), ("exact", 42.5))
        with self.assertRaises(ValueError):
            estimation.mean_estimate(n=3, scores=scores, audit=audit)
        with self.assertRaises(ValueError):
            estimation.mean_estimate(n=10, scores=scores, audit=audit, audit_weights=np.ones(3))

    def test_the_held_out_predictions_never_saw_the_item_they_predict(self):
        raw, scores, _ = pool(n=200)
        labelled = np.arange(0, 200, 4)
        held_out, rest = estimation.score_predictions(
            raw=raw, labelled=labelled, scores=scores[labelled]
        )
        self.assertEqual((len(held_out), len(rest)), (50, 150))
        # An item's own score does not move its held-out prediction.
        changed = scores[labelled].copy()
        changed[0] += 1000
        again, _ = estimation.score_predictions(raw=raw, labelled=labelled, scores=changed)
        self.assertAlmostEqual(again[0], held_out[0])
        self.assertGreater(
            np.corrcoef(rest, scores[np.setdiff1d(np.arange(200), labelled)])[0, 1], 0.5
        )

    def test_it_is_unbiased_and_closer_than_the_audit_slice_alone(self):
        # Picks chosen for looking bad, a small audit slice of the rest: the mean of the
        # labels is far off; Horvitz–Thompson and the difference estimator are both
        # unbiased, the difference estimator with a smaller error (the quality features
        # explain much of the unpicked rest's scores).
        raw, scores, nll = pool()
        truth = scores.mean()
        diff, ht, naive = [], [], []
        for seed in range(40):
            labelled, is_audit = labels_of(nll, picks=90, audit=30, seed=seed)
            rest = len(scores) - 90
            weights = np.full(30, rest / 30)
            diff.append(
                estimation.language_mean_estimate(
                    raw=raw,
                    labelled=labelled,
                    scores=scores[labelled],
                    audit=is_audit,
                    audit_weights=weights,
                    seed=seed,
                ).value
                - truth
            )
            ht.append(
                estimation.mean_estimate(
                    n=len(scores), scores=scores[labelled], audit=is_audit, audit_weights=weights
                ).value
                - truth
            )
            naive.append(scores[labelled].mean() - truth)
        diff, ht = np.array(diff), np.array(ht)
        self.assertLess(np.mean(naive), -10)
        self.assertLess(abs(diff.mean()), 0.5)
        self.assertLess(abs(ht.mean()), 1.5)
        self.assertLess(np.abs(diff).mean(), 0.8 * np.abs(ht).mean())

    def test_a_useless_model_costs_precision_not_honesty(self):
        # Predictions that know nothing (features shuffled away from their items): the
        # audit residuals still correct them, so the estimate stays unbiased.
        raw, scores, nll = pool()
        shuffled = raw[np.random.default_rng(1).permutation(len(raw))]
        errors = []
        for seed in range(40):
            labelled, is_audit = labels_of(nll, picks=90, audit=30, seed=seed)
            errors.append(
                estimation.language_mean_estimate(
                    raw=shuffled,
                    labelled=labelled,
                    scores=scores[labelled],
                    audit=is_audit,
                    seed=seed,
                ).value
                - scores.mean()
            )
        self.assertLess(abs(np.mean(errors)), 1.0)

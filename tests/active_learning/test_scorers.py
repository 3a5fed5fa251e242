from __future__ import annotations

import math

import numpy as np
from django.test import SimpleTestCase

from active_learning import committee as committee_mod
from active_learning.features import hashing_features
from active_learning.scorers import (
    SCORERS,
    ScoringInputs,
    percentiles_within,
    scorers_usable,
    scores_combine,
    scores_compute,
    top_k_entropy,
)


def inputs(**kwargs) -> ScoringInputs:
    n = kwargs.pop("n")
    kwargs.setdefault("languages", np.array(["de"] * n, dtype=object))
    kwargs.setdefault("token_logprobs", [None] * n)
    return ScoringInputs(**kwargs)


class ScorersTests(SimpleTestCase):
    def test_it_declares_what_each_scorer_needs(self):
        self.assertEqual(SCORERS["nll"].needs, {"token_logprobs"})
        self.assertEqual(SCORERS["reward_margin"].needs, {"rewards"})
        self.assertEqual(SCORERS["committee_vote_entropy"].needs, {"committee"})
        usable = {
            s.name
            for s in scorers_usable(inputs=inputs(n=2, token_logprobs=[np.array([-1.0]), None]))
        }
        self.assertEqual(usable, {"nll", "min_logprob"})

    def test_it_scores_mean_nll_and_min_logprob(self):
        lp = [np.log([0.9, 0.9]), np.log([0.5, 0.5]), np.log([0.99, 0.01]), None]
        raw = scores_compute(inputs=inputs(n=4, token_logprobs=lp), names=["nll", "min_logprob"])
        self.assertAlmostEqual(raw["nll"][0], -math.log(0.9))
        self.assertAlmostEqual(raw["nll"][1], -math.log(0.5))
        self.assertAlmostEqual(raw["min_logprob"][2], -math.log(0.01))
        # The confident output is the least uncertain; an item without log-probs gets no score.
        self.assertEqual(int(np.nanargmin(raw["nll"])), 0)
        self.assertTrue(np.isnan(raw["nll"][3]))

    def test_it_gives_a_uniform_top_k_distribution_the_maximum_entropy(self):
        k = 4
        uniform = [np.log(np.full(k, 1 / k))] * 3
        peaked = [np.log([0.97, 0.01, 0.01, 0.01])] * 3
        mixed = [np.log([0.4, 0.3, 0.2, 0.1])] * 3
        self.assertAlmostEqual(top_k_entropy(uniform), math.log(k))
        raw = scores_compute(
            inputs=inputs(n=3, top_logprobs=[peaked, uniform, mixed]), names=["entropy"]
        )["entropy"]
        self.assertEqual(int(np.argmax(raw)), 1)
        self.assertAlmostEqual(raw[1], math.log(k))
        self.assertLess(raw[0], raw[2])

    def test_it_uses_the_mean_entropy_the_pipeline_sent(self):
        raw = scores_compute(
            inputs=inputs(n=3, token_entropy=np.array([0.1, np.nan, 2.0])), names=["entropy"]
        )
        np.testing.assert_allclose(raw["entropy"], [0.1, np.nan, 2.0])

    def test_it_finds_equal_rewards_most_uncertain(self):
        raw = scores_compute(
            inputs=inputs(
                n=4,
                reward_a=np.array([1.0, 0.2, 3.0, np.nan]),
                reward_b=np.array([1.0, 0.9, -3.0, 1.0]),
            ),
            names=["reward_margin"],
        )["reward_margin"]
        self.assertEqual(raw[0], 0.0)  # equal rewards: the maximum
        self.assertEqual(int(np.nanargmax(raw)), 0)
        self.assertLess(raw[2], raw[1])  # a 6-point gap is more certain than a 0.7 one
        self.assertTrue(np.isnan(raw[3]))

    def test_it_finds_committee_disagreement_where_the_classes_meet(self):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(400, 2))
        y = (X[:, 0] > 0).astype(int)
        fitted = committee_mod.committee_fit(X, y, seed=0)
        pool = np.array([[0.0, 0.0], [6.0, 0.0], [-6.0, 0.0]])
        raw = scores_compute(inputs=inputs(n=3, features=pool, committee=fitted))
        for name in ("committee_max_disagreement", "classifier_entropy"):
            self.assertEqual(int(np.argmax(raw[name])), 0, name)
        # On the boundary the classifier is close to a coin: entropy near log 2.
        self.assertGreater(raw["classifier_entropy"][0], 0.6)
        self.assertLess(raw["classifier_entropy"][1], 0.05)
        self.assertEqual(
            raw["committee_vote_entropy"][1], 0.0
        )  # everyone agrees far from the boundary

    def test_it_ranks_within_each_language_before_combining(self):
        # Thai-like log-probs are all lower than German ones; within-language ranks make them comparable.
        groups = np.array(["de", "de", "de", "th", "th", "th"], dtype=object)
        nll = np.array([0.1, 0.2, 0.3, 2.1, 2.2, 2.3])
        pct = percentiles_within(nll, groups)
        np.testing.assert_allclose(pct[:3], pct[3:])
        combined, parts = scores_combine(
            raw={"nll": nll, "reward_margin": np.full(6, np.nan)}, groups=groups
        )
        np.testing.assert_allclose(combined, pct)
        self.assertEqual(set(parts), {"nll", "reward_margin"})

    def test_it_weights_components_and_leaves_unscored_items_nan(self):
        groups = np.array(["de"] * 3, dtype=object)
        raw = {"nll": np.array([1.0, 2.0, np.nan]), "entropy": np.array([3.0, 1.0, np.nan])}
        combined, _ = scores_combine(raw=raw, groups=groups, weights={"nll": 3.0, "entropy": 1.0})
        self.assertGreater(combined[1], combined[0])  # nll dominates
        self.assertTrue(np.isnan(combined[2]))

    def test_it_gives_all_equal_values_the_middle_percentile(self):
        pct = percentiles_within(np.array([5.0, 5.0, 5.0, 5.0]), np.array(["de"] * 4, dtype=object))
        np.testing.assert_allclose(pct, 0.625)  # average rank 2.5 of 4

    def test_it_scores_sparse_hashing_features_with_the_committee(self):
        texts = [f"gut {i} richtig" for i in range(30)] + [f"falsch {i} kaputt" for i in range(30)]
        X = hashing_features(texts)
        y = np.array([0] * 30 + [1] * 30)
        fitted = committee_mod.committee_fit(X, y, seed=0)
        raw = scores_compute(
            inputs=inputs(n=60, features=X, committee=fitted), names=["classifier_entropy"]
        )
        self.assertEqual(raw["classifier_entropy"].shape, (60,))
        self.assertTrue(np.isfinite(raw["classifier_entropy"]).all())

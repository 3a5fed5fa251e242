from __future__ import annotations

import numpy as np
from django.test import SimpleTestCase

from active_learning import committee as committee_mod
from active_learning.features import hashing_features


def _boundary_picks(scores: np.ndarray, n: int) -> int:
    """Grow n until the n-th and (n+1)-th scores differ, so 'the top n' is one set."""
    ordered = np.sort(scores)[::-1]
    while n < len(ordered) and ordered[n - 1] == ordered[n]:
        n += 1
    return n


class CommitteeTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        rng = np.random.default_rng(3)
        cls.X = rng.normal(size=(300, 12))
        cls.y2 = (cls.X[:, 0] + 0.8 * rng.normal(size=300) > 0).astype(int)
        cls.y3 = np.digitize(cls.X[:, 1] + 0.5 * rng.normal(size=300), [-0.5, 0.5])
        cls.pool = rng.normal(size=(3000, 12))

    def test_it_computes_modals_measures_with_its_own_formulas(self):
        for y in (self.y2, self.y3):
            fitted = committee_mod.committee_fit(self.X, y, n_learners=5, seed=1)
            np.testing.assert_array_equal(
                committee_mod.vote_entropy(fitted, self.pool),
                committee_mod.modal_vote_entropy(fitted, self.pool),
            )
            np.testing.assert_allclose(
                committee_mod.max_disagreement(fitted, self.pool),
                committee_mod.modal_max_disagreement(fitted, self.pool),
                rtol=0,
                atol=1e-12,
            )
            np.testing.assert_allclose(
                committee_mod.classifier_entropy(fitted, self.pool),
                committee_mod.modal_classifier_entropy(fitted, self.pool),
                rtol=0,
                atol=1e-12,
            )

    def test_it_picks_exactly_what_modal_picks(self):
        for y in (self.y2, self.y3):
            fitted = committee_mod.committee_fit(self.X, y, n_learners=5, seed=2)
            for strategy, ours in committee_mod.VECTORISED.items():
                scores = ours(fitted, self.pool)
                n = _boundary_picks(scores, 100)
                self.assertLess(n, len(scores) // 2, "the scores must separate a top set")
                modal = committee_mod.modal_query(fitted, self.pool, strategy=strategy, n=n)
                mine = committee_mod.top_k(scores, n)
                self.assertEqual(
                    set(mine.tolist()), set(modal.tolist()), f"{strategy}, {len(set(y))} classes"
                )

    def test_it_picks_the_same_on_sparse_hashing_features(self):
        texts = [f"gute übersetzung {i}" for i in range(80)] + [
            f"schlechte ausgabe {i} kaputt" for i in range(80)
        ]
        y = np.array([0] * 80 + [1] * 80)
        y[::9] = 1 - y[::9]
        fitted = committee_mod.committee_fit(hashing_features(texts), y, seed=0)
        rng = np.random.default_rng(0)
        words = ["gute", "übersetzung", "schlechte", "ausgabe", "kaputt", "richtig", "falsch"]
        pool = hashing_features([" ".join(rng.choice(words, size=4)) + f" {i}" for i in range(500)])
        for strategy, ours in committee_mod.VECTORISED.items():
            scores = ours(fitted, pool)
            n = _boundary_picks(scores, 50)
            modal = committee_mod.modal_query(fitted, pool, strategy=strategy, n=n)
            self.assertEqual(
                set(committee_mod.top_k(scores, n).tolist()), set(modal.tolist()), strategy
            )

    def test_it_fits_members_with_scikit_learn_because_modal_fit_raises(self):
        from modAL.models import ActiveLearner
        from sklearn.linear_model import LogisticRegression

        # The reason committee.py fits learners itself: modAL 0.4.2.1 passes force_all_finite.
        with self.assertRaises(TypeError):
            ActiveLearner(estimator=LogisticRegression()).teach(self.X, self.y2)
        fitted = committee_mod.committee_fit(self.X, self.y2, n_learners=4, seed=0)
        self.assertEqual(len(fitted), 4)
        for learner in fitted.learners:
            self.assertEqual(list(learner.classes_), [0, 1])

    def test_it_keeps_every_class_in_every_bootstrap(self):
        y = np.array([0] * 95 + [1] * 3 + [2] * 2)
        X = np.random.default_rng(0).normal(size=(100, 4))
        fitted = committee_mod.committee_fit(X, y, n_learners=6, seed=0)
        for learner in fitted.learners:
            self.assertEqual(list(learner.classes_), [0, 1, 2])

    def test_it_says_when_labels_cannot_train_a_committee(self):
        self.assertIn("at least 10", committee_mod.labels_trainable(np.array([0, 1] * 3)))
        self.assertIn("same label", committee_mod.labels_trainable(np.zeros(20, dtype=int)))
        self.assertIn("only once", committee_mod.labels_trainable(np.array([0] * 19 + [1])))
        self.assertIsNone(committee_mod.labels_trainable(np.array([0, 1] * 10)))

    def test_it_reports_cross_validated_accuracy_per_language(self):
        groups = np.array(["de", "ar"] * 150, dtype=object)
        accuracy = committee_mod.cross_validated_accuracy(self.X, self.y2, groups, seed=0)
        self.assertEqual(accuracy["folds"], 5)
        self.assertEqual(set(accuracy["languages"]), {"de", "ar"})
        self.assertEqual(accuracy["languages"]["de"]["n"], 150)
        self.assertGreater(accuracy["overall"], 0.6)  # the label follows feature 0

    def test_it_round_trips_through_its_stored_form(self):
        fitted = committee_mod.committee_fit(self.X, self.y2, seed=0)
        before = committee_mod.max_disagreement(fitted, self.pool)
        again = committee_mod.FittedCommittee.loads(fitted.dumps())
        np.testing.assert_array_equal(committee_mod.max_disagreement(again, self.pool), before)

from __future__ import annotations

import numpy as np
from django.test import SimpleTestCase

from active_learning.features import hashing_features
from active_learning.selection import (
    batch_select,
    kcenter_greedy,
    largest_remainder,
    representative_select,
    text_key,
    text_keys,
)


class SelectionTests(SimpleTestCase):
    def test_it_never_picks_two_identical_texts_while_distinct_ones_remain(self):
        # The most uncertain items are 30 copies of one output (and its whitespace/case variants).
        texts = (
            ["Das ist falsch."] * 20
            + ["das  ist FALSCH. "] * 10
            + [f"Satz Nummer {i}." for i in range(70)]
        )
        scores = np.concatenate([np.full(30, 0.99), np.linspace(0.9, 0.1, 70)])
        for mix in (0.0, 0.5, 1.0):
            picked = batch_select(
                scores=scores,
                features=hashing_features(texts),
                keys=text_keys(texts),
                k=25,
                mix=mix,
            )
            keys = [text_key(texts[i]) for i in picked]
            self.assertEqual(len(keys), len(set(keys)), f"mix {mix}")
            self.assertEqual(len(picked), 25)
            self.assertIn(0, picked.tolist())  # the first copy of the top text is picked

    def test_it_repeats_a_text_only_when_no_distinct_one_is_left(self):
        texts = ["gleich"] * 8 + ["anders", "drittens"]
        picked = batch_select(
            scores=np.linspace(1, 0, 10),
            features=hashing_features(texts),
            keys=text_keys(texts),
            k=5,
        )
        self.assertEqual(len(picked), 5)
        self.assertEqual(len(set(picked.tolist())), 5)
        self.assertEqual({texts[i] for i in picked}, {"gleich", "anders", "drittens"})

    def test_it_spreads_a_batch_over_the_feature_space(self):
        # Two tight clusters; the top-uncertainty ones all sit in cluster A.
        rng = np.random.default_rng(0)
        a = rng.normal(0, 0.01, size=(50, 8))
        b = rng.normal(5, 0.01, size=(50, 8))
        vectors = np.vstack([a, b])
        uncertainty = np.concatenate([np.linspace(1, 0.6, 50), np.linspace(0.59, 0.2, 50)])
        picks = kcenter_greedy(vectors, uncertainty, 6, mix=0.5)
        self.assertEqual(picks[0], 0)  # starts with the most uncertain
        self.assertTrue((picks >= 50).any(), "k-center reaches the other cluster")
        only_uncertainty = kcenter_greedy(vectors, uncertainty, 6, mix=1.0)
        self.assertTrue((only_uncertainty < 50).all())

    def test_it_selects_representatives_on_a_cold_start(self):
        texts = (
            [f"Die Katze {i} sitzt." for i in range(40)]
            + [f"القطة رقم {i} تجلس" for i in range(40)]
            + ["dup"] * 20
        )
        picked = representative_select(
            features=hashing_features(texts), keys=text_keys(texts), k=10, seed=0
        )
        self.assertEqual(len(picked), 10)
        self.assertEqual(len({text_key(texts[i]) for i in picked}), 10)
        scripts = {
            "latin"
            if texts[i].startswith("Die")
            else "arabic"
            if texts[i].startswith("ال")
            else "dup"
            for i in picked
        }
        self.assertTrue({"latin", "arabic"} <= scripts, "both groups are represented")
        again = representative_select(
            features=hashing_features(texts), keys=text_keys(texts), k=10, seed=0
        )
        np.testing.assert_array_equal(picked, again)

    def test_it_rounds_shares_to_whole_numbers_with_the_largest_remainders(self):
        out = largest_remainder(np.array([3.6, 2.3, 4.1]), caps=np.array([10, 10, 10]), total=10)
        self.assertEqual(out.tolist(), [4, 2, 4])
        out = largest_remainder(np.array([3.6, 2.3, 4.1]), caps=np.array([3, 10, 10]), total=10)
        self.assertEqual(out.tolist(), [3, 3, 4])
        self.assertEqual(
            int(
                largest_remainder(
                    np.array([1 / 3] * 3), caps=np.array([5] * 3), total=1, seed=4
                ).sum()
            ),
            1,
        )

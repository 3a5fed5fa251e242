from __future__ import annotations

from collections import Counter

import numpy as np
from django.test import SimpleTestCase
from sklearn.feature_extraction.text import HashingVectorizer

from active_learning.features import HASHING_FEATURES, HASHING_NGRAMS, hashing_features, ngram_hash

TEXTS = [
    "Die Katze sitzt auf der Matte.",
    "القطة تجلس على الحصيرة",
    "猫坐在垫子上。 它很高兴",
    "ንብ ማር ትሰራለች",
    "แมวนั่งอยู่บนเสื่อ",
    "Mixed ABC und КИРИЛЛИЦА",
]


class FeaturesTests(SimpleTestCase):
    def test_it_hashes_the_same_ngrams_as_scikit_learns_char_wb(self):
        analyzer = HashingVectorizer(
            analyzer="char_wb", ngram_range=HASHING_NGRAMS
        ).build_analyzer()
        X = hashing_features(TEXTS)
        for row, text in enumerate(TEXTS):
            expected = np.zeros(HASHING_FEATURES)
            counts = Counter(ngram_hash(g) for g in analyzer(text))
            for column, count in counts.items():
                expected[column] = count
            expected /= np.linalg.norm(expected)
            np.testing.assert_allclose(X[row].toarray().ravel(), expected, atol=1e-6, err_msg=text)

    def test_it_gives_identical_texts_identical_rows_and_handles_empty_ones(self):
        X = hashing_features(["Gleich.", "", "Gleich.", "   ", "anders"])
        np.testing.assert_array_equal(X[0].toarray(), X[2].toarray())
        self.assertEqual(X[1].nnz, 0)
        self.assertEqual(X[3].nnz, 0)
        self.assertAlmostEqual(float(X[4].multiply(X[4]).sum()), 1.0, places=5)
        self.assertEqual(hashing_features([]).shape, (0, HASHING_FEATURES))

    def test_it_keeps_scripts_apart(self):
        X = hashing_features(["Die Katze sitzt", "Die Katze schläft", "القطة تجلس"])
        similarity = (X @ X.T).toarray()
        self.assertGreater(similarity[0, 1], 0.3)
        self.assertEqual(similarity[0, 2], 0.0)

from __future__ import annotations

import math

import numpy as np
from django.test import SimpleTestCase

from active_learning import qe


def column(name: str) -> int:
    return qe.FEATURES.index(name)


class QualityFeatureTests(SimpleTestCase):
    def test_it_summarises_the_token_logprobs(self):
        lp = [-0.1, -2.0, -0.5, -3.0]
        row = qe.qe_features(prompts=["x"], responses=["y"], token_logprobs=[lp])[0]
        expected = {
            "lp_mean_nll": 1.4,
            "lp_min": 3.0,
            "lp_std": float(np.std(lp)),
            "lp_low3": (3.0 + 2.0 + 0.5) / 3,
            "lp_below_037": 0.5,
            "lp_below_01": 0.25,
            "lp_last": 3.0,
            "lp_tokens": math.log(5),
        }
        for name, value in expected.items():
            self.assertAlmostEqual(row[column(name)], value, places=9, msg=name)
        # No log-probs: the glass-box columns say so (NaN); the text columns are still there.
        bare = qe.qe_features(prompts=["x"], responses=["y"], token_logprobs=[None])[0]
        self.assertTrue(np.isnan(bare[: len(qe.LOGPROB_FEATURES)]).all())
        self.assertFalse(np.isnan(bare[len(qe.LOGPROB_FEATURES) :]).any())

    def test_it_summarises_the_low_tail_the_ends_and_how_finely_the_output_was_cut(self):
        # 12 tokens: the lowest tenth is one token, a third is four.
        lp = [-0.2, -0.1, -0.3, -0.1, -0.05, -2.5, -0.1, -0.2, -0.1, -1.0, -3.0, -0.4]
        row = qe.qe_features(
            prompts=["Four words of source."], responses=["Zwölf Zeichen"], token_logprobs=[lp]
        )[0]
        ordered = sorted(lp)
        expected = {
            "lp_total_nll": -sum(lp),
            "lp_prob_gap": 1 - float(np.mean(np.exp(lp))),
            "lp_low10": 3.0,
            "lp_q25": -ordered[2],  # index int(11 · 0.25) of the ascending values
            "lp_count_below_2": 2,
            "lp_first_third": (0.2 + 0.1 + 0.3 + 0.1) / 4,
            "lp_last_third": (0.1 + 1.0 + 3.0 + 0.4) / 4,
            "tokens_per_char": 12 / len("Zwölf Zeichen"),
            "tokens_per_source_word": 12 / 4,
        }
        for name, value in expected.items():
            self.assertAlmostEqual(row[column(name)], value, places=9, msg=name)
        # Several items at once: each row only from its own tokens.
        rows = qe.qe_features(
            prompts=["a b", "a b"], responses=["xy", "xy"], token_logprobs=[lp, [-0.5, -0.5]]
        )
        np.testing.assert_allclose(rows[0, : len(qe.LOGPROB_FEATURES)] > 0, True)
        self.assertAlmostEqual(rows[1, column("lp_total_nll")], 1.0)
        self.assertAlmostEqual(rows[1, column("lp_low10")], 0.5)
        self.assertAlmostEqual(rows[1, column("lp_first_third")], 0.5)
        self.assertAlmostEqual(rows[1, column("tokens_per_char")], 1.0)
        self.assertAlmostEqual(rows[1, column("tokens_per_source_word")], 1.0)

    def test_it_describes_the_source_and_the_names_the_output_kept(self):
        source = "Ben Zobrist hit a triple (his 3rd) in Wrigley Field."
        kept = "Ben Zobrist schlug ein Triple (sein 3.) im Wrigley Field."
        lost = "Er schlug dort dreifach."  # one capital for four names
        rows = qe.qe_features(
            prompts=[source] * 2, responses=[kept, lost], token_logprobs=[None] * 2
        )
        words = ["Ben", "Zobrist", "hit", "a", "triple", "his", "3rd", "in", "Wrigley", "Field"]
        self.assertAlmostEqual(rows[0, column("source_words")], math.log1p(len(words)))
        self.assertAlmostEqual(
            rows[0, column("source_word_length")], np.mean([len(w) for w in words])
        )
        self.assertAlmostEqual(rows[0, column("source_symbols")], 3 / len(source))  # ( ) .
        self.assertAlmostEqual(rows[0, column("source_capitalised")], 4 / len(words))
        # "kept" keeps the four names and adds one capital (Triple): 1 of 10 source words.
        self.assertAlmostEqual(rows[0, column("capitalised_mismatch")], 1 / len(words))
        self.assertAlmostEqual(rows[1, column("capitalised_mismatch")], 3 / len(words))
        self.assertAlmostEqual(rows[0, column("output_non_ascii")], 0.0)
        self.assertAlmostEqual(
            qe.qe_features(prompts=["x"], responses=["für"], token_logprobs=[None])[
                0, column("output_non_ascii")
            ],
            1 / 3,
        )

    def test_it_finds_untranslated_spans_mismatched_numbers_and_loops(self):
        source = "The council met on 12 May 2021 in Colombo (Sri Lanka)."
        good = "Der Rat tagte am 12. Mai 2021 in Colombo (Sri Lanka)."
        copied = "The council met on 12 May 2021 in Colombo (Sri Lanka)."
        wrong_number = "Der Rat tagte am 21. Mai 2012 in Colombo."
        loop = "Der Rat Rat Rat tagte tagte tagte tagte tagte tagte."
        rows = qe.qe_features(
            prompts=[source] * 4,
            responses=[good, copied, wrong_number, loop],
            token_logprobs=[None] * 4,
        )
        self.assertGreater(rows[1, column("copied_share")], rows[0, column("copied_share")])
        self.assertEqual(
            rows[1, column("copied_run")], 4
        )  # council, 2021, Colombo, Lanka: the words over 3 letters
        self.assertEqual(rows[0, column("number_mismatch")], 0)
        self.assertEqual(rows[2, column("number_mismatch")], 4)  # 12, 2021 missing; 21, 2012 new
        self.assertGreater(rows[2, column("punct_mismatch")], rows[0, column("punct_mismatch")])
        self.assertGreater(rows[3, column("repeated_bigrams")], 0.5)
        self.assertEqual(rows[3, column("max_word_repeat")], 6)
        # A Sinhala source left in Sinhala inside an English output.
        rows = qe.qe_features(
            prompts=["ශ්‍රී ලංකාව වෙත"] * 2,
            responses=["to Sri Lanka", "to ලංකාව වෙත"],
            token_logprobs=[None] * 2,
        )
        self.assertEqual(rows[0, column("source_script_share")], 0.0)
        self.assertGreater(rows[1, column("source_script_share")], 0.5)


class BadnessModelTests(SimpleTestCase):
    def data(self, n=300, seed=0):
        rng = np.random.default_rng(seed)
        languages = np.array(["de", "sw"] * (n // 2), dtype=object)
        nll = rng.exponential(0.5, n)
        bad = nll + rng.normal(0, 0.15, n) > 0.8
        logprobs = [-np.full(6, v) for v in nll]
        raw = qe.qe_features(
            prompts=[f"source {i}" for i in range(n)],
            responses=[f"output {i} text" for i in range(n)],
            token_logprobs=logprobs,
        )
        return raw, languages, bad

    def test_it_learns_which_signals_mark_bad_outputs(self):
        raw, languages, bad = self.data()
        model = qe.badness_fit(raw=raw, languages=languages, labelled=np.arange(100), bad=bad[:100])
        p = model.predict(raw[100:], languages[100:])
        top = np.argsort(-p)[: int(bad[100:].sum())]
        self.assertGreater(bad[100:][top].mean(), 0.8)  # precision at the number of bad outputs

    def test_an_items_score_does_not_depend_on_what_it_is_scored_with(self):
        # Chunks of a pool are scored on different workers: the same item, the same value.
        raw, languages, bad = self.data()
        model = qe.badness_fit(raw=raw, languages=languages, labelled=np.arange(100), bad=bad[:100])
        whole = model.predict(raw, languages)
        parts = np.concatenate(
            [model.predict(raw[i : i + 7], languages[i : i + 7]) for i in range(0, len(raw), 7)]
        )
        np.testing.assert_allclose(parts, whole)
        # A language the labels never covered gets the shared weights, not nothing.
        self.assertTrue(
            np.isfinite(model.predict(raw[:3], np.array(["am"] * 3, dtype=object))).all()
        )

    def test_a_model_stored_before_features_were_added_still_scores(self):
        # A quality model trained on the first 17 columns (what qe_features computed before
        # the low-tail, tokenisation and source columns) scores today's wider rows on the
        # columns it knows, the same as on the rows it was trained with.
        raw, languages, bad = self.data()
        old = list(qe.FEATURES[:17])
        narrow = raw[:, :17]
        model = qe.badness_fit(
            raw=narrow, languages=languages, labelled=np.arange(100), bad=bad[:100]
        )
        model.parameters["features"] = old
        expected = model.predict(narrow, languages)
        np.testing.assert_allclose(model.predict(raw, languages), expected)

    def test_pool_weights_make_the_labels_stand_for_the_pool(self):
        raw, languages, _ = self.data(n=600)
        nll = raw[:, column("lp_mean_nll")]
        rng = np.random.default_rng(3)
        # A random sample of the pool is the pool already: weights near one.
        sample = rng.choice(600, 120, replace=False)
        even = qe.pool_weights(raw=raw, languages=languages, labelled=sample)
        self.assertEqual(len(even), 120)
        self.assertTrue(0.6 < np.median(even) < 1.6)
        # Uncertainty picks (the highest NLL of each language) and a small audit slice:
        # the picks look like nothing left in the pool and weigh little, the audit items
        # like much of it and weigh more; nothing beyond the clip.
        picks = np.concatenate(
            [
                np.flatnonzero(languages == tag)[np.argsort(-nll[languages == tag])[:50]]
                for tag in ("de", "sw")
            ]
        )
        rest = np.setdiff1d(np.arange(600), picks)
        audit = rng.choice(rest, 20, replace=False)
        weights = qe.pool_weights(
            raw=raw, languages=languages, labelled=np.concatenate([picks, audit])
        )
        self.assertLess(weights[:100].mean() * 5, weights[100:].mean())
        self.assertTrue(
            ((weights >= 1 / qe.POOL_WEIGHT_CLIP) & (weights <= qe.POOL_WEIGHT_CLIP)).all()
        )
        # A language with nothing left in the pool: its labels stand for themselves.
        only_de = np.flatnonzero(languages == "de")
        everything = np.concatenate([only_de, np.flatnonzero(languages == "sw")[:10]])
        mixed = qe.pool_weights(raw=raw, languages=languages, labelled=everything)
        np.testing.assert_allclose(mixed[: len(only_de)], 1.0)

    def test_it_refuses_labels_that_cannot_train_it(self):
        self.assertIn("at least 10", qe.badness_trainable(np.array([True, False] * 3)))
        self.assertIn("two bad", qe.badness_trainable(np.array([True] + [False] * 20)))
        self.assertIsNone(qe.badness_trainable(np.array([True, False] * 6)))

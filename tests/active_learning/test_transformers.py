"""The transformers paths on tiny randomly initialised models the tests build and save
themselves, loaded by path with the hub offline: nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from django.core.exceptions import ValidationError
from django.test import SimpleTestCase

from active_learning.features import embeddings_for_items, encoder_load
from active_learning.models import ItemEmbedding, ItemRescore, RoundItem
from active_learning.rounds import round_execute, round_request_clean
from active_learning.scorers import (
    ScoringInputs,
    causal_lm_load,
    inputs_fill_from_lm,
    scores_compute,
)
from active_learning.training import labelled_items_load
from tests.active_learning.data import GERMAN, pool_items
from tests.active_learning.tiny_models import CORPUS, tiny_causal_lm, tiny_encoder
from tests.base import ParityTestCase
from tests.factories import ProjectFactory


class _TinyModels:
    @classmethod
    def build_models(cls) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        cls.folder = Path(tempfile.mkdtemp(prefix="parity-al-"))
        cls.encoder_path = tiny_encoder(cls.folder / "encoder")
        cls.lm_path = tiny_causal_lm(cls.folder / "causal-lm")

    @classmethod
    def remove_models(cls) -> None:
        shutil.rmtree(cls.folder, ignore_errors=True)


class TransformersModelTests(_TinyModels, SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.build_models()

    @classmethod
    def tearDownClass(cls):
        cls.remove_models()
        super().tearDownClass()

    def test_it_mean_pools_the_encoder_over_real_tokens(self):
        encoder = encoder_load(self.encoder_path, device="cpu")
        vectors = encoder.encode(CORPUS, batch_size=4)
        self.assertEqual(vectors.shape, (len(CORPUS), 16))
        self.assertTrue(np.isfinite(vectors).all())
        # Padding must not change a text's embedding: alone or in a batch with a longer text.
        alone = encoder.encode([CORPUS[3]])
        np.testing.assert_allclose(alone[0], vectors[3], atol=1e-5)
        self.assertTrue(encoder.id.startswith("encoder@"))

    def test_it_rescores_outputs_with_the_causal_lm(self):
        lm = causal_lm_load(self.lm_path, device="cpu")
        results = lm.rescore(
            responses=["Die Katze sitzt", "猫坐在垫子上", ""],
            prompts=["The cat", "", ""],
            batch_size=2,
        )
        logprobs, entropies = results[0]
        self.assertEqual(len(logprobs), len(lm._ids("Die Katze sitzt")))
        self.assertTrue((logprobs <= 0).all())
        # A random tiny LM is close to uniform over its vocabulary: entropy near log(V).
        self.assertTrue((entropies > 0).all())
        self.assertLessEqual(entropies.max(), np.log(len(lm.tokenizer)) + 1e-6)
        self.assertEqual(len(results[2][0]), 0)
        # Batching and padding change nothing.
        single = lm.rescore(responses=["Die Katze sitzt"], prompts=["The cat"])[0][0]
        np.testing.assert_allclose(single, logprobs, atol=1e-5)

    def test_it_derives_the_same_measures_when_the_pipeline_sent_no_logprobs(self):
        lm = causal_lm_load(self.lm_path, device="cpu")
        inputs = ScoringInputs(
            languages=np.array(["de", "de"], dtype=object),
            token_logprobs=[None, np.array([-0.1, -0.2])],
        )
        filled = inputs_fill_from_lm(
            inputs=inputs, lm=lm, responses=["Die Katze sitzt", "x"], prompts=["", ""]
        )
        self.assertEqual(filled, 1)
        raw = scores_compute(inputs=inputs, names=["nll", "min_logprob", "entropy"])
        self.assertTrue(np.isfinite(raw["nll"]).all())
        self.assertAlmostEqual(raw["nll"][1], 0.15)  # what the pipeline sent is kept
        self.assertTrue(np.isfinite(raw["entropy"][0]))
        self.assertTrue(np.isnan(raw["entropy"][1]))

    def test_it_refuses_a_model_path_that_does_not_exist(self):
        with self.assertRaisesMessage(ValidationError, "does not exist"):
            encoder_load(self.folder / "missing")
        with self.assertRaisesMessage(ValidationError, "has no config.json"):
            causal_lm_load(self.folder)


class TransformersRoundTests(_TinyModels, ParityTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.build_models()

    @classmethod
    def tearDownClass(cls):
        cls.remove_models()
        super().tearDownClass()

    def test_it_caches_embeddings_per_item_and_encoder(self):
        items = pool_items(self.project, self.de, GERMAN[:5], prefix="e")
        encoder = encoder_load(self.encoder_path, device="cpu")
        first = embeddings_for_items(
            encoder=encoder, item_ids=[i.pk for i in items], texts=GERMAN[:5]
        )
        self.assertEqual(ItemEmbedding.objects.filter(encoder=encoder.id).count(), 5)
        # Cached vectors are used as they are: texts are not even looked at again.
        again = embeddings_for_items(
            encoder=encoder, item_ids=[i.pk for i in items], texts=["anything"] * 5
        )
        np.testing.assert_array_equal(first, again)

    def test_it_runs_a_round_on_encoder_features_and_lm_rescoring(self):
        project = ProjectFactory(slug="models", languages=["de"])
        pool_items(project, self.de, GERMAN, prefix="m", with_logprobs=False)
        request = round_request_clean(
            project=project,
            budget=4,
            strategy="uniform",
            parameters={
                "features": "encoder",
                "encoder_path": str(self.encoder_path),
                "causal_lm_path": str(self.lm_path),
                "evaluator_capacity": None,
            },
        )
        selection_round = round_execute(request=request)
        self.assertEqual(selection_round.summary["rescored_with_lm"], len(GERMAN))
        self.assertEqual(selection_round.summary["scorers"], ["entropy", "min_logprob", "nll"])
        self.assertTrue(selection_round.summary["features"].startswith("encoder:encoder@"))
        self.assertEqual(RoundItem.objects.filter(round=selection_round).count(), 4)
        self.assertEqual(ItemEmbedding.objects.count(), len(GERMAN))
        # The LM's log-probs are cached on the item: the next round rescores nothing and
        # sees the same values.
        self.assertEqual(
            ItemRescore.objects.filter(lm__startswith="causal-lm@").count(), len(GERMAN)
        )
        again = round_execute(
            request=round_request_clean(
                project=project,
                budget=4,
                strategy="uniform",
                parameters={"causal_lm_path": str(self.lm_path), "evaluator_capacity": None},
            )
        )
        self.assertEqual(again.summary["rescored_with_lm"], 0)
        self.assertEqual(again.summary["scorers"], ["entropy", "min_logprob", "nll"])
        self.assertEqual(ItemRescore.objects.count(), len(GERMAN))
        # Once judged, the quality model learns from the same log-probs the pool was scored with.
        picked = list(
            RoundItem.objects.filter(round=selection_round).values_list("item_id", flat=True)
        )
        lm_id = ItemRescore.objects.values_list("lm", flat=True).first()
        labelled = labelled_items_load(picked, lm_id=lm_id)
        self.assertTrue(all(lp is not None and len(lp) for lp in labelled.token_logprobs))
        self.assertTrue(all(lp is None for lp in labelled_items_load(picked).token_logprobs))

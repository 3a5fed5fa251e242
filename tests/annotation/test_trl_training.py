"""One training step of TRL's trainers on Parity's preference export, pulled through the API.

A tiny model is built from a config and a tokenizer is trained on the export's own text, so
nothing is downloaded. At initialisation the first-step losses are known:
- DPO: the policy equals the reference, every log-ratio is 0, loss −log σ(0) = ln 2.
- Reward model: a fresh scalar head (weights drawn with a small `initializer_range`) gives
  rewards close to 0 on both sides, loss ≈ ln 2; with a `margin` column m the loss is
  ≈ −log σ(−m) = softplus(m).
- KTO: policy = reference, so the log-ratios and the KL estimate are 0 and each example's
  loss is 1 − σ(0) = 0.5 (times its weight, 1 by default).
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from annotation.models import TaskType
from annotation.tokens import api_token_create
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.factories import ProjectFactory

# Nothing in this file may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# transformers' own deprecations inside the trainers (gradient_checkpointing → activation_…)
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

LN2 = math.log(2)
SPECIAL_TOKENS = ["<pad>", "<unk>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
# A minimal chat template for the conversational style (role tag, content, end of turn).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _texts(data: Any) -> Any:
    for row in data:
        for value in row.values():
            if isinstance(value, str):
                yield value
            elif isinstance(value, list):
                for message in value:
                    if isinstance(message, dict):
                        yield message["content"]


def tiny_tokenizer(*datasets: Any) -> Any:
    """A word-level tokenizer trained in memory on the export's own text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = [text for data in datasets for text in _texts(data)]
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", eos_token="</s>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(tokenizer: Any, **extra: Any) -> Any:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        initializer_range=0.002,
        **extra,
    )


def first_loss(trainer: Any) -> float:
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.train()
    loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    print(f"{type(trainer).__name__}: first-step loss {loss:.6f}")  # shown with -s or on failure
    return loss


def training_args(config_class: Any, output_dir: str) -> Any:
    return config_class(
        output_dir=output_dir,
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )


def pair_item(n: int, language: str = "de", **extra: Any) -> dict[str, Any]:
    return {
        "external_id": f"p-{n}",
        "language": language,
        "prompt": f"Frage {n} bitte kurz?",
        "response_a": f"Antwort {n} ist richtig und klar",
        "response_b": f"Antwort {n} falsch",
        "model_a": "alpha",
        "model_b": "beta",
        **extra,
    }


def choices(external_id: str, *picks: tuple[str, int]) -> list[dict[str, Any]]:
    return [
        {"item_external_id": external_id, "rater": f"r{k}", "value": {"choice": c, "strength": s}}
        for k, (c, s) in enumerate(picks)
    ]


def scores(external_id: str, *values: int) -> list[dict[str, Any]]:
    return [
        {"item_external_id": external_id, "rater": f"r{k}", "value": {"score": v}}
        for k, v in enumerate(values)
    ]


# Rating responses on a 0–100 scale: (external id, language, prompt id, response, scores).
RATINGS = [
    ("q1-good", "de", "q1", "Der Hund läuft schnell nach Hause", (90, 80)),
    ("q1-bad", "de", "q1", "Hund Haus laufen", (10, 20)),
    ("q2-good", "de", "q2", "Das Wetter ist heute schön", (70, 80)),
    ("q2-bad", "de", "q2", "Wetter heute schön ist", (20, 30)),
    ("q3-good", "sw", "q3", "Mbwa anakimbia nyumbani haraka", (95, 85)),
    ("q3-bad", "sw", "q3", "Mbwa nyumba kimbia", (20, 20)),
]


class TrlTrainingTests(ApiTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.pairs = ProjectFactory(
            slug="chat-pairs", task_type=TaskType.PAIRWISE, languages=["de", "sw"], overlap=3
        )
        cls.ratings = ProjectFactory(
            slug="mt-scores",
            task_type=TaskType.RATING,
            languages=["de", "sw"],
            overlap=2,
            schema={"scale": {"min": 0, "max": 100}},
        )
        cls.pair_token = api_token_create(project=cls.pairs, scope="export")[1]
        cls.rating_token = api_token_create(project=cls.ratings, scope="export")[1]
        conversation = [
            {"role": "user", "content": "Hallo"},
            {"role": "assistant", "content": "Hallo wie bitte"},
            {"role": "user", "content": "Frage 3 bitte kurz?"},
        ]
        import_items(
            cls.pairs,
            [pair_item(n) for n in range(3)]
            + [pair_item(3, metadata={"conversation": conversation}), pair_item(4, "sw")],
        )
        import_judgments(
            cls.pairs,
            choices("p-0", ("a", 2), ("a", 2), ("a", 2))
            + choices("p-1", ("b", 1), ("b", 1), ("a", 1))
            + choices("p-2", ("a", 1), ("a", 1), ("a", 1))
            + choices("p-3", ("b", 2), ("b", 2), ("b", 2))
            + choices("p-4", ("a", 2), ("a", 1), ("a", 2)),
        )
        import_items(
            cls.ratings,
            [
                {
                    "external_id": eid,
                    "language": lang,
                    "prompt_id": pid,
                    "prompt": f"Übersetze {pid}",
                    "response": text,
                    "model": "gamma",
                }
                for eid, lang, pid, text, _ in RATINGS
            ],
        )
        import_judgments(
            cls.ratings, [line for eid, *_, values in RATINGS for line in scores(eid, *values)]
        )

    def setUp(self) -> None:
        super().setUp()
        import datasets
        import torch

        datasets.disable_progress_bars()
        torch.manual_seed(0)
        self.tmp = Path(self.enterContext(tempfile.TemporaryDirectory()))

    def export(self, project_slug: str, query: str) -> Any:
        """The export pulled through the API, written to a file and loaded with `datasets`."""
        import datasets

        token = self.pair_token if project_slug == "chat-pairs" else self.rating_token
        response = self.call(
            "get", f"/api/v1/projects/{project_slug}/export/preferences/?{query}", token=token
        )
        self.assertEqual(response.status_code, 200, getattr(response, "content", b"")[:300])
        path = self.tmp / f"{project_slug}-{abs(hash(query))}.jsonl"
        path.write_bytes(b"".join(response.streaming_content))
        return datasets.load_dataset(
            "json", data_files=str(path), cache_dir=str(self.tmp / "cache"), split="train"
        )

    def dpo_loss(self, data: Any) -> float:
        from transformers import GPT2LMHeadModel
        from trl import DPOConfig, DPOTrainer

        tokenizer = tiny_tokenizer(data)
        model = GPT2LMHeadModel(tiny_config(tokenizer))
        trainer = DPOTrainer(
            model=model,
            ref_model=copy.deepcopy(model),
            args=training_args(DPOConfig, str(self.tmp / "dpo")),
            train_dataset=data,
            processing_class=tokenizer,
        )
        return first_loss(trainer)

    def reward_loss(self, data: Any) -> float:
        from transformers import GPT2ForSequenceClassification
        from trl import RewardConfig, RewardTrainer

        tokenizer = tiny_tokenizer(data)
        model = GPT2ForSequenceClassification(tiny_config(tokenizer, num_labels=1))
        trainer = RewardTrainer(
            model=model,
            args=training_args(RewardConfig, str(self.tmp / "reward")),
            train_dataset=data,
            processing_class=tokenizer,
        )
        return first_loss(trainer)

    def kto_loss(self, data: Any) -> float:
        from transformers import GPT2LMHeadModel
        from trl import KTOConfig, KTOTrainer

        tokenizer = tiny_tokenizer(data)
        model = GPT2LMHeadModel(tiny_config(tokenizer))
        trainer = KTOTrainer(
            model=model,
            ref_model=copy.deepcopy(model),
            args=training_args(KTOConfig, str(self.tmp / "kto")),
            train_dataset=data,
            processing_class=tokenizer,
        )
        return first_loss(trainer)

    def test_it_trains_one_dpo_step_on_every_pair_export_at_ln2(self):
        for slug, style in (
            ("chat-pairs", "standard"),
            ("chat-pairs", "conversational"),
            ("mt-scores", "standard"),
        ):
            with self.subTest(project=slug, style=style):
                data = self.export(slug, f"style={style}")
                self.assertNotIn("margin", data.column_names)
                self.assertGreaterEqual(data.num_rows, 3)
                if style == "standard":
                    # TRL joins prompt and completion as they are: the default template ends the prompt.
                    self.assertTrue(all(p.endswith("\n") for p in data["prompt"]))
                elif slug == "chat-pairs":
                    # metadata.conversation makes a multi-turn prompt
                    self.assertIn(3, [len(p) for p in data["prompt"]])
                loss = self.dpo_loss(data)
                self.assertTrue(math.isfinite(loss))
                self.assertAlmostEqual(loss, LN2, delta=1e-3)

    def test_it_trains_one_reward_model_step_on_the_pairwise_export_near_ln2(self):
        for style in ("standard", "conversational"):
            with self.subTest(style=style):
                loss = self.reward_loss(self.export("chat-pairs", f"style={style}"))
                self.assertTrue(math.isfinite(loss))
                self.assertAlmostEqual(loss, LN2, delta=0.05)

    def test_the_reward_trainer_applies_the_scaled_margin_and_stays_near_ln2(self):
        for slug in ("chat-pairs", "mt-scores"):
            with self.subTest(project=slug):
                data = self.export(slug, "margin=scaled")
                margins = data["margin"]
                self.assertTrue(all(0 < m <= 1 for m in margins), margins)
                loss = self.reward_loss(data)
                # ≈ softplus(margin) of the batch's lines: between ln 2 and softplus(1) ≈ 1.31.
                self.assertTrue(math.isfinite(loss))
                self.assertGreaterEqual(loss, softplus(min(margins)) - 0.05)
                self.assertLessEqual(loss, softplus(max(margins)) + 0.05)

    def test_a_margin_column_in_raw_score_points_would_have_swamped_the_reward_loss(self):
        # Finding 3: the old export named the raw score difference `margin`; RewardTrainer
        # subtracts it inside the sigmoid, so a 0–100 rating gap of 50–70 points makes the
        # first-step loss ≈ the gap itself instead of ln 2.
        data = self.export("mt-scores", "")
        self.assertEqual(sorted(data["gap"]), [50.0, 70.0, 70.0])
        raw = data.rename_column("gap", "margin")
        loss = self.reward_loss(raw)
        self.assertTrue(math.isfinite(loss))
        self.assertGreater(loss, 45)  # ≈ the mean gap of the batch (50–70), not ln 2

    def test_it_trains_one_kto_step_on_the_unpaired_rating_export_at_one_half(self):
        for style in ("standard", "conversational"):
            with self.subTest(style=style):
                data = self.export("mt-scores", f"shape=unpaired&style={style}")
                self.assertEqual(data.num_rows, len(RATINGS))
                self.assertEqual(sorted(data["label"]), [False] * 3 + [True] * 3)
                loss = self.kto_loss(data)
                self.assertTrue(math.isfinite(loss))
                self.assertAlmostEqual(loss, 0.5, delta=1e-3)

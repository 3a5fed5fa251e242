#!/usr/bin/env python
"""Causal-LM rescoring throughput on the GPU against the CPU, as JSON.

What a round does when the pipeline sent no log-probs: rescore each output with a local
causal LM (active_learning.lm.CausalLM: one forward pass, full-vocabulary log-softmax,
the log-prob and entropy of every output token). The model is a randomly initialised
Qwen2-shaped decoder of about 0.5B parameters built in code (the shape of
Qwen2.5-0.5B: 24 layers, hidden 896, 14 heads with 2 key-value heads, a 151,936-token
vocabulary) — nothing is downloaded; random weights cost the same arithmetic as trained
ones. Texts are synthetic sentences in several scripts, tokenised byte by byte.

Reported per device: texts, output tokens scored, seconds, tokens per second (after a
warm-up batch), and the GPU/CPU ratio. Runs in about two minutes on an H100; --tiny runs
a 2-layer model on the CPU in seconds (what the tests and a laptop can afford):

    python3 bench/al_gpu.py                 # CUDA (bf16) and CPU (fp32), 0.5B model
    python3 bench/al_gpu.py --tiny          # small model, CPU only unless CUDA is there
    python3 bench/al_gpu.py --devices cuda --texts 4096 --batch-sizes 32,64,128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from active_learning.lm import CausalLM  # noqa: E402  (no Django needed)

SAMPLES = [
    "The committee reviewed the translation and found two mistakes in the second paragraph.",
    "Die Übersetzung ist flüssig, aber ein Fachbegriff wurde falsch wiedergegeben.",
    "الترجمة واضحة لكن بعض المصطلحات التقنية غير دقيقة في الفقرة الثانية.",
    "翻译总体流畅，但第二段中有两个术语翻译不准确。",
    "अनुवाद अच्छा है लेकिन दूसरे अनुच्छेद में दो शब्द गलत हैं।",
    "Tafsiri ni nzuri lakini maneno mawili ya kitaalamu si sahihi.",
]


class ByteTokenizer:
    """UTF-8 bytes as token ids 3…258 (0 pad, 1 BOS, 2 EOS): enough to feed real lengths."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [3 + b for b in text.encode("utf-8")]}

    def __len__(self) -> int:
        return 259


def model_config(tiny: bool) -> Any:
    from transformers import Qwen2Config

    if tiny:
        return Qwen2Config(
            vocab_size=4096,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
        )
    # Qwen2.5-0.5B's shape: about 494M parameters.
    return Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
    )


def build(config: Any, device: str, dtype: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def texts(n: int, chars: int) -> tuple[list[str], list[str]]:
    """n (prompt, output) pairs; outputs of about `chars` UTF-8 bytes."""
    prompts, outputs = [], []
    for k in range(n):
        body = ""
        while len(body.encode("utf-8")) < chars:
            body += SAMPLES[(k + len(body)) % len(SAMPLES)] + " "
        body = body.encode("utf-8")[:chars].decode("utf-8", errors="ignore")
        prompts.append(f"Rate output {k}:")
        outputs.append(body)
    return prompts, outputs


def measure(lm: CausalLM, *, n_texts: int, chars: int, batch_size: int) -> dict[str, Any]:
    import torch

    prompts, outputs = texts(n_texts, chars)
    lm.rescore(
        responses=outputs[:batch_size], prompts=prompts[:batch_size], batch_size=batch_size
    )  # warm-up
    if lm.device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    results = lm.rescore(responses=outputs, prompts=prompts, batch_size=batch_size)
    if lm.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens = int(sum(len(lp) for lp, _ in results))
    return {
        "texts": n_texts,
        "batch_size": batch_size,
        "output_tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def main() -> None:
    import torch
    import transformers

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tiny", action="store_true", help="a 2-layer model (CPU-friendly); default the 0.5B shape"
    )
    parser.add_argument(
        "--devices",
        default=None,
        help="comma-separated: cuda,cpu (default: cuda if present, and cpu)",
    )
    parser.add_argument(
        "--texts", type=int, default=None, help="texts on CUDA (default 2048; tiny 64)"
    )
    parser.add_argument(
        "--cpu-texts", type=int, default=None, help="texts on the CPU (default 16; tiny 32)"
    )
    parser.add_argument(
        "--chars", type=int, default=256, help="output length in UTF-8 bytes = tokens (default 256)"
    )
    parser.add_argument("--batch-sizes", default=None, help="CUDA batch sizes (default 16,64)")
    parser.add_argument("--cpu-batch-size", type=int, default=8)
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: all cores)"
    )
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    devices = args.devices.split(",") if args.devices else (["cuda", "cpu"] if cuda else ["cpu"])
    if "cuda" in devices and not cuda:
        parser.error("--devices names cuda but torch sees no CUDA device")
    if args.chars < 8 or (args.texts is not None and args.texts < 1):
        parser.error("need --chars ≥ 8 and --texts ≥ 1")
    batch_sizes = [int(b) for b in (args.batch_sizes or "16,64").split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    config = model_config(args.tiny)
    out: dict[str, Any] = {
        "script": "bench/al_gpu.py",
        "tiny": args.tiny,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "model": {
            "shape": "Qwen2 (random weights)",
            "layers": config.num_hidden_layers,
            "hidden": config.hidden_size,
            "vocab": config.vocab_size,
        },
        "output_chars": args.chars,
        "results": [],
    }
    best: dict[str, float] = {}
    for device in devices:
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        started = time.perf_counter()
        model = build(config, device, dtype)
        out["model"]["parameters"] = int(sum(p.numel() for p in model.parameters()))
        lm = CausalLM(
            path=None,
            id="random-qwen2",
            tokenizer=ByteTokenizer(),
            model=model,
            device=device,
            max_length=args.chars + 64,
        )
        build_s = time.perf_counter() - started
        sizes = batch_sizes if device == "cuda" else [args.cpu_batch_size]
        n_texts = (
            (args.texts or (64 if args.tiny else 2048))
            if device == "cuda"
            else (args.cpu_texts or (32 if args.tiny else 16))
        )
        for batch_size in sizes:
            row = {
                "device": device,
                "dtype": str(dtype).removeprefix("torch."),
                "build_s": round(build_s, 2),
                **measure(
                    lm, n_texts=max(n_texts, batch_size), chars=args.chars, batch_size=batch_size
                ),
            }
            if device == "cuda":
                row["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            out["results"].append(row)
            best[device] = max(best.get(device, 0.0), row["tokens_per_s"])
            print(json.dumps(row), file=sys.stderr, flush=True)
        del model, lm
        if device == "cuda":
            torch.cuda.empty_cache()
    if "cuda" in best and "cpu" in best:
        out["cuda_over_cpu"] = round(best["cuda"] / best["cpu"], 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

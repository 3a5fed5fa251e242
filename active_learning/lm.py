"""Rescoring outputs with a local causal LM: per-token log-probs and entropies.

Kept free of Django so a GPU worker (or bench/al_gpu.py) can use it with nothing but
torch and a tokenizer; `scorers.causal_lm_load` loads one by path for a round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Floats of full-vocabulary log-probs held at once (about 1 GB): bounds memory on long
# batches and 150k-token vocabularies.
_LOGIT_BUDGET = 250_000_000


@dataclass
class CausalLM:
    path: Path | None
    id: str
    tokenizer: Any
    model: Any
    device: str
    max_length: int = 512

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def rescore(
        self, *, responses: Sequence[str], prompts: Sequence[str] | None = None, batch_size: int = 8
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(token log-probs, token entropies) of each response given its prompt.

        The response is what is scored; the prompt is context only. A response needs a
        token before it to be predicted from, so an empty prompt becomes the BOS (or EOS)
        token. Long prompts are cut from the left, long responses from the right.
        """
        import torch

        prompts = prompts or [""] * len(responses)
        start = self.tokenizer.bos_token_id
        if start is None:
            start = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else start
        sequences: list[tuple[list[int], int]] = []
        for prompt, response in zip(prompts, responses, strict=True):
            target = self._ids(response)[: self.max_length - 1]
            context = ([start] + self._ids(prompt))[-(self.max_length - len(target)) :]
            sequences.append((context + target, len(context)))
        results: list[tuple[np.ndarray, np.ndarray]] = []
        with torch.inference_mode():
            for first in range(0, len(sequences), batch_size):
                batch = sequences[first : first + batch_size]
                width = max(len(ids) for ids, _ in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (ids, _) in enumerate(batch):
                    input_ids[row, : len(ids)] = torch.tensor(ids)
                    mask[row, : len(ids)] = 1
                input_ids = input_ids.to(self.device)
                logits = self.model(input_ids=input_ids, attention_mask=mask.to(self.device)).logits
                # Token t is predicted by the logits at position t - 1: score every position
                # of the batch at once, in row chunks that keep the float32 copy bounded.
                targets = input_ids[:, 1:]
                token_lp = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
                entropy = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
                rows = max(1, _LOGIT_BUDGET // max(1, (width - 1) * logits.shape[-1]))
                for r in range(0, len(batch), rows):
                    logp = torch.log_softmax(logits[r : r + rows, :-1].float(), dim=-1)
                    token_lp[r : r + rows] = logp.gather(
                        -1, targets[r : r + rows].unsqueeze(-1)
                    ).squeeze(-1)
                    entropy[r : r + rows] = -(logp.exp() * logp).sum(-1)
                    del logp
                token_lp_host = token_lp.cpu().numpy().astype(float)
                entropy_host = entropy.cpu().numpy().astype(float)
                for row, (ids, n_context) in enumerate(batch):
                    span = slice(n_context - 1, len(ids) - 1)
                    results.append(
                        (token_lp_host[row, span].copy(), entropy_host[row, span].copy())
                    )
        return results

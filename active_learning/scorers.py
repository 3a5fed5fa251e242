"""Uncertainty scorers, a registry keyed by name.

Every scorer returns one raw uncertainty per item — higher means "a human should look" —
and NaN where the item lacks what the scorer needs. Each declares the inputs it needs,
so a round uses exactly the scorers the pool can feed. Raw values are turned into
percentiles within each language before they are combined: token counts and log-probs
are not comparable across scripts (a Thai output has more, shorter-lived tokens than a
German one), ranks within a language are.

Inputs:
- ``token_logprobs``: per-token log-probs of the output, sent by the pipeline or obtained
  by rescoring the output with a local causal LM (`causal_lm_load`);
- ``token_entropy``: per-token entropies (LM rescoring), the top-k log-probs per token
  the pipeline sent (``metadata["top_logprobs"]``), or the mean the pipeline sent
  (``Item.token_entropy``);
- ``rewards``: reward scores of the two outputs of a pairwise item;
- ``committee``: a committee trained on the human labels so far (`committee.py`) and
  the items' features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from scipy.stats import rankdata

from active_learning import committee as committee_mod
from active_learning.features import model_id, model_path_check, torch_device
from active_learning.lm import CausalLM


@dataclass
class ScoringInputs:
    """What a pool offers the scorers, one entry per item."""

    languages: np.ndarray
    token_logprobs: list[np.ndarray | None]
    top_logprobs: list[list[np.ndarray] | None] = field(default_factory=list)
    token_entropies: list[np.ndarray | None] = field(default_factory=list)
    token_entropy: np.ndarray | None = None
    reward_a: np.ndarray | None = None
    reward_b: np.ndarray | None = None
    features: Any = None
    committee: committee_mod.FittedCommittee | None = None
    # `qe.qe_features` of these items and the quality model trained on the labels so far.
    qe_raw: np.ndarray | None = None
    qe_model: Any = None
    _ragged_logprobs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(
        default=None, repr=False
    )

    def __post_init__(self) -> None:
        n = len(self.languages)
        nan = np.full(n, np.nan)
        if not self.top_logprobs:
            self.top_logprobs = [None] * n
        if not self.token_entropies:
            self.token_entropies = [None] * n
        self.token_entropy = (
            nan.copy() if self.token_entropy is None else np.asarray(self.token_entropy, float)
        )
        self.reward_a = nan.copy() if self.reward_a is None else np.asarray(self.reward_a, float)
        self.reward_b = nan.copy() if self.reward_b is None else np.asarray(self.reward_b, float)

    @property
    def n(self) -> int:
        return len(self.languages)

    def logprobs_ragged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`token_logprobs` as one flat array (computed once for every scorer that needs it)."""
        if self._ragged_logprobs is None:
            self._ragged_logprobs = _ragged(self.token_logprobs)
        return self._ragged_logprobs

    def available(self) -> set[str]:
        """The inputs at least one item carries."""
        out: set[str] = set()
        if any(lp is not None and len(lp) for lp in self.token_logprobs):
            out.add("token_logprobs")
        if (
            any(t is not None for t in self.top_logprobs)
            or any(e is not None for e in self.token_entropies)
            or bool(np.isfinite(self.token_entropy).any())
        ):
            out.add("token_entropy")
        if bool((np.isfinite(self.reward_a) & np.isfinite(self.reward_b)).any()):
            out.add("rewards")
        if self.committee is not None and self.features is not None:
            out.add("committee")
        if self.qe_model is not None and self.qe_raw is not None:
            out.add("qe_model")
        return out


@dataclass(frozen=True)
class Scorer:
    name: str
    needs: frozenset[str]
    description: str
    score: Callable[[ScoringInputs], np.ndarray]


SCORERS: dict[str, Scorer] = {}


def scorer_register(*, name: str, needs: Sequence[str], description: str) -> Callable:
    def decorate(
        fn: Callable[[ScoringInputs], np.ndarray],
    ) -> Callable[[ScoringInputs], np.ndarray]:
        SCORERS[name] = Scorer(name=name, needs=frozenset(needs), description=description, score=fn)
        return fn

    return decorate


def _ragged(
    values: list[np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-item arrays as one flat array with offsets, so per-item sums and minima are one
    numpy call (`reduceat`) instead of a Python loop over a million items."""
    lengths = np.fromiter(
        (0 if v is None else len(v) for v in values), dtype=np.int64, count=len(values)
    )
    present = lengths > 0
    if not present.any():
        return np.zeros(0), np.zeros(0, dtype=np.int64), present, lengths
    flat = np.concatenate([np.asarray(v, dtype=float) for v in values if v is not None and len(v)])
    starts = np.concatenate([[0], np.cumsum(lengths[present])[:-1]])
    return flat, starts, present, lengths


@scorer_register(
    name="nll", needs=["token_logprobs"], description="mean token negative log-likelihood"
)
def score_nll(inputs: ScoringInputs) -> np.ndarray:
    flat, starts, present, lengths = inputs.logprobs_ragged()
    out = np.full(inputs.n, np.nan)
    if len(flat):
        out[present] = -np.add.reduceat(flat, starts) / lengths[present]
    return out


@scorer_register(
    name="min_logprob", needs=["token_logprobs"], description="minus the lowest token log-prob"
)
def score_min_logprob(inputs: ScoringInputs) -> np.ndarray:
    flat, starts, present, _ = inputs.logprobs_ragged()
    out = np.full(inputs.n, np.nan)
    if len(flat):
        out[present] = -np.minimum.reduceat(flat, starts)
    return out


def top_k_entropy(top: Sequence[np.ndarray]) -> float:
    """Mean over tokens of the entropy of the top-k distribution, renormalised: the tail
    the pipeline did not send is unknown, so this ranks items, it is not the full entropy."""
    values = []
    for logprobs in top:
        lp = np.asarray(logprobs, dtype=float)
        if not len(lp):
            continue
        p = np.exp(lp - lp.max())
        p /= p.sum()
        values.append(float(-(p * np.log(np.clip(p, 1e-300, None))).sum()))
    return float(np.mean(values)) if values else np.nan


@scorer_register(name="entropy", needs=["token_entropy"], description="mean token entropy")
def score_entropy(inputs: ScoringInputs) -> np.ndarray:
    out = np.array(inputs.token_entropy, dtype=float)
    for i, top in enumerate(inputs.top_logprobs):
        if top is not None and len(top):
            out[i] = top_k_entropy(top)
    # Full-distribution entropies (LM rescoring) win over the top-k approximation.
    for i, full in enumerate(inputs.token_entropies):
        if full is not None and len(full):
            out[i] = float(np.mean(full))
    return out


@scorer_register(
    name="reward_margin",
    needs=["rewards"],
    description="minus |reward A − reward B| (close rewards are uncertain)",
)
def score_reward_margin(inputs: ScoringInputs) -> np.ndarray:
    return -np.abs(inputs.reward_a - inputs.reward_b)


@scorer_register(
    name="committee_vote_entropy", needs=["committee"], description="vote entropy of the committee"
)
def score_vote_entropy(inputs: ScoringInputs) -> np.ndarray:
    return committee_mod.vote_entropy(inputs.committee, inputs.features)


@scorer_register(
    name="committee_max_disagreement",
    needs=["committee"],
    description="largest KL divergence of a member from the committee consensus",
)
def score_max_disagreement(inputs: ScoringInputs) -> np.ndarray:
    return committee_mod.max_disagreement(inputs.committee, inputs.features)


@scorer_register(
    name="classifier_entropy",
    needs=["committee"],
    description="entropy of the classifier's predicted label",
)
def score_classifier_entropy(inputs: ScoringInputs) -> np.ndarray:
    return committee_mod.classifier_entropy(inputs.committee, inputs.features)


@scorer_register(
    name="predicted_bad",
    needs=["qe_model"],
    description="probability that the output is bad, from the quality model trained on the labels so far",
)
def score_predicted_bad(inputs: ScoringInputs) -> np.ndarray:
    return inputs.qe_model.predict(inputs.qe_raw, inputs.languages)


# When the quality model can score, it is the combination: it weighed every signal on the
# labels, so averaging its ranks with the raw signals' again would undo what it learned.
# The other scorers stay as recorded components.
LEARNED_WEIGHTS = {"predicted_bad": 1.0}


def scorers_usable(*, inputs: ScoringInputs, names: Sequence[str] | None = None) -> list[Scorer]:
    available = inputs.available()
    chosen = [SCORERS[name] for name in names] if names else list(SCORERS.values())
    return [s for s in chosen if s.needs <= available]


def scores_compute(
    *, inputs: ScoringInputs, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Raw uncertainty per usable scorer."""
    return {
        s.name: np.asarray(s.score(inputs), dtype=float)
        for s in scorers_usable(inputs=inputs, names=names)
    }


def group_indices(groups: np.ndarray) -> dict[Any, np.ndarray]:
    """Row indices of each group, in row order: one sort instead of a string comparison
    over the whole pool per group."""
    labels, codes = np.unique(groups, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))
    return {label: order[bounds[k] : bounds[k + 1]] for k, label in enumerate(labels.tolist())}


def percentiles_within(
    values: np.ndarray, groups: np.ndarray, *, index: dict[Any, np.ndarray] | None = None
) -> np.ndarray:
    """Rank / count within each group, in (0, 1]; ties share their average rank, NaN stays NaN.
    A group whose values are all equal gets about 0.5 each: no information, no preference."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    for rows in (index if index is not None else group_indices(groups)).values():
        idx = rows[np.isfinite(values[rows])]
        if len(idx):
            out[idx] = rankdata(values[idx], method="average") / len(idx)
    return out


def scores_combine(
    *, raw: dict[str, np.ndarray], groups: np.ndarray, weights: dict[str, float] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Weighted mean of the per-language percentiles an item has; NaN for an item that has none.

    With the quality model's score among them and no weights asked for, the combination
    is that score alone (`LEARNED_WEIGHTS`); a scorer the weights leave out counts 0."""
    if not weights and "predicted_bad" in raw:
        weights = {name: LEARNED_WEIGHTS.get(name, 0.0) for name in raw}
    index = group_indices(groups) if raw else {}
    pct = {name: percentiles_within(values, groups, index=index) for name, values in raw.items()}
    if not pct:
        return np.full(len(groups), np.nan), pct
    total = np.zeros(len(groups))
    weight_sum = np.zeros(len(groups))
    for name, values in pct.items():
        w = float((weights or {}).get(name, 1.0))
        ok = np.isfinite(values) & (w > 0)
        total[ok] += w * values[ok]
        weight_sum[ok] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        combined = np.where(weight_sum > 0, total / np.where(weight_sum > 0, weight_sum, 1), np.nan)
    return combined, pct


# ---------------------------------------------------------------------------------------
# Rescoring with a local causal LM, when the pipeline sent no log-probs
# ---------------------------------------------------------------------------------------


def causal_lm_load(
    path: str | Path | None = None, *, device: str | None = None, dtype: Any = None
) -> CausalLM:
    """Load a local causal LM by path (settings.PARITY_CAUSAL_LM_PATH by default); never downloads."""
    folder = model_path_check(
        path or settings.PARITY_CAUSAL_LM_PATH, field="causal_lm_path", what="causal LM"
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = torch_device(device)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = (
        AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, **kwargs)
        .to(device)
        .eval()
    )
    return CausalLM(
        path=folder, id=model_id(folder), tokenizer=tokenizer, model=model, device=device
    )


def inputs_fill_from_lm(
    *,
    inputs: ScoringInputs,
    lm: CausalLM,
    responses: Sequence[str],
    prompts: Sequence[str],
    batch_size: int = 8,
) -> int:
    """Rescore the items that came without log-probs; returns how many were rescored."""
    missing = [i for i, lp in enumerate(inputs.token_logprobs) if lp is None or not len(lp)]
    if not missing:
        return 0
    rescored = lm.rescore(
        responses=[responses[i] for i in missing],
        prompts=[prompts[i] for i in missing],
        batch_size=batch_size,
    )
    inputs._ragged_logprobs = None
    for i, (logprobs, entropies) in zip(missing, rescored, strict=True):
        inputs.token_logprobs[i] = logprobs
        if inputs.token_entropies[i] is None and inputs.top_logprobs[i] is None:
            inputs.token_entropies[i] = entropies
    return len(missing)

"""Quality estimation from what a pipeline already has: the generating model's token
log-probs, the prompt (the source) and the output — and a model that learns from the
human labels which of these signals mark a bad output in each language.

Features (one row per item, no model download):

- glass-box, from the token log-probs (Fomicheva et al., "Unsupervised Quality
  Estimation for Neural Machine Translation", TACL 2020): mean (the length-normalised
  negative log-likelihood), minimum, spread, mean of the three lowest and of the lowest
  tenth, the 25th percentile, share of tokens below p = 0.37 and p = 0.1 and the count
  below log-prob −2, the final token's log-prob, the number of tokens, the total NLL, one
  minus the mean token probability, the mean NLL of the first and of the last third;
  and how finely the tokeniser cut the output (tokens per character and per source
  word: rare words, names and transliterations, where translations go wrong);
- source–output: log length ratio and its size, share of output words copied verbatim
  from the source and the longest copied run (untranslated spans), the share of the
  output's letters in the source's script (an untranslated sentence), number and
  punctuation mismatches, repeated word bigrams and the most repeated word (loops); the
  source's length, mean word length, share of symbols and of capitalised words (names,
  titles), the mismatch of capitalised words between source and output, and the share
  of the output's characters outside ASCII.

Log-prob features are NaN for an item without log-probs; the model sees them as "no
information" (the language's median) plus a flag.

`BadnessModel`: L2-regularised logistic regression on the features as percentiles within
each language (ranks compare across scripts and tokenisers, raw log-probs do not), with
the features repeated once per language ("frustratingly easy" domain adaptation,
Daumé III 2007): the shared weights learn from every language's labels, each language's
own weights only move where its labels say so — a per-language model, refitted on every
label, that a language with few labels borrows from the rest. Trained on every label
with equal weight: uncertainty picks are chosen by their features (this model's own
inputs), so for the model they are a covariate shift, not a biased sample of P(bad |
features); Horvitz–Thompson weights (`selection_weights`: an audit item standing for
the whole unpicked rest, 40–190 times a pick) would only make a handful of audit items
decide the fit. On MLQE-PE (bench/README, `al_simulate --seeds 0-4`) the weighted model
found less than log-prob uncertainty alone (mean share 0.41), the unweighted one more
(0.46). The audit slice's weights stay where unbiasedness matters: the committee's
training and the quality estimates (`estimation.py`).

Pure numpy and scikit-learn; no Django.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

LOGPROB_FEATURES = (
    "lp_mean_nll",
    "lp_min",
    "lp_std",
    "lp_low3",
    "lp_below_037",
    "lp_below_01",
    "lp_last",
    "lp_tokens",
    "lp_total_nll",
    "lp_prob_gap",
    "lp_low10",
    "lp_q25",
    "lp_count_below_2",
    "lp_first_third",
    "lp_last_third",
    "tokens_per_char",
    "tokens_per_source_word",
)
TEXT_FEATURES = (
    "len_ratio",
    "len_ratio_abs",
    "copied_share",
    "copied_run",
    "source_script_share",
    "number_mismatch",
    "punct_mismatch",
    "repeated_bigrams",
    "max_word_repeat",
    "source_words",
    "source_word_length",
    "source_symbols",
    "source_capitalised",
    "capitalised_mismatch",
    "output_non_ascii",
)
FEATURES = (*LOGPROB_FEATURES, *TEXT_FEATURES)

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"\w+", re.UNICODE)
_SYMBOL = re.compile(r"[^\w\s]|_", re.UNICODE)
_PUNCT = '()[]"?!:;%«»“”„'


@lru_cache(maxsize=65536)
def _script(ch: str) -> str:
    """The first word of a letter's Unicode name: LATIN, CYRILLIC, CJK, SINHALA, …"""
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else ""


def _dominant_script(text: str, limit: int = 200) -> tuple[str, dict[str, int]]:
    counts: dict[str, int] = {}
    for ch, k in Counter(text[:limit]).items():
        if ch.isalpha():
            s = _script(ch)
            counts[s] = counts.get(s, 0) + k
    return (max(counts, key=counts.__getitem__) if counts else ""), counts


def _text_features(source: str, output: str) -> list[float]:
    out_raw = _WORD.findall(output)
    src_raw = _WORD.findall(source)
    out_words = [w.casefold() for w in out_raw]
    src_words = {w.casefold() for w in src_raw}
    ratio = math.log((len(output) + 1) / (len(source) + 1)) if source else 0.0
    long_words = [w for w in out_words if len(w) > 3]
    copied = [w in src_words for w in long_words]
    run = best = 0
    for c in copied:
        run = run + 1 if c else 0
        best = max(best, run)
    # Letters of the output in the source's script: an untranslated sentence when the
    # target is written in another script; constant (no information) when both share one.
    if output.isascii() and source.isascii():
        foreign, letters = 1, 1
    else:
        src_script, _ = _dominant_script(source)
        _, out_counts = _dominant_script(output)
        letters = sum(out_counts.values())
        foreign = out_counts.get(src_script, 0)
    numbers = len(set(_NUMBER.findall(source)) ^ set(_NUMBER.findall(output))) if source else 0
    punct = sum(abs(source.count(c) - output.count(c)) for c in _PUNCT) if source else 0
    bigrams = list(zip(out_words, out_words[1:], strict=False))
    repeated = 1 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0
    most = max(Counter(long_words).values(), default=0)
    # The source's difficulty and named entities: long or symbol-laden sentences, many
    # capitalised words (names, titles) — and whether the output kept as many of them.
    src_capitalised = sum(w[0].isupper() for w in src_raw)
    out_capitalised = sum(w[0].isupper() for w in out_raw)
    symbols = len(_SYMBOL.findall(source))
    non_ascii = len(output) - len(output.encode("ascii", "ignore"))
    return [
        ratio,
        abs(ratio),
        sum(copied) / len(copied) if copied else 0.0,
        float(best),
        foreign / letters if letters else 0.0,
        float(numbers),
        float(punct),
        float(repeated),
        float(most),
        math.log1p(len(src_raw)),
        sum(map(len, src_raw)) / len(src_raw) if src_raw else 0.0,
        symbols / len(source) if source else 0.0,
        src_capitalised / len(src_raw) if src_raw else 0.0,
        abs(out_capitalised - src_capitalised) / max(1, len(src_raw)),
        non_ascii / len(output) if output else 0.0,
    ]


def _logprob_features(token_logprobs: Sequence[Any]) -> np.ndarray:
    """The glass-box columns for every item at once: flat arrays and `reduceat`, no Python
    loop over items (a chunk of 50,000 items is a few numpy calls)."""
    n = len(token_logprobs)
    out = np.full((n, len(LOGPROB_FEATURES)), np.nan)
    lengths = np.fromiter(
        (0 if lp is None else len(lp) for lp in token_logprobs), dtype=np.int64, count=n
    )
    present = lengths > 0
    if not present.any():
        return out
    flat = np.concatenate(
        [np.asarray(lp, dtype=float) for lp in token_logprobs if lp is not None and len(lp)]
    )
    sizes = lengths[present]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    mean = np.add.reduceat(flat, starts) / sizes
    spread = np.sqrt(np.maximum(np.add.reduceat(flat**2, starts) / sizes - mean**2, 0.0))
    segment = np.repeat(np.arange(len(sizes)), sizes)
    order = np.lexsort((flat, segment))  # each item's values ascending, items in turn
    rank = np.arange(len(flat)) - np.repeat(starts, sizes)
    ascending = flat[order]
    lowest = rank < 3
    low3 = np.bincount(
        segment[lowest], weights=ascending[lowest], minlength=len(sizes)
    ) / np.minimum(sizes, 3)
    # The lowest tenth of the tokens (at least one): a few bad words in a long output.
    tenth = np.maximum(sizes // 10, 1)
    lowest = rank < np.repeat(tenth, sizes)
    low10 = np.bincount(segment[lowest], weights=ascending[lowest], minlength=len(sizes)) / tenth
    q25 = ascending[starts + ((sizes - 1) * 0.25).astype(np.int64)]
    # Mean NLL of the first and of the last third of the output (at least one token each).
    third = np.maximum(sizes // 3, 1)
    position = np.arange(len(flat)) - np.repeat(starts, sizes)
    first = position < np.repeat(third, sizes)
    last = position >= np.repeat(sizes - third, sizes)
    first_third = np.bincount(segment[first], weights=flat[first], minlength=len(sizes)) / third
    last_third = np.bincount(segment[last], weights=flat[last], minlength=len(sizes)) / third
    out[present] = np.column_stack(
        [
            -mean,
            -np.minimum.reduceat(flat, starts),
            spread,
            -low3,
            np.add.reduceat((flat < -1.0).astype(float), starts) / sizes,
            np.add.reduceat((flat < np.log(0.1)).astype(float), starts) / sizes,
            -flat[starts + sizes - 1],
            np.log1p(sizes),
            -mean * sizes,
            1 - np.add.reduceat(np.exp(flat), starts) / sizes,
            -low10,
            -q25,
            np.add.reduceat((flat < -2.0).astype(float), starts),
            -first_third,
            -last_third,
            np.zeros(len(sizes)),  # tokens_per_char, tokens_per_source_word: `qe_features`
            np.zeros(len(sizes)),
        ]
    )
    return out


def qe_features(
    *, prompts: Sequence[str], responses: Sequence[str], token_logprobs: Sequence[Any]
) -> np.ndarray:
    """(n, len(FEATURES)) raw features; log-prob columns NaN where an item has none."""
    if not len(responses):
        return np.zeros((0, len(FEATURES)))
    text = np.asarray(
        [
            _text_features(prompt or "", response or "")
            for prompt, response in zip(prompts, responses, strict=True)
        ],
        dtype=float,
    )
    glass = _logprob_features(token_logprobs)
    # How finely the generating model's tokeniser cut the output: many short tokens per
    # character or per source word mean rare words, names and transliterations — where
    # translations go wrong. NaN, like the other glass-box columns, without log-probs.
    tokens = np.fromiter(
        (np.nan if lp is None or not len(lp) else len(lp) for lp in token_logprobs),
        dtype=float,
        count=len(responses),
    )
    chars = np.fromiter((len(r or "") for r in responses), dtype=float, count=len(responses))
    source_words = np.rint(np.expm1(text[:, TEXT_FEATURES.index("source_words")]))
    glass[:, LOGPROB_FEATURES.index("tokens_per_char")] = tokens / np.maximum(chars, 1)
    glass[:, LOGPROB_FEATURES.index("tokens_per_source_word")] = tokens / np.maximum(
        source_words, 1
    )
    return np.hstack([glass, text])


REFERENCE_SIZE = 2001
POOLED = "*"


def reference_build(raw: np.ndarray, languages: np.ndarray) -> dict[str, np.ndarray]:
    """Per language (and pooled, under "*"), each feature's sorted values — at most
    REFERENCE_SIZE evenly spaced quantiles — so an item's percentile does not depend on
    which other items are scored with it (a pool scored in chunks on several workers
    gets the same percentiles as one scored at once)."""
    from active_learning.scorers import group_indices

    out: dict[str, np.ndarray] = {}
    groups = {str(k): v for k, v in group_indices(languages).items()} if len(raw) else {}
    groups[POOLED] = np.arange(len(raw))
    for tag, rows in groups.items():
        block = np.sort(raw[rows], axis=0)  # NaN sorts last
        if len(block) > REFERENCE_SIZE:
            block = block[np.linspace(0, len(block) - 1, REFERENCE_SIZE).round().astype(int)]
        out[tag] = block
    return out


def _percentiles(
    raw: np.ndarray, languages: np.ndarray, reference: dict[str, np.ndarray]
) -> np.ndarray:
    """Mid-rank percentile of each value among its language's reference values, in (0, 1]."""
    from active_learning.scorers import group_indices

    out = np.full(raw.shape, np.nan)
    for tag, rows in group_indices(languages).items():
        ref = reference.get(str(tag), reference[POOLED])
        for j in range(raw.shape[1]):
            column = ref[:, j]
            column = column[np.isfinite(column)]
            values = raw[rows, j]
            ok = np.isfinite(values)
            if not len(column) or not ok.any():
                continue
            lo = np.searchsorted(column, values[ok], side="left")
            hi = np.searchsorted(column, values[ok], side="right")
            out[rows[ok], j] = np.clip((lo + hi) / 2 / len(column), 0.5 / len(column), 1.0)
    return out


def design_matrix(
    raw: np.ndarray, languages: np.ndarray, tags: Sequence[str], reference: dict[str, np.ndarray]
) -> np.ndarray:
    """Percentiles within each language (NaN → 0.5 plus a 'no log-probs' flag), centred,
    then repeated once per language for that language's own weights (zeros for a language
    the model has not seen: it gets the shared weights)."""
    width = (raw.shape[1] + 1) * (len(tags) + 1) + len(tags)
    if not len(raw):
        return np.zeros((0, width))
    pct = _percentiles(raw, languages, reference)
    missing = np.isnan(raw[:, 0]).astype(float)[:, None]
    shared = np.hstack([np.nan_to_num(pct, nan=0.5) - 0.5, missing])
    blocks = [shared]
    onehot = np.zeros((len(raw), len(tags)))
    for k, tag in enumerate(tags):
        mask = (languages == tag).astype(float)[:, None]
        blocks.append(shared * mask)
        onehot[:, k] = mask[:, 0]
    return np.hstack([*blocks, onehot])


def selection_weights(
    *, selection: Sequence[str], language: Sequence[str], audit_weight: dict[str, float]
) -> np.ndarray:
    """Horvitz–Thompson weights of labelled items: 1 for an uncertainty pick (taken for
    sure), 1 / (audit share of the rest) for an audit item; 1 for anything else."""
    return np.array(
        [
            audit_weight.get(lang, 1.0) if sel == "audit" else 1.0
            for sel, lang in zip(selection, language, strict=True)
        ],
        dtype=float,
    )


POOL_WEIGHT_C = 10.0
POOL_WEIGHT_CLIP = 50.0


def pool_weights(
    *,
    raw: np.ndarray,
    languages: np.ndarray,
    labelled: np.ndarray,
    C: float = POOL_WEIGHT_C,
    clip: float = POOL_WEIGHT_CLIP,
) -> np.ndarray:
    """Importance weights that make the labelled rows of `raw` stand for the others (the
    pool a model trained on them will score): w(x) = P(pool | x) ÷ P(labelled | x) ·
    (labelled ÷ pool items of the language), the density ratio of the two read off a
    logistic regression that tells them apart on the quality features (percentiles within
    each language, per-language weights, as `BadnessModel`; Bickel, Brückner & Scheffer,
    "Discriminative learning under covariate shift", JMLR 2009). An uncertainty pick that
    looks like nothing left in the pool weighs little, an audit item or a pick like many
    pool items weighs more; clipped to [1/clip, clip], so no handful of items decides a
    fit. In the order of `labelled`; all ones where a language has no pool left."""
    from sklearn.linear_model import LogisticRegression

    languages = np.asarray(languages, dtype=object)
    labelled = np.asarray(labelled, dtype=np.int64)
    is_labelled = np.zeros(len(raw), dtype=bool)
    is_labelled[labelled] = True
    weights = np.ones(len(labelled))
    if is_labelled.all() or not len(labelled):
        return weights
    tags = sorted({str(t) for t in languages.tolist()})
    X = design_matrix(raw, languages, tags, reference_build(raw, languages))
    model = LogisticRegression(C=C, max_iter=2000).fit(X, is_labelled.astype(int))
    p = np.clip(model.predict_proba(X[labelled])[:, 1], 1e-9, 1 - 1e-9)
    odds = (1 - p) / p
    for tag in tags:
        rows = languages[labelled] == tag
        pool = int((~is_labelled & (languages == tag)).sum())
        if pool:
            weights[rows] = odds[rows] * rows.sum() / pool
    return np.clip(weights, 1 / clip, clip)


@dataclass
class BadnessModel:
    """Predicts P(bad) of an item from its `qe_features`, per language."""

    tags: list[str]
    estimator: Any
    reference: dict[str, np.ndarray]
    n_labels: int
    n_bad: int
    parameters: dict[str, Any] = field(default_factory=dict)

    def predict(self, raw: np.ndarray, languages: np.ndarray) -> np.ndarray:
        """P(bad) per row; a row's value depends only on that row (chunks score alike)."""
        if not len(raw):
            return np.zeros(0)
        raw = self.columns(raw)
        X = design_matrix(raw, np.asarray(languages, dtype=object), self.tags, self.reference)
        return self.estimator.predict_proba(X)[:, 1]

    def columns(self, raw: np.ndarray) -> np.ndarray:
        """`qe_features` columns in the order this model was trained on: a model stored
        before features were added keeps scoring on the ones it knows."""
        names = self.parameters.get("features")
        if not names or list(names) == list(FEATURES) or raw.shape[1] != len(FEATURES):
            return raw
        return raw[:, [FEATURES.index(name) for name in names]]

    def dumps(self) -> bytes:
        import pickle
        import zlib

        return zlib.compress(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL), 6)

    @staticmethod
    def loads(blob: bytes) -> BadnessModel:
        import pickle
        import zlib

        # Only ModelVersion.quality_blob is ever loaded, which only this app's worker writes.
        return pickle.loads(zlib.decompress(bytes(blob)))  # noqa: S301


def badness_trainable(y: np.ndarray, *, min_labels: int = 10) -> str | None:
    """Why these labels cannot train the model, or None when they can."""
    y = np.asarray(y, dtype=bool)
    if len(y) < min_labels:
        return f"{len(y)} labelled items; the quality model needs at least {min_labels}"
    if y.sum() < 2 or (~y).sum() < 2:
        return "the quality model needs at least two bad and two good labelled items"
    return None


def badness_fit(
    *,
    raw: np.ndarray,
    languages: np.ndarray,
    labelled: np.ndarray,
    bad: np.ndarray,
    weights: np.ndarray | None = None,
    C: float = 0.05,
) -> BadnessModel:
    """Fit on the labelled rows of `raw`. Percentiles are taken against every row of a
    language, labelled or not (`reference_build`), and kept with the model, so training
    and scoring share one scale. `weights`: per-label sample weights (a round trains
    without: see the module's note)."""
    from sklearn.linear_model import LogisticRegression

    languages = np.asarray(languages, dtype=object)
    tags = sorted({str(t) for t in languages[labelled].tolist()})
    reference = reference_build(raw, languages)
    X = design_matrix(raw[labelled], languages[labelled], tags, reference)
    y = np.asarray(bad, dtype=int)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.mean()
    estimator = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
    estimator.fit(X, y, sample_weight=w)
    return BadnessModel(
        tags=tags,
        estimator=estimator,
        reference=reference,
        n_labels=len(y),
        n_bad=int(y.sum()),
        parameters={
            "C": C,
            "features": list(FEATURES),
            "weighting": "none" if weights is None else "sample weights",
        },
    )

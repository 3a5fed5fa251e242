"""How good is a language's output, from the labels an active-learning run collected?

The labels are of two kinds: uncertainty picks, chosen for looking bad (a biased sample),
and the audit slice, drawn at random from what was left. The plain mean of the labels is
biased; the Horvitz–Thompson mean (every pick for itself, every audit item for the
unpicked rest it was drawn from) is unbiased but rests on the audit slice alone — 25–30
items per language at a 20 % budget, a standard error near 4 points on a 0–100 scale.

`mean_estimate` is the difference (model-assisted) estimator, the form prediction-powered
inference uses (Särndal, Swensson & Wretman, "Model Assisted Survey Sampling", 1992;
Angelopoulos et al., "Prediction-powered inference", Science 2023):

    mean = ( Σ labelled y  +  Σ unlabelled ŷ  +  |unlabelled| · r̄ ) ÷ n

— every judged item counts as what it is, every unjudged item as the prediction of a
model trained on the labels (`score_predictions`: ridge regression on the quality
features of `qe.py`), and r̄, the audit items' mean residual y − ŷ, corrects whatever the
model gets wrong about the unpicked rest. The audit items are a random sample of that
rest, so r̄ is unbiased for its mean residual however poor the model; a good model only
shrinks the residuals, and so the error. To keep r̄ honest the residuals are cross-fitted:
each labelled item's prediction comes from a model that never saw it.

Pure numpy and scikit-learn; no Django.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from active_learning import qe

FOLDS = 5
RIDGE_ALPHA = 10.0
MIN_LABELS = 10


@dataclass(frozen=True)
class MeanEstimate:
    """A language's estimated mean score and how it was reached."""

    value: float
    method: str  # "difference", "horvitz-thompson", "labelled mean" or "exact"
    standard_error: float | None
    labelled: int
    audit: int


def score_predictions(
    *,
    raw: np.ndarray,
    labelled: np.ndarray,
    scores: np.ndarray,
    folds: int = FOLDS,
    alpha: float = RIDGE_ALPHA,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted predictions of the score from `qe_features` rows of one language:
    (each labelled row's prediction by the fold model that did not see it, each other
    row's mean prediction over the fold models), in the order of `labelled` and of the
    unlabelled rows. Features are percentiles within the language (`qe.design_matrix`)."""
    from sklearn.linear_model import Ridge

    labelled = np.asarray(labelled, dtype=np.int64)
    scores = np.asarray(scores, dtype=float)
    tags = np.full(len(raw), "", dtype=object)
    X = qe.design_matrix(raw, tags, [], qe.reference_build(raw, tags))
    unlabelled = np.setdiff1d(np.arange(len(raw)), labelled)
    k = max(2, min(folds, len(labelled)))
    fold = np.random.default_rng(seed).permutation(len(labelled)) % k
    held_out = np.zeros(len(labelled))
    rest = np.zeros(len(unlabelled))
    for f in range(k):
        train = fold != f
        model = Ridge(alpha=alpha).fit(X[labelled[train]], scores[train])
        held_out[~train] = model.predict(X[labelled[~train]])
        if len(unlabelled):
            rest += model.predict(X[unlabelled]) / k
    return held_out, rest


def mean_estimate(
    *,
    n: int,
    scores: np.ndarray,
    audit: np.ndarray,
    audit_weights: np.ndarray | None = None,
    labelled_predictions: np.ndarray | None = None,
    unlabelled_predictions: np.ndarray | None = None,
) -> MeanEstimate:
    """The mean score of a pool of `n` items from the `scores` of its labelled items.

    `audit`: which labelled items are audit items (a random sample of the unpicked rest);
    `audit_weights`: how many items each audit item stood for when drawn (its round's
    unpicked rest ÷ its audit size; equal weights when omitted) — used to weigh the
    residuals, and for the Horvitz–Thompson fallback; the predictions: from
    `score_predictions`. Without predictions, or with fewer than two audit items, the
    Horvitz–Thompson mean; without audit items, the labelled mean (biased: nothing
    random to correct it with); with every item labelled, the exact mean."""
    scores = np.asarray(scores, dtype=float)
    audit = np.asarray(audit, dtype=bool)
    labelled = len(scores)
    if not labelled:
        raise ValueError("no labelled items: nothing to estimate from")
    if labelled > n:
        raise ValueError(f"{labelled} labelled items in a pool of {n}")
    n_audit = int(audit.sum())
    weights = np.ones(n_audit) if audit_weights is None else np.asarray(audit_weights, dtype=float)
    if len(weights) != n_audit:
        raise ValueError("one audit weight per audit item")
    if labelled == n:
        return MeanEstimate(float(scores.mean()), "exact", 0.0, labelled, n_audit)
    if not n_audit:
        return MeanEstimate(float(scores.mean()), "labelled mean", None, labelled, 0)
    unlabelled = n - labelled
    if (
        labelled_predictions is None
        or unlabelled_predictions is None
        or n_audit < 2
        or len(unlabelled_predictions) != unlabelled
    ):
        # Every pick for itself, every audit item for its share of the unpicked rest.
        w = np.ones(labelled)
        w[audit] = weights * unlabelled / weights.sum() + 1
        return MeanEstimate(
            float((w * scores).sum() / w.sum()),
            "horvitz-thompson",
            _standard_error(scores[audit], weights, unlabelled / n),
            labelled,
            n_audit,
        )
    residuals = scores[audit] - np.asarray(labelled_predictions, dtype=float)[audit]
    correction = float((weights * residuals).sum() / weights.sum())
    value = (scores.sum() + float(np.sum(unlabelled_predictions)) + unlabelled * correction) / n
    return MeanEstimate(
        float(value),
        "difference",
        _standard_error(residuals, weights, unlabelled / n),
        labelled,
        n_audit,
    )


def _standard_error(values: np.ndarray, weights: np.ndarray, share: float) -> float | None:
    """Standard error of `share` × the weighted mean of `values` (Kish's effective size)."""
    if len(values) < 2:
        return None
    mean = (weights * values).sum() / weights.sum()
    variance = (
        (weights * (values - mean) ** 2).sum() / weights.sum() * len(values) / (len(values) - 1)
    )
    effective = weights.sum() ** 2 / (weights**2).sum()
    return float(share * math.sqrt(variance / effective))


def language_mean_estimate(
    *,
    raw: np.ndarray,
    labelled: np.ndarray,
    scores: np.ndarray,
    audit: np.ndarray,
    audit_weights: np.ndarray | None = None,
    seed: int = 0,
) -> MeanEstimate:
    """`mean_estimate` of one language's pool, whose `qe_features` rows are `raw`, with
    cross-fitted predictions when there are enough labels to train them."""
    labelled = np.asarray(labelled, dtype=np.int64)
    predictions: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if len(labelled) >= MIN_LABELS and len(labelled) < len(raw):
        predictions = score_predictions(raw=raw, labelled=labelled, scores=scores, seed=seed)
    return mean_estimate(
        n=len(raw),
        scores=scores,
        audit=audit,
        audit_weights=audit_weights,
        labelled_predictions=predictions[0],
        unlabelled_predictions=predictions[1],
    )

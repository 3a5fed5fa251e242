"""Agreement between evaluators: pairwise Cohen's kappa and each evaluator against the others."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from annotation.agreement.alpha import AlphaResult, _finite, alpha_with_ci
from annotation.agreement.loading import (
    _alpha_summary,
    _Judgments,
    _judgments_load,
    _language_resolve,
    _Scheme,
    level_resolve,
)
from annotation.models import (
    Project,
)

# Pairwise kappa needs this many shared items to mean anything.
KAPPA_MIN_SHARED = 5


# =======================================================================================
# Pairwise Cohen's kappa and the evaluator breakdown
# =======================================================================================


def _rater_matrix(data: _Judgments, scheme: _Scheme) -> tuple[list[str], np.ndarray]:
    """(raters, matrix) where matrix[u, r] is rater r's value index on unit u, or -1.

    For multi-label projects the units are (item, label) pairs, so kappa pools the labels.
    """
    frame = data.frame
    raters = sorted(frame["rater"].unique(), key=lambda r: (data.rater_labels.get(r, r), r))
    if frame.empty:
        return raters, np.zeros((0, 0), dtype=np.int64)
    _, item_index = np.unique(frame["item"].to_numpy(), return_inverse=True)
    rater_index = pd.Index(raters).get_indexer(frame["rater"])
    encoded = data.encoded(scheme)
    n_items = int(item_index.max()) + 1
    if scheme.multi:
        n_labels = len(scheme.labels)
        matrix = np.full((n_items * n_labels, len(raters)), -1, dtype=np.int64)
        for k in range(n_labels):
            matrix[item_index * n_labels + k, rater_index] = encoded[:, k]
        return raters, matrix
    matrix = np.full((n_items, len(raters)), -1, dtype=np.int64)
    matrix[item_index, rater_index] = encoded
    return raters, matrix


def _kappa(a: np.ndarray, b: np.ndarray, *, n_values: int, weights: str | None) -> float | None:
    # scikit-learn and crowd-kit take seconds to import and most callers need neither:
    # they are imported where first used.
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = cohen_kappa_score(a, b, labels=list(range(n_values)), weights=weights)
    return _finite(float(value))


def kappa_matrix(
    *,
    project: Project,
    language: str | None = None,
    level: str | None = None,
    min_shared: int = KAPPA_MIN_SHARED,
) -> dict[str, Any]:
    """Cohen's kappa (scikit-learn) between every two raters on the items both judged.

    Weighted (quadratic) for ordinal, interval and ratio levels, unweighted for nominal.
    Pairs that share fewer than `min_shared` units get None.
    """
    level = level_resolve(project=project, level=level)
    language = _language_resolve(project, language)
    scheme = _Scheme.of(project, level)
    data = _judgments_load(project, language=language)
    return _kappa_from(data, scheme, min_shared=min_shared)


def _kappa_from(
    data: _Judgments, scheme: _Scheme, *, min_shared: int = KAPPA_MIN_SHARED
) -> dict[str, Any]:
    raters, matrix = _rater_matrix(data, scheme)
    n = len(raters)
    kappa: list[list[float | None]] = [[None] * n for _ in range(n)]
    shared: list[list[int]] = [[0] * n for _ in range(n)]
    present = matrix >= 0
    overlap = present.T.astype(np.int64) @ present.astype(np.int64) if n else np.zeros((0, 0))
    for i in range(n):
        shared[i][i] = int(overlap[i, i])
        kappa[i][i] = 1.0 if overlap[i, i] else None
        for j in range(i + 1, n):
            both = present[:, i] & present[:, j]
            count = int(overlap[i, j])
            shared[i][j] = shared[j][i] = count
            if count >= min_shared:
                value = _kappa(
                    matrix[both, i],
                    matrix[both, j],
                    n_values=len(scheme.domain),
                    weights=scheme.kappa_weights,
                )
                kappa[i][j] = kappa[j][i] = value
    return {
        "raters": [{"key": r, "label": data.rater_labels.get(r, r)} for r in raters],
        "kappa": kappa,
        "shared": shared,
        "weights": scheme.kappa_weights,
        "min_shared": min_shared,
    }


def _evaluator_groups(
    data: _Judgments, scheme: _Scheme, *, overall: float | None, resamples: int, seed: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per rater: agreement with the others, alpha with the rater left out, mean kappa.

    With many raters a report needs many alphas here, so they use the coincidence formula
    alone (the tests hold it equal to the package's value).
    """
    frame = data.frame
    kappas = _kappa_from(data, scheme)
    groups: list[dict[str, Any]] = []
    if frame.empty:
        return groups, kappas
    index = {r["key"]: k for k, r in enumerate(kappas["raters"])}
    items = frame["item"].to_numpy(dtype=np.int64)
    rater = frame["rater"].to_numpy()
    encoded = data.encoded(scheme)
    # Every ordered pair of judgments by different raters on the same item, once.
    left = pd.DataFrame({"item": items, "rater": rater, "row": np.arange(len(frame))})
    pairs = left.merge(left, on="item", suffixes=("", "_other"))
    pairs = pairs[pairs["rater"] != pairs["rater_other"]]
    for key in sorted(index, key=lambda r: data.rater_labels.get(r, r)):
        mine = rater == key
        own = pairs[pairs["rater"] == key]
        row, other = own["row"].to_numpy(), own["row_other"].to_numpy()
        with_others = _with_others(
            items, encoded, row, other, scheme, resamples=resamples, seed=seed
        )
        # Leave-one-out is a point estimate: its change against the overall alpha is the signal.
        without = _alpha_summary(data.subset(~mine), scheme, resamples=0, seed=seed, package=False)
        own_items = np.unique(items[mine])
        shared_items = np.unique(items[row]) if len(row) else np.zeros(0)
        kappa_mean = _kappa_mean(kappas, index[key])
        groups.append(
            {
                "key": key,
                "label": data.rater_labels.get(key, key),
                "alpha": with_others.alpha,
                "level": scheme.level,
                "ci": list(with_others.ci),
                "units": int(len(shared_items)),
                "judgments": int(mine.sum()),
                "excluded_units": int(len(own_items) - len(shared_items)),
                "alpha_without": without["alpha"],
                "alpha_change": (without["alpha"] - overall)
                if without["alpha"] is not None and overall is not None
                else None,
                "kappa_mean": kappa_mean,
            }
        )
    return groups, kappas


def _with_others(
    items: np.ndarray,
    encoded: np.ndarray,
    row: np.ndarray,
    other: np.ndarray,
    scheme: _Scheme,
    *,
    resamples: int,
    seed: int,
) -> AlphaResult:
    """A rater's agreement with the others: alpha over two-value units (this rater's
    value, one other rater's value), resampled by item."""
    pair_id = np.arange(len(row))
    if scheme.multi:
        n_labels = len(scheme.labels)
        unit = np.concatenate([pair_id, pair_id])[:, None] * n_labels + np.arange(n_labels)[None, :]
        value = np.concatenate([encoded[row], encoded[other]])
        cluster = np.repeat(np.concatenate([items[row], items[other]]), n_labels)
        return alpha_with_ci(
            unit=unit.ravel(),
            value=value.ravel(),
            cluster=cluster,
            domain=scheme.domain,
            level=scheme.level,
            resamples=resamples,
            seed=seed,
            package=False,
        )
    return alpha_with_ci(
        unit=np.concatenate([pair_id, pair_id]),
        value=np.concatenate([encoded[row], encoded[other]]),
        cluster=np.concatenate([items[row], items[row]]),
        domain=scheme.domain,
        level=scheme.level,
        resamples=resamples,
        seed=seed,
        package=False,
    )


def _kappa_mean(kappas: dict[str, Any], k: int) -> float | None:
    """Rater k's kappa with each other rater, weighted by the items they share."""
    peer = [
        (kappas["kappa"][k][j], kappas["shared"][k][j])
        for j in range(len(kappas["raters"]))
        if j != k and kappas["kappa"][k][j] is not None
    ]
    return (sum(v * w for v, w in peer) / sum(w for _, w in peer)) if peer else None

#!/usr/bin/env python
"""How much of the achievable gain can the quality signals reach at all on MLQE-PE?

An upper bound for any selection strategy built on the features a pipeline has (token
log-probs, source and output — `active_learning/qe.py`): a model is trained on 80 % of
every language's labels (5-fold, out-of-fold predictions, far more labels than a 20 %
budget ever reveals, and no audit slice to pay for) and the top k = 20 % of each
language by its prediction is scored with `simulation.achievable_gain`. Two models:
the product's quality model (`qe.badness_fit`, logistic regression on per-language
percentiles) and a non-linear one that can use interactions the linear model cannot
(gradient-boosted trees on the same percentiles and the language, regressing the human
score). Also printed: each single signal's share (top k by that signal alone; a
negative share means the signal points the other way).

    .venv/bin/python bench/al_ceiling.py            # under a minute on 2 shared cores
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def main() -> None:
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parity.settings")
    import django

    django.setup()
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import StratifiedKFold

    from active_learning import qe
    from active_learning.simulation import achievable_gain, mlqe_load

    languages = mlqe_load()
    raw = np.vstack([d.qe_raw for d in languages])
    tags = np.concatenate([np.full(d.n, d.language, dtype=object) for d in languages])
    bad = np.concatenate([d.bad for d in languages])
    score = np.concatenate([d.mean for d in languages])
    names = [d.language for d in languages]
    # The trees' inputs: percentiles within each language (as the quality model's) and
    # the language; the target, the score standardised within each language.
    reference = qe.reference_build(raw, tags)
    pct = np.nan_to_num(qe._percentiles(raw, tags, reference), nan=0.5)
    trees_X = np.hstack([pct, np.array([[names.index(t)] for t in tags], dtype=float)])
    z = np.zeros(len(score))
    for name in names:
        rows = tags == name
        z[rows] = (score[rows] - score[rows].mean()) / score[rows].std()
    linear = np.zeros(len(bad))
    trees = np.zeros(len(bad))
    strata = np.array([f"{t}:{b}" for t, b in zip(tags, bad, strict=True)])
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(raw, strata):
        model = qe.badness_fit(raw=raw, languages=tags, labelled=train, bad=bad[train])
        linear[test] = model.predict(raw[test], tags[test])
        boosted = HistGradientBoostingRegressor(
            max_iter=150,
            learning_rate=0.05,
            max_leaf_nodes=15,
            l2_regularization=1.0,
            categorical_features=[trees_X.shape[1] - 1],
            random_state=0,
        ).fit(trees_X[train], z[train])
        trees[test] = -boosted.predict(trees_X[test])

    def share(value: np.ndarray, y: np.ndarray) -> float:
        k = int(round(0.2 * len(y)))
        top = np.lexsort((np.arange(len(y)), -np.nan_to_num(value, nan=-np.inf)))[:k]
        return achievable_gain(picked=k, found=int(y[top].sum()), bad=int(y.sum()), n=len(y))[
            "share"
        ]

    singles = (
        "lp_mean_nll",
        "lp_std",
        "lp_low10",
        "tokens_per_char",
        "copied_share",
        "len_ratio_abs",
    )
    print(
        f"{'language':<9} {'quality model':>14} {'trees':>7} "
        + " ".join(f"{s:>15}" for s in singles)
    )
    rows = []
    for d in languages:
        mask = tags == d.language
        cells = [share(linear[mask], bad[mask]), share(trees[mask], bad[mask])] + [
            share(d.qe_raw[:, qe.FEATURES.index(s)], d.bad) for s in singles
        ]
        rows.append(cells)
        print(
            f"{d.language:<9} {cells[0]:>14.2f} {cells[1]:>7.2f} "
            + " ".join(f"{c:>15.2f}" for c in cells[2:])
        )
    means = np.mean(rows, axis=0)
    print(
        f"{'mean':<9} {means[0]:>14.2f} {means[1]:>7.2f} "
        + " ".join(f"{c:>15.2f}" for c in means[2:])
    )
    print(
        "(80 % of each language's labels, 5-fold out of fold; share of the achievable gain at k = 20 %)"
    )


if __name__ == "__main__":
    main()

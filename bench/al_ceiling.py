#!/usr/bin/env python
"""How much of the achievable gain can the quality signals reach at all on MLQE-PE?

An upper bound for any selection strategy built on the features a pipeline has (token
log-probs, source and output — `active_learning/qe.py`): the quality model is trained on
80 % of every language's labels (5-fold, out-of-fold predictions, far more labels than a
20 % budget ever reveals, and no audit slice to pay for) and the top k = 20 % of each
language by predicted P(bad) is scored with `simulation.achievable_gain`. Also printed:
each single signal's share (top k by that signal alone).

    .venv/bin/python bench/al_ceiling.py            # about a minute on 2 shared cores
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
    from sklearn.model_selection import StratifiedKFold

    from active_learning import qe
    from active_learning.simulation import achievable_gain, mlqe_load

    languages = mlqe_load()
    raw = np.vstack([d.qe_raw for d in languages])
    tags = np.concatenate([np.full(d.n, d.language, dtype=object) for d in languages])
    bad = np.concatenate([d.bad for d in languages])
    predicted = np.zeros(len(bad))
    strata = np.array([f"{t}:{b}" for t, b in zip(tags, bad, strict=True)])
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(raw, strata):
        model = qe.badness_fit(raw=raw, languages=tags, labelled=train, bad=bad[train])
        predicted[test] = model.predict(raw[test], tags[test])

    def share(score: np.ndarray, y: np.ndarray) -> float:
        k = int(round(0.2 * len(y)))
        top = np.lexsort((np.arange(len(y)), -np.nan_to_num(score, nan=-np.inf)))[:k]
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
        f"{'language':<9} {'model (80% labels, CV)':>24} " + " ".join(f"{s:>13}" for s in singles)
    )
    rows = []
    for d in languages:
        mask = tags == d.language
        cells = [share(predicted[mask], bad[mask])] + [
            share(d.qe_raw[:, qe.FEATURES.index(s)], d.bad) for s in singles
        ]
        rows.append(cells)
        print(f"{d.language:<9} {cells[0]:>24.2f} " + " ".join(f"{c:>13.2f}" for c in cells[1:]))
    means = np.mean(rows, axis=0)
    print(f"{'mean':<9} {means[0]:>24.2f} " + " ".join(f"{c:>13.2f}" for c in means[1:]))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""What does an honest per-language quality estimate cost? The parity strategy of
`al_simulate` on MLQE-PE's dev split (7 × 1,000 outputs, 20 % budget), with its audit
slice (the random part of each round) at several shares of the budget, over many seeds.

For each audit share it prints the parity strategy's mean |estimated − true| mean score
per language (the difference estimator of `active_learning/estimation.py`, as
`al_simulate` reports it), the mean standard error the estimator reports for itself,
the mean signed error per language (a bias would show here, not average out), and the
share of the achievable gain parity's picks reach — the price of the audit items, which
are random and so find bad outputs only at random's rate.

Seeds matter: one seed's mean error moves by ±0.5 between seeds at the default share, so
compare means over ten or more.

    .venv/bin/python bench/al_estimate.py                        # 12 seeds, about 2 minutes
    .venv/bin/python bench/al_estimate.py --seeds 5 --shares 0.1-0.15,0.3-0.35
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def _shares(text: str) -> list[tuple[float, float]]:
    out = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            pair = (float(low), float(high or low))
        except ValueError:
            raise SystemExit(f"--shares takes MIN-MAX pairs like 0.1-0.15, not {part!r}") from None
        if not 0 <= pair[0] <= pair[1] <= 1:
            raise SystemExit(f"an audit share is between 0 and 1 with MIN ≤ MAX, not {part!r}")
        out.append(pair)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=12, help="seeds 0..N-1 (default 12)")
    parser.add_argument(
        "--shares",
        type=_shares,
        default=_shares("0.1-0.15,0.2-0.25,0.3-0.35"),
        help="audit (min-max) shares of each round's budget; 0.1-0.15 is the product's default",
    )
    parser.add_argument("--budget", type=float, default=0.2)
    args = parser.parse_args()
    if args.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parity.settings")
    import django

    django.setup()
    import numpy as np

    from active_learning import estimation
    from active_learning.simulation import _result_row, mlqe_load, strategy_parity

    languages = mlqe_load()
    names = [d.language for d in languages]
    print(
        f"MLQE-PE dev, {len(languages)} languages × {languages[0].n} outputs, budget "
        f"{args.budget:.0%}, parity strategy, seeds 0–{args.seeds - 1}"
    )
    header = (
        f"{'audit share':<12} {'audit/lang':>10} {'|error|':>8} {'SE':>6} {'share':>6}  "
        + " ".join(f"{n:>6}" for n in names)
    )
    print(header)
    print("-" * len(header))
    for low, high in args.shares:
        started = time.perf_counter()
        errors, ses, shares, audits = [], [], [], []
        signed: dict[str, list[float]] = {n: [] for n in names}
        for seed in range(args.seeds):
            labels = strategy_parity(languages, args.budget, seed=seed, audit_shares=(low, high))
            run_shares = []
            for d in languages:
                idx = labels.picked[d.language]
                audit = np.array(labels.selection[d.language]) == "audit"
                estimate = estimation.language_mean_estimate(
                    raw=d.qe_raw,
                    labelled=idx,
                    scores=d.mean[idx],
                    audit=audit,
                    audit_weights=labels.weight[d.language][audit],
                )
                error = estimate.value - float(d.mean.mean())
                errors.append(abs(error))
                signed[d.language].append(error)
                if estimate.standard_error is not None:
                    ses.append(estimate.standard_error)
                audits.append(int(audit.sum()))
                share = _result_row("parity", d, idx)["share"]
                if share is not None:
                    run_shares.append(share)
            shares.append(float(np.mean(run_shares)))
        print(
            f"{low:.2f}–{high:.2f}    {np.mean(audits):>10.1f} {np.mean(errors):>8.2f} "
            f"{np.mean(ses):>6.2f} {np.mean(shares):>6.3f}  "
            + " ".join(f"{np.mean(signed[n]):>+6.2f}" for n in names)
            + f"   ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    print(
        "|error|: mean over seeds and languages of |estimated − true| mean score (0–100 scale); "
        "SE: the estimator's own mean standard error; share: parity's mean share of the "
        "achievable gain; per language: mean signed error (estimated − true)"
    )


if __name__ == "__main__":
    main()

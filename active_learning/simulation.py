"""Offline replay of a labelled data set with the labels hidden: does uncertainty routing
send more of the truly bad outputs to humans than random selection, in every language?

MLQE-PE (seven language pairs, 1,000 machine translations each, the NMT model's real
token log-probs and six human direct-assessment scores 0–100): an output is truly bad
when its mean human score is below 50. Every strategy sees only what a live system sees
— the texts and the log-probs — and "learns" a label only for the items it sends to
humans. Strategies, each at the same budget (a share of every language's pool):

- ``random``: a uniform random sample per language;
- ``uncertainty``: the production selector on the pipeline's signals (mean token NLL and
  minimum token log-prob, as percentiles within the language, then the diverse batch);
- ``committee``: the same in four steps, adding the committee trained on the labels
  revealed so far (vote entropy, max disagreement, classifier entropy) from step two;
- ``parity``: the whole budget pooled and split by the parity allocation in two rounds —
  round one with an audit slice and equal shares, round two weighted by the quality lag
  each language's audit revealed — with uncertainty picks inside each language.

Reported per language: bad outputs in the pool, bad outputs sent to humans, recall; the
committee's learning curve (accuracy on the still-hidden items against labels seen); and
the spread between languages (max − min recall, and how far each strategy's estimate of
a language's mean quality is from the truth: uncertainty picks over-represent bad
outputs, which is why the parity report uses only audit items).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from active_learning import committee as committee_mod
from active_learning.allocation import LanguageSupply, allocation_compute
from active_learning.features import hashing_features
from active_learning.scorers import ScoringInputs, scores_combine, scores_compute
from active_learning.selection import batch_select, text_keys

DATASETS = ("mlqe-pe",)
STRATEGIES = ("random", "uncertainty", "committee", "parity")
BAD_BELOW = 50.0
COMMITTEE_STEPS = 4
TOKEN_SCORERS = ["nll", "min_logprob"]
COMMITTEE_SCORERS = [*TOKEN_SCORERS, "committee_vote_entropy", "committee_max_disagreement", "classifier_entropy"]


class SimulationError(ValueError):
    """Bad simulation input; the message says what to fix."""


@dataclass
class LanguageData:
    language: str
    texts: list[str]
    logprobs: list[np.ndarray]
    mean: np.ndarray
    features: Any
    keys: np.ndarray

    @property
    def bad(self) -> np.ndarray:
        return self.mean < BAD_BELOW

    @property
    def n(self) -> int:
        return len(self.texts)


def mlqe_load(*, limit: int | None = None, pairs: Sequence[str] | None = None) -> list[LanguageData]:
    from annotation.demo_data import MLQE_PAIRS, mlqe_segments

    out = []
    for pair in pairs or MLQE_PAIRS:
        texts, logprobs, means = [], [], []
        for seg in mlqe_segments(pair):
            if limit is not None and len(texts) >= limit:
                break
            texts.append(seg["translation"])
            logprobs.append(np.asarray(seg["token_logprobs"], dtype=float))
            means.append(float(seg["mean"]))
        out.append(LanguageData(
            language=pair, texts=texts, logprobs=logprobs, mean=np.array(means), features=hashing_features(texts),
            keys=text_keys(texts),
        ))
    return out


def _inputs(data: LanguageData, idx: np.ndarray, *, committee: Any = None) -> ScoringInputs:
    return ScoringInputs(
        languages=np.full(len(idx), data.language, dtype=object),
        token_logprobs=[data.logprobs[i] for i in idx],
        features=data.features[idx] if committee is not None else None,
        committee=committee,
    )


def uncertainty_picks(data: LanguageData, candidates: np.ndarray, k: int, *, seed: int,
                      committee: Any = None) -> np.ndarray:
    """The production selector on the candidates: percentiles of the scorers, then the diverse batch."""
    names = COMMITTEE_SCORERS if committee is not None else TOKEN_SCORERS
    inputs = _inputs(data, candidates, committee=committee)
    raw = scores_compute(inputs=inputs, names=names)
    combined, _ = scores_combine(raw=raw, groups=inputs.languages)
    chosen = batch_select(scores=combined, features=data.features[candidates], keys=data.keys[candidates], k=k, seed=seed)
    return candidates[chosen]


def _fit(data: LanguageData, labelled: np.ndarray, *, seed: int) -> Any:
    y = data.bad[labelled].astype(np.int64)
    if committee_mod.labels_trainable(y, min_labels=6) is not None:
        return None
    return committee_mod.committee_fit(data.features[labelled], y, seed=seed)


def _accuracy(data: LanguageData, fitted: Any, hidden: np.ndarray) -> float | None:
    if fitted is None or not len(hidden):
        return None
    predicted = committee_mod.predict(fitted, data.features[hidden])
    return float((predicted == data.bad[hidden].astype(np.int64)).mean())


def strategy_random(data: LanguageData, k: int, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1, data.n])
    return rng.choice(data.n, size=k, replace=False)


def strategy_uncertainty(data: LanguageData, k: int, *, seed: int) -> np.ndarray:
    return uncertainty_picks(data, np.arange(data.n), k, seed=seed)


def strategy_committee(data: LanguageData, k: int, *, seed: int, curve: list[dict[str, Any]] | None = None,
                       random_curve: bool = True) -> np.ndarray:
    """Active learning in steps: token signals first, then the committee joins as labels arrive."""
    sizes = np.diff(np.linspace(0, k, COMMITTEE_STEPS + 1).round().astype(int))
    picked = np.zeros(0, dtype=np.int64)
    fitted = None
    for step, size in enumerate(sizes, start=1):
        remaining = np.setdiff1d(np.arange(data.n), picked)
        if size:
            picked = np.concatenate([picked, uncertainty_picks(data, remaining, int(size), seed=seed, committee=fitted)])
        fitted = _fit(data, picked, seed=seed)
        if curve is not None:
            hidden = np.setdiff1d(np.arange(data.n), picked)
            curve.append({"strategy": "committee", "language": data.language, "step": step, "labels": len(picked),
                          "accuracy": _accuracy(data, fitted, hidden)})
            if random_curve:
                rnd = strategy_random(data, len(picked), seed=seed)
                curve.append({"strategy": "random", "language": data.language, "step": step, "labels": len(picked),
                              "accuracy": _accuracy(data, _fit(data, rnd, seed=seed), np.setdiff1d(np.arange(data.n), rnd))})
    return picked


def strategy_parity(
    languages: list[LanguageData], budget: float, *, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Two rounds over the pooled budget: audit + equal shares, then weighted by the lag the audit showed."""
    total = int(round(budget * sum(d.n for d in languages)))
    first = total // 2
    picked = {d.language: np.zeros(0, dtype=np.int64) for d in languages}
    audit = {d.language: np.zeros(0, dtype=np.int64) for d in languages}
    quality: dict[str, float | None] = {d.language: None for d in languages}
    for round_budget in (first, total - first):
        supplies = [LanguageSupply(tag=d.language, pool=d.n - len(picked[d.language]), quality=quality[d.language])
                    for d in languages]
        allocation = allocation_compute(languages=supplies, budget=round_budget, strategy="parity", seed=seed)
        for d, alloc in zip(languages, allocation, strict=True):
            remaining = np.setdiff1d(np.arange(d.n), picked[d.language])
            rng = np.random.default_rng([seed, 2, len(picked[d.language]), d.n])
            random_part = rng.choice(remaining, size=alloc.audit, replace=False) if alloc.audit else remaining[:0]
            rest = np.setdiff1d(remaining, random_part)
            chosen = uncertainty_picks(d, rest, alloc.uncertainty, seed=seed) if alloc.uncertainty else rest[:0]
            audit[d.language] = np.concatenate([audit[d.language], random_part])
            picked[d.language] = np.concatenate([picked[d.language], random_part, chosen])
            # What the parity report would say after this round: audit items only.
            quality[d.language] = float(d.mean[audit[d.language]].mean() / 100) if len(audit[d.language]) else None
    return picked, audit


def simulation_run(
    *, dataset: str = "mlqe-pe", budget: float = 0.2, seed: int = 0, strategies: Sequence[str] = STRATEGIES,
    limit: int | None = None, pairs: Sequence[str] | None = None, progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the strategies; returns {"budget", "seed", "dataset", "results", "curves", "spread", "summary"}."""
    if dataset not in DATASETS:
        raise SimulationError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}")
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget) or not 0 < budget <= 1:
        raise SimulationError(f"the budget is a share of each language's pool, above 0 and at most 1, not {budget!r}")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise SimulationError(f"unknown strategy {(unknown or [''])[0]!r}; use some of {', '.join(STRATEGIES)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 20):
        raise SimulationError("limit must be a whole number of at least 20 items per language")
    try:
        languages = mlqe_load(limit=limit, pairs=pairs)
    except FileNotFoundError as exc:
        raise SimulationError(str(exc)) from None
    results: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    estimates: list[dict[str, Any]] = []

    def record(strategy: str, data: LanguageData, picked: np.ndarray, estimate_from: np.ndarray) -> None:
        bad = data.bad
        found = int(bad[picked].sum())
        results.append({"strategy": strategy, "language": data.language, "bad_total": int(bad.sum()),
                        "bad_found": found, "recall": round(found / bad.sum(), 4) if bad.sum() else None})
        estimates.append({"strategy": strategy, "language": data.language, "selected": int(len(picked)),
                          "true_mean": round(float(data.mean.mean()), 2),
                          "estimated_mean": round(float(data.mean[estimate_from].mean()), 2) if len(estimate_from) else None})

    for strategy in strategies:
        if progress:
            progress(strategy)
        if strategy == "parity":
            picked_by, audit_by = strategy_parity(languages, budget, seed=seed)
            for data in languages:
                # Quality is estimated as the parity report does: from the audit items only.
                record(strategy, data, picked_by[data.language], audit_by[data.language])
            continue
        for data in languages:
            k = max(1, int(round(budget * data.n)))
            if strategy == "random":
                picked = strategy_random(data, k, seed=seed)
            elif strategy == "uncertainty":
                picked = strategy_uncertainty(data, k, seed=seed)
            else:
                picked = strategy_committee(data, k, seed=seed, curve=curves)
            record(strategy, data, picked, picked)
    return {
        "dataset": dataset,
        "budget": budget,
        "seed": seed,
        "bad_below": BAD_BELOW,
        "results": results,
        "curves": curves,
        "estimates": estimates,
        "spread": _spread(results, estimates),
        "summary": _summary(results),
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for strategy in dict.fromkeys(r["strategy"] for r in results):
        rows = [r for r in results if r["strategy"] == strategy and r["recall"] is not None]
        out[strategy] = {
            "mean_recall": round(float(np.mean([r["recall"] for r in rows])), 4) if rows else None,
            "bad_found": int(sum(r["bad_found"] for r in rows)),
            "bad_total": int(sum(r["bad_total"] for r in rows)),
        }
    return out


def _spread(results: list[dict[str, Any]], estimates: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for strategy in dict.fromkeys(r["strategy"] for r in results):
        recalls = [r["recall"] for r in results if r["strategy"] == strategy and r["recall"] is not None]
        errors = [abs(e["estimated_mean"] - e["true_mean"]) for e in estimates
                  if e["strategy"] == strategy and e["estimated_mean"] is not None]
        out[strategy] = {
            "recall_min": min(recalls) if recalls else None,
            "recall_max": max(recalls) if recalls else None,
            "recall_spread": round(max(recalls) - min(recalls), 4) if recalls else None,
            "quality_estimate_error_mean": round(float(np.mean(errors)), 2) if errors else None,
        }
    return out


# ---------------------------------------------------------------------------------------
# Output: table, CSV, plot
# ---------------------------------------------------------------------------------------


def results_table(report: dict[str, Any]) -> str:
    strategies = list(dict.fromkeys(r["strategy"] for r in report["results"]))
    languages = list(dict.fromkeys(r["language"] for r in report["results"]))
    cell = {(r["strategy"], r["language"]): r for r in report["results"]}
    header = f"{'language':<9} {'bad':>5} " + " ".join(f"{s:>15}" for s in strategies)
    lines = [f"budget {report['budget']:.0%} of each language's pool, seed {report['seed']}; "
             f"bad = mean human score below {report['bad_below']:g}; cells: bad found (recall)", header, "-" * len(header)]
    for lang in languages:
        first = cell[(strategies[0], lang)]
        row = f"{lang:<9} {first['bad_total']:>5} "
        row += " ".join(
            f"{cell[(s, lang)]['bad_found']:>6} ({cell[(s, lang)]['recall'] or 0:.2f})".rjust(15) for s in strategies
        )
        lines.append(row)
    lines.append("-" * len(header))
    lines.append(f"{'mean recall':<15} " + " ".join(f"{report['summary'][s]['mean_recall'] or 0:>15.3f}" for s in strategies))
    lines.append(f"{'recall spread':<15} " + " ".join(f"{report['spread'][s]['recall_spread'] or 0:>15.3f}" for s in strategies))
    lines.append(f"{'quality error':<15} " + " ".join(
        f"{report['spread'][s]['quality_estimate_error_mean'] or 0:>15.2f}" for s in strategies))
    lines.append("quality error: mean |estimated − true| mean score per language, estimated from the items the "
                 "strategy sent (parity: its audit items only)")
    return "\n".join(lines)


def report_write(report: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in (("results", report["results"]), ("curves", report["curves"]), ("estimates", report["estimates"])):
        if not rows:
            continue
        path = out_dir / f"al_simulation_{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    written.append(_plot(report, out_dir / "al_simulation.png"))
    return written


def _plot(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = list(dict.fromkeys(r["strategy"] for r in report["results"]))
    languages = list(dict.fromkeys(r["language"] for r in report["results"]))
    cell = {(r["strategy"], r["language"]): r["recall"] or 0 for r in report["results"]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(strategies)
    x = np.arange(len(languages))
    for k, strategy in enumerate(strategies):
        left.bar(x + k * width - 0.4 + width / 2, [cell[(strategy, lang)] for lang in languages], width, label=strategy)
    left.axhline(report["budget"], color="grey", linestyle=":", linewidth=1, label="budget (random expectation)")
    left.set_xticks(x, languages)
    left.set_ylabel("recall of bad outputs")
    left.set_title(f"Bad outputs sent to humans at a {report['budget']:.0%} budget")
    left.legend(fontsize=8)
    curves = [c for c in report["curves"] if c["accuracy"] is not None]
    for lang in languages:
        for strategy, style in (("committee", "-"), ("random", ":")):
            pts = [(c["labels"], c["accuracy"]) for c in curves if c["language"] == lang and c["strategy"] == strategy]
            if pts:
                right.plot(*zip(*pts, strict=True), style, marker="o", markersize=3,
                           label=f"{lang}" if strategy == "committee" else None)
    right.set_xlabel("labels seen (solid: committee picks, dotted: random picks)")
    right.set_ylabel("accuracy on hidden items")
    right.set_title("Committee learning curves per language")
    if curves:
        right.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

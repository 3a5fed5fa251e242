"""Offline replay of a labelled data set with the labels hidden: does selection send more
of the truly bad outputs to humans than random selection, in every language?

Data: the bundled MLQE-PE dev split (seven language pairs, 1,000 machine translations
each, the NMT model's real token log-probs and six human direct-assessment scores
0–100; bad = mean score below 50), or your own (`simulation_data.data_load`: a folder in
the MLQE-PE layout or JSON Lines with scores; bad = below the midpoint of the scores'
range unless `bad_below` says otherwise). Every strategy sees only what a live system
sees — prompts, outputs, log-probs — and learns a label only for the items it sends to
humans. The picking is the product's own: `rounds.picks_for_language` (random audit
slice, then top score with k-center diversity), scored by `scorers.scores_compute` and
`scores_combine` on `ScoringInputs`, with the quality model of `qe.py` and the committee
of `committee.py` trained as a round trains them. Strategies, at the same budget:

- ``random``: a uniform random sample per language;
- ``uncertainty``: one round on the pipeline's signals alone (mean token NLL and minimum
  token log-prob) — what a round does before any label exists;
- ``committee``: active learning in four rounds per language; each round a random audit
  slice plus picks by the quality model (`qe.BadnessModel`, refitted on every label so
  far, each weighing the same, per language with shrinkage to the shared model);
  the first round, with no labels, falls back to log-prob uncertainty; the committee
  (hashing features, same weights) is refitted each round for its learning curve, and its
  disagreement is computed beside the quality model's score, which alone ranks (as in a
  round: `scorers.LEARNED_WEIGHTS`);
- ``parity``: the whole budget pooled and split by the parity allocation in two rounds —
  audit slice and equal shares, then weighted by the quality lag the first round's
  labels showed — with quality-model picks inside each language.

`audit_share` (`al_simulate --audit-share`) sets the random audit slice's share of each
round in the committee and parity strategies: a larger slice makes their quality
estimates more precise and finds fewer bad outputs (`bench/al_estimate.py` measures the
trade-off); each result row says how many of its k were audit items.

The measure (`achievable_gain`): per strategy and language, k outputs sent to humans,
``found`` of them bad, ``bad`` of ``n`` bad in the pool. A random pick of k finds
k·bad/n on average, an oracle min(bad, k); the share of the achievable gain is
(found − k·bad/n) ÷ (min(bad, k) − k·bad/n): 0 is random, 1 is the oracle. Recall
(found ÷ bad) stays as a column but is capped by the budget (k < bad caps it at k/bad).
Where nothing is achievable (no bad output, all bad, or k equal to the pool) the share
is undefined (None) and the language is left out of the strategy's mean.

Also reported: the committee's learning curve against random picks (accuracy on the items
neither has seen), and each strategy's per-language quality estimate against the truth
(committee and parity: `estimation.language_mean_estimate` over their labels — every
judged item counts as itself, every unjudged one as the cross-fitted prediction of the
quality features, and the audit items' mean residual corrects those predictions; random
and uncertainty: the mean of what they sent).
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
from active_learning import estimation, qe
from active_learning.allocation import LanguageAllocation, LanguageSupply, allocation_compute
from active_learning.features import hashing_features
from active_learning.scorers import ScoringInputs, scores_combine, scores_compute
from active_learning.selection import text_keys
from active_learning.simulation_data import DataError, Records, bundled_mlqe, data_load

DATASETS = ("mlqe-pe",)
STRATEGIES = ("random", "uncertainty", "committee", "parity")
BAD_BELOW = 50.0
COMMITTEE_STEPS = 4
AUDIT_SHARE = 0.1
TOKEN_SCORERS = ["nll", "min_logprob"]
COMMITTEE_SCORERS = ["committee_vote_entropy", "committee_max_disagreement", "classifier_entropy"]
SELECTION_PARAMETERS = {"candidate_factor": 3.0, "mix": 0.5}


class SimulationError(ValueError):
    """Bad simulation input; the message says what to fix."""


@dataclass
class LanguageData:
    language: str
    prompts: list[str]
    texts: list[str]
    logprobs: list[np.ndarray | None]
    mean: np.ndarray
    features: Any
    keys: np.ndarray
    qe_raw: np.ndarray
    bad_below: float = BAD_BELOW

    @property
    def bad(self) -> np.ndarray:
        return self.mean < self.bad_below

    @property
    def n(self) -> int:
        return len(self.texts)


def languages_prepare(records: Sequence[Records], *, bad_below: float) -> list[LanguageData]:
    """Features as a round computes them: hashing features of the outputs, text keys, QE features."""
    out = []
    for rec in records:
        out.append(
            LanguageData(
                language=rec.language,
                prompts=list(rec.prompts),
                texts=list(rec.responses),
                logprobs=list(rec.logprobs),
                mean=np.asarray(rec.scores, dtype=float),
                features=hashing_features(rec.responses),
                keys=text_keys(rec.responses),
                bad_below=bad_below,
                qe_raw=qe.qe_features(
                    prompts=rec.prompts, responses=rec.responses, token_logprobs=rec.logprobs
                ),
            )
        )
    return out


def mlqe_load(
    *, limit: int | None = None, pairs: Sequence[str] | None = None
) -> list[LanguageData]:
    return languages_prepare(bundled_mlqe(pairs=pairs, limit=limit), bad_below=BAD_BELOW)


# ---------------------------------------------------------------------------------------
# The measure
# ---------------------------------------------------------------------------------------


def achievable_gain(*, picked: int, found: int, bad: int, n: int) -> dict[str, Any]:
    """Random expectation, oracle and the share of the achievable gain of one pick."""
    random_expected = picked * bad / n if n else 0.0
    oracle = min(bad, picked)
    room = oracle - random_expected
    share = None if room <= 1e-9 else (found - random_expected) / room
    return {
        "random_expected": round(random_expected, 2),
        "oracle": int(oracle),
        "share": None if share is None else round(share, 4),
    }


# ---------------------------------------------------------------------------------------
# Scoring and picking with the product's functions
# ---------------------------------------------------------------------------------------


@dataclass
class Labels:
    """What humans have told the simulation so far, per language: indices, audit weights."""

    picked: dict[str, np.ndarray]
    weight: dict[str, np.ndarray]
    selection: dict[str, list[str]]

    @classmethod
    def empty(cls, languages: Sequence[LanguageData]) -> Labels:
        return cls(
            picked={d.language: np.zeros(0, dtype=np.int64) for d in languages},
            weight={d.language: np.zeros(0) for d in languages},
            selection={d.language: [] for d in languages},
        )

    def add(self, language: str, idx: np.ndarray, selection: str, weight: float) -> None:
        self.picked[language] = np.concatenate(
            [self.picked[language], np.asarray(idx, dtype=np.int64)]
        )
        self.weight[language] = np.concatenate(
            [self.weight[language], np.full(len(idx), float(weight))]
        )
        self.selection[language] += [selection] * len(idx)


def quality_model_fit(languages: Sequence[LanguageData], labels: Labels) -> qe.BadnessModel | None:
    """The quality model on every label so far, all languages at once (per-language weights
    with shrinkage, `qe.design_matrix`), every label weighing the same as in a round
    (`training.quality_model_train`); None while the labels cannot train it."""
    raw = np.vstack([d.qe_raw for d in languages])
    tags = np.concatenate([np.full(d.n, d.language, dtype=object) for d in languages])
    offsets = np.cumsum([0] + [d.n for d in languages])
    rows = np.concatenate([offsets[k] + labels.picked[d.language] for k, d in enumerate(languages)])
    y = np.concatenate([d.bad[labels.picked[d.language]] for d in languages])
    if qe.badness_trainable(y) is not None:
        return None
    return qe.badness_fit(raw=raw, languages=tags, labelled=rows.astype(np.int64), bad=y)


def committee_fit_for(data: LanguageData, labels: Labels, *, seed: int) -> Any:
    """The committee of one language on its labels, importance-weighted towards what is
    still unlabelled (`qe.pool_weights`), as a round trains it once audit items exist."""
    idx = labels.picked[data.language]
    y = data.bad[idx].astype(np.int64)
    if committee_mod.labels_trainable(y, min_labels=6) is not None:
        return None
    weights = qe.pool_weights(
        raw=data.qe_raw, languages=np.full(data.n, data.language, dtype=object), labelled=idx
    )
    return committee_mod.committee_fit(data.features[idx], y, seed=seed, sample_weight=weights)


def combined_scores(
    data: LanguageData,
    *,
    model: qe.BadnessModel | None,
    committee: Any = None,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """The combined score of every item of a language, as a round computes it."""
    inputs = ScoringInputs(
        languages=np.full(data.n, data.language, dtype=object),
        token_logprobs=list(data.logprobs),
        features=data.features if committee is not None else None,
        committee=committee,
        qe_raw=data.qe_raw if model is not None else None,
        qe_model=model,
    )
    raw = scores_compute(inputs=inputs, names=names)
    combined, _ = scores_combine(raw=raw, groups=inputs.languages)
    return combined


def round_picks(
    data: LanguageData,
    labels: Labels,
    *,
    audit: int,
    uncertainty: int,
    combined: np.ndarray,
    seed: int,
) -> None:
    """One round in one language: the product's `picks_for_language` on what is still hidden."""
    from active_learning.rounds import picks_for_language

    remaining = np.setdiff1d(np.arange(data.n), labels.picked[data.language])
    audit = min(audit, len(remaining))
    uncertainty = min(uncertainty, len(remaining) - audit)
    if audit + uncertainty == 0:
        return
    allocation = LanguageAllocation(
        tag=data.language,
        audit=audit,
        uncertainty=uncertainty,
        pool=len(remaining),
        capacity=None,
        quality=None,
        lag=None,
    )
    picks, _ = picks_for_language(
        allocation=allocation,
        idx=remaining,
        combined=combined,
        features=data.features,
        keys=data.keys,
        parameters=SELECTION_PARAMETERS,
        seed=seed + len(labels.picked[data.language]),
    )
    audit_idx = np.array([p.index for p in picks if p.selection == "audit"], dtype=np.int64)
    picked_idx = np.array([p.index for p in picks if p.selection != "audit"], dtype=np.int64)
    # Horvitz–Thompson: the uncertainty picks were taken for sure; the audit items were
    # drawn at random from the rest of the pool, each standing for (rest ÷ audit) items.
    labels.add(data.language, picked_idx, "uncertainty", 1.0)
    if len(audit_idx):
        labels.add(
            data.language, audit_idx, "audit", (len(remaining) - len(picked_idx)) / len(audit_idx)
        )


def _audit_size(size: int, share: float = AUDIT_SHARE) -> int:
    return min(size, max(2, int(round(share * size)))) if size else 0


# ---------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------


def strategy_random(data: LanguageData, k: int, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1, data.n])
    return rng.choice(data.n, size=k, replace=False)


def strategy_uncertainty(data: LanguageData, k: int, *, seed: int) -> Labels:
    labels = Labels.empty([data])
    combined = combined_scores(data, model=None, names=TOKEN_SCORERS)
    round_picks(data, labels, audit=0, uncertainty=k, combined=combined, seed=seed)
    return labels


def _accuracy(data: LanguageData, fitted: Any, hidden: np.ndarray) -> float | None:
    if fitted is None or not len(hidden):
        return None
    predicted = committee_mod.predict(fitted, data.features[hidden])
    return float((predicted == data.bad[hidden].astype(np.int64)).mean())


def strategy_committee(
    languages: Sequence[LanguageData],
    budget: float,
    *,
    seed: int,
    curve: list[dict[str, Any]] | None = None,
    audit_share: float = AUDIT_SHARE,
) -> Labels:
    """Rounds of audit slice (`audit_share` of each round, at least 2 items) + quality-model
    picks in every language; the model learns from every language's labels after each round."""
    labels = Labels.empty(languages)
    ks = {d.language: max(1, int(round(budget * d.n))) for d in languages}
    sizes = {
        lang: np.diff(np.linspace(0, k, COMMITTEE_STEPS + 1).round().astype(int))
        for lang, k in ks.items()
    }
    model = None
    committees: dict[str, Any] = {d.language: None for d in languages}
    for step in range(COMMITTEE_STEPS):
        for data in languages:
            size = int(sizes[data.language][step])
            if not size:
                continue
            names = TOKEN_SCORERS if model is None else None
            combined = combined_scores(
                data, model=model, committee=committees[data.language], names=names
            )
            audit = _audit_size(size, audit_share)
            round_picks(
                data, labels, audit=audit, uncertainty=size - audit, combined=combined, seed=seed
            )
        model = quality_model_fit(languages, labels)
        for data in languages:
            committees[data.language] = committee_fit_for(data, labels, seed=seed)
            if curve is not None:
                _curve_step(
                    data, labels, committees[data.language], step=step + 1, seed=seed, curve=curve
                )
    return labels


def _curve_step(
    data: LanguageData,
    labels: Labels,
    fitted: Any,
    *,
    step: int,
    seed: int,
    curve: list[dict[str, Any]],
) -> None:
    """Committee accuracy against a committee trained on as many random picks, both measured
    on the items neither has seen (the same test set)."""
    picked = labels.picked[data.language]
    rnd = strategy_random(data, len(picked), seed=seed + step)
    random_labels = Labels.empty([data])
    random_labels.add(data.language, rnd, "audit", 1.0)
    random_fit = committee_fit_for(data, random_labels, seed=seed)
    hidden = np.setdiff1d(np.arange(data.n), np.union1d(picked, rnd))
    for strategy, fitted_ in (("committee", fitted), ("random", random_fit)):
        curve.append(
            {
                "strategy": strategy,
                "language": data.language,
                "step": step,
                "labels": len(picked),
                "accuracy": _accuracy(data, fitted_, hidden),
            }
        )


def strategy_parity(
    languages: Sequence[LanguageData],
    budget: float,
    *,
    seed: int,
    audit_shares: tuple[float, float] | None = None,
) -> Labels:
    """Two rounds over the pooled budget: audit + equal shares, then weighted by the lag the
    first round's labels showed; quality-model picks inside each language. `audit_shares`:
    the audit slice's (min, max) share of each round's budget, as a round's
    `audit_min_share` and `audit_max_share` (default: the allocation's, 10–15 %)."""
    low, high = audit_shares if audit_shares is not None else (None, None)
    total = int(round(budget * sum(d.n for d in languages)))
    first = total // 2
    labels = Labels.empty(languages)
    quality: dict[str, float | None] = {d.language: None for d in languages}
    model = None
    for round_budget in (first, total - first):
        supplies = [
            LanguageSupply(
                tag=d.language,
                pool=d.n - len(labels.picked[d.language]),
                quality=quality[d.language],
            )
            for d in languages
        ]
        allocation = allocation_compute(
            languages=supplies,
            budget=round_budget,
            strategy="parity",
            seed=seed,
            audit_min_share=low,
            audit_max_share=high,
        )
        for d, alloc in zip(languages, allocation, strict=True):
            names = TOKEN_SCORERS if model is None else None
            combined = combined_scores(d, model=model, names=names)
            round_picks(
                d,
                labels,
                audit=alloc.audit,
                uncertainty=alloc.uncertainty,
                combined=combined,
                seed=seed,
            )
            estimate = quality_estimate(d, labels)
            quality[d.language] = None if estimate is None else estimate / 100
        model = quality_model_fit(languages, labels)
    return labels


def quality_estimate(data: LanguageData, labels: Labels) -> float | None:
    """A language's mean score from its labels, as `estimation.language_mean_estimate`
    computes it: every judged item as itself, every unjudged one as the cross-fitted
    prediction of the quality features, corrected by the audit items' mean residual."""
    idx = labels.picked[data.language]
    if not len(idx):
        return None
    audit = np.array(labels.selection[data.language]) == "audit"
    return estimation.language_mean_estimate(
        raw=data.qe_raw,
        labelled=idx,
        scores=data.mean[idx],
        audit=audit,
        audit_weights=labels.weight[data.language][audit],
    ).value


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


def simulation_load(
    *,
    dataset: str = "mlqe-pe",
    data: Path | str | None = None,
    limit: int | None = None,
    pairs: Sequence[str] | None = None,
    bad_below: float | None = None,
) -> list[LanguageData]:
    if data is not None:
        try:
            records = data_load(data)
        except DataError as exc:
            raise SimulationError(str(exc)) from None
        if limit is not None:
            for rec in records:
                for name in ("prompts", "responses", "logprobs", "scores"):
                    setattr(rec, name, getattr(rec, name)[:limit])
        if bad_below is None and not str(data).endswith((".jsonl", ".jsonl.gz", ".json")):
            bad_below = BAD_BELOW  # the MLQE-PE layout: direct assessments, 0–100
        if bad_below is None:
            scores = np.concatenate([np.asarray(r.scores, dtype=float) for r in records])
            bad_below = float(scores.min() + (scores.max() - scores.min()) / 2)
        small = [r.language for r in records if len(r.scores) < 20]
        if small:
            raise SimulationError(
                f"language {small[0]!r} has fewer than 20 items; the simulation needs at least 20 each"
            )
        return languages_prepare(records, bad_below=bad_below)
    if dataset not in DATASETS:
        raise SimulationError(
            f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}, or --data PATH"
        )
    try:
        records = bundled_mlqe(pairs=pairs, limit=limit)
    except FileNotFoundError as exc:
        raise SimulationError(str(exc)) from None
    return languages_prepare(records, bad_below=BAD_BELOW if bad_below is None else bad_below)


def simulation_run(
    *,
    dataset: str = "mlqe-pe",
    budget: float = 0.2,
    seed: int = 0,
    strategies: Sequence[str] = STRATEGIES,
    limit: int | None = None,
    pairs: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    data: Path | str | None = None,
    bad_below: float | None = None,
    languages: list[LanguageData] | None = None,
    audit_share: float | None = None,
) -> dict[str, Any]:
    """Run the strategies; returns {"budget", "audit_share", "seed", "dataset", "results",
    "curves", "learning_curve", "estimates", "spread", "summary"}. `audit_share`: the random
    audit slice's share of each round's budget in the committee and parity strategies
    (default: committee 10 %, parity 10–15 % as a round's allocation gives it) — more audit
    makes the quality estimates more precise and finds fewer bad outputs."""
    _run_arguments_check(
        budget=budget,
        strategies=strategies,
        limit=limit,
        bad_below=bad_below,
        audit_share=audit_share,
    )
    if languages is None:
        languages = simulation_load(
            dataset=dataset, data=data, limit=limit, pairs=pairs, bad_below=bad_below
        )
    results: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    estimates: list[dict[str, Any]] = []
    for strategy in strategies:
        if progress:
            progress(strategy)
        for d, picked, audit, estimate in _strategy_picks(
            strategy,
            languages,
            budget=budget,
            seed=seed,
            curves=curves,
            audit_share=audit_share,
        ):
            results.append({**_result_row(strategy, d, picked), "audit": audit})
            estimates.append(
                {
                    "strategy": strategy,
                    "language": d.language,
                    "selected": int(len(picked)),
                    "true_mean": round(float(d.mean.mean()), 2),
                    "estimated_mean": None if estimate is None else round(estimate, 2),
                }
            )
    summary = _summary(results)
    spread = _spread(results, estimates)
    for strategy, row in spread.items():
        summary[strategy]["quality_estimate_error_mean"] = row["quality_estimate_error_mean"]
    return {
        "dataset": str(data) if data is not None else dataset,
        "budget": budget,
        "audit_share": audit_share,
        "seed": seed,
        "bad_below": languages[0].bad_below if languages else bad_below,
        "results": results,
        "curves": curves,
        "learning_curve": learning_curve(curves),
        "estimates": estimates,
        "spread": spread,
        "summary": summary,
        "best": _best(summary),
    }


def _run_arguments_check(
    *,
    budget: Any,
    strategies: Sequence[str],
    limit: Any,
    bad_below: Any,
    audit_share: Any = None,
) -> None:
    if (
        isinstance(budget, bool)
        or not isinstance(budget, int | float)
        or not math.isfinite(budget)
        or not 0 < budget <= 1
    ):
        raise SimulationError(
            f"the budget is a share of each language's pool, above 0 and at most 1, not {budget!r}"
        )
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise SimulationError(
            f"unknown strategy {(unknown or [''])[0]!r}; use some of {', '.join(STRATEGIES)}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 20):
        raise SimulationError("limit must be a whole number of at least 20 items per language")
    if bad_below is not None and (
        isinstance(bad_below, bool)
        or not isinstance(bad_below, int | float)
        or not math.isfinite(bad_below)
    ):
        raise SimulationError("bad_below must be a finite number")
    if audit_share is not None and (
        isinstance(audit_share, bool)
        or not isinstance(audit_share, int | float)
        or not math.isfinite(audit_share)
        or not 0 < audit_share <= 1
    ):
        raise SimulationError(
            "the audit share is the random part of each round's budget, above 0 and at "
            f"most 1, not {audit_share!r}"
        )


def _strategy_picks(
    strategy: str,
    languages: list[LanguageData],
    *,
    budget: float,
    seed: int,
    curves: list[dict[str, Any]],
    audit_share: float | None = None,
) -> list[tuple[LanguageData, np.ndarray, int, float | None]]:
    """Per language, the items one strategy picked, how many of them were random audit
    items, and the quality it estimates from them."""
    if strategy in ("parity", "committee"):
        if strategy == "parity":
            shares = None if audit_share is None else (audit_share, audit_share)
            labels = strategy_parity(languages, budget, seed=seed, audit_shares=shares)
        else:
            labels = strategy_committee(
                languages,
                budget,
                seed=seed,
                curve=curves,
                audit_share=AUDIT_SHARE if audit_share is None else audit_share,
            )
        return [
            (
                d,
                labels.picked[d.language],
                labels.selection[d.language].count("audit"),
                quality_estimate(d, labels),
            )
            for d in languages
        ]
    out: list[tuple[LanguageData, np.ndarray, int, float | None]] = []
    for d in languages:
        k = max(1, int(round(budget * d.n)))
        if strategy == "random":
            picked = strategy_random(d, k, seed=seed)
        else:
            picked = strategy_uncertainty(d, k, seed=seed).picked[d.language]
        out.append((d, picked, 0, float(d.mean[picked].mean()) if len(picked) else None))
    return out


def _result_row(strategy: str, d: LanguageData, picked: np.ndarray) -> dict[str, Any]:
    """How many of the language's bad outputs the picked items found."""
    found = int(d.bad[picked].sum())
    bad_total = int(d.bad.sum())
    return {
        "strategy": strategy,
        "language": d.language,
        "picked": int(len(picked)),
        "bad_found": found,
        "bad_total": bad_total,
        "n": d.n,
        **achievable_gain(picked=len(picked), found=found, bad=bad_total, n=d.n),
        "recall": round(found / bad_total, 4) if bad_total else None,
    }


def simulation_run_seeds(
    *, seeds: Sequence[int], progress: Callable[[str], None] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """The run for each seed (data loaded once) and the mean over seeds of every figure."""
    languages = kwargs.pop("languages", None)
    if languages is None:
        languages = simulation_load(
            dataset=kwargs.get("dataset", "mlqe-pe"),
            data=kwargs.get("data"),
            limit=kwargs.get("limit"),
            pairs=kwargs.get("pairs"),
            bad_below=kwargs.get("bad_below"),
        )
    runs = []
    for seed in seeds:
        if progress:
            progress(f"seed {seed}")
        runs.append(simulation_run(seed=seed, languages=languages, progress=progress, **kwargs))
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        for row in run["results"]:
            cells.setdefault((row["strategy"], row["language"]), []).append(row)
    results = []
    for (strategy, language), rows in cells.items():
        mean = {}
        for key in (
            "picked",
            "bad_found",
            "random_expected",
            "oracle",
            "share",
            "recall",
            "audit",
        ):
            values = [r[key] for r in rows if r[key] is not None]
            mean[key] = round(float(np.mean(values)), 4) if values else None
        results.append(
            {
                "strategy": strategy,
                "language": language,
                "bad_total": rows[0]["bad_total"],
                "n": rows[0]["n"],
                **mean,
            }
        )
    errors: dict[str, list[float]] = {}
    for run in runs:
        for strategy, spread in run["spread"].items():
            if spread["quality_estimate_error_mean"] is not None:
                errors.setdefault(strategy, []).append(spread["quality_estimate_error_mean"])
    summary = _summary(results)
    for strategy, values in errors.items():
        summary[strategy]["quality_estimate_error_mean"] = round(float(np.mean(values)), 2)
    first = runs[0]
    return {
        "dataset": first["dataset"],
        "budget": first["budget"],
        "audit_share": first["audit_share"],
        "bad_below": first["bad_below"],
        "seed": None,
        "seeds": list(seeds),
        "runs": runs,
        "results": results,
        "summary": summary,
        "best": _best(summary),
        "curves": [{"seed": run["seed"], **c} for run in runs for c in run["curves"]],
        "learning_curve": learning_curve(
            [{"seed": run["seed"], **c} for run in runs for c in run["curves"]]
        ),
        "estimates": [{"seed": run["seed"], **e} for run in runs for e in run["estimates"]],
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for strategy in dict.fromkeys(r["strategy"] for r in results):
        rows = [r for r in results if r["strategy"] == strategy]
        recalls = [r["recall"] for r in rows if r["recall"] is not None]
        shares = [r["share"] for r in rows if r["share"] is not None]
        out[strategy] = {
            "mean_share": round(float(np.mean(shares)), 4) if shares else None,
            "min_share": round(float(min(shares)), 4) if shares else None,
            "languages_with_share": len(shares),
            "mean_recall": round(float(np.mean(recalls)), 4) if recalls else None,
            "picked": round(float(sum(r["picked"] for r in rows)), 2),
            "bad_found": round(float(sum(r["bad_found"] for r in rows)), 2),
            "bad_total": int(sum(r["bad_total"] for r in rows)),
        }
    return out


def _best(summary: dict[str, Any]) -> str | None:
    """The strategy with the highest mean share of the achievable gain."""
    ranked = [(v["mean_share"], s) for s, v in summary.items() if v["mean_share"] is not None]
    return max(ranked)[1] if ranked else None


def _spread(results: list[dict[str, Any]], estimates: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for strategy in dict.fromkeys(r["strategy"] for r in results):
        recalls = [
            r["recall"] for r in results if r["strategy"] == strategy and r["recall"] is not None
        ]
        errors = [
            abs(e["estimated_mean"] - e["true_mean"])
            for e in estimates
            if e["strategy"] == strategy and e["estimated_mean"] is not None
        ]
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


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def results_table(report: dict[str, Any]) -> str:
    """One block per strategy: per language k, found, bad, n, random and oracle, share, recall."""
    strategies = list(dict.fromkeys(r["strategy"] for r in report["results"]))
    seeds = report.get("seeds")
    where = f"seeds {', '.join(map(str, seeds))} (means)" if seeds else f"seed {report['seed']}"
    audit = report.get("audit_share")
    audit_text = "" if audit is None else f", audit {audit:.0%} of each round"
    lines = [
        f"budget {report['budget']:.0%}{audit_text}, {where}; bad = human score below "
        f"{report['bad_below']:g}",
        "share = (found − random) ÷ (oracle − random), random = k·bad/n, oracle = min(bad, k); "
        "– where oracle = random (nothing to gain); audit: how many of the k were drawn at random",
    ]
    header = (
        f"{'strategy':<12} {'language':<10} {'k':>7} {'audit':>6} {'found':>7} {'bad':>6} {'n':>6} "
        f"{'random':>7} {'oracle':>7} {'share':>7} {'recall':>7}"
    )
    lines += [header, "-" * len(header)]
    for strategy in strategies:
        for r in (r for r in report["results"] if r["strategy"] == strategy):
            lines.append(
                f"{strategy:<12} {r['language']:<10} {_fmt(r['picked'], '>7g')} "
                f"{_fmt(r.get('audit'), '>6g')} {_fmt(r['bad_found'], '>7g')} "
                f"{r['bad_total']:>6} {r['n']:>6} {_fmt(r['random_expected'], '>7.1f')} {_fmt(r['oracle'], '>7g')} "
                f"{_fmt(r['share'], '>7.2f')} {_fmt(r['recall'], '>7.2f')}"
            )
        summary = report["summary"][strategy]
        error = summary.get("quality_estimate_error_mean")
        if error is None and "spread" in report:
            error = report["spread"][strategy]["quality_estimate_error_mean"]
        lines.append(
            f"{strategy:<12} {'mean':<10} share {_fmt(summary['mean_share'], '.3f')} (lowest "
            f"{_fmt(summary['min_share'], '.3f')}), recall {_fmt(summary['mean_recall'], '.3f')}, "
            f"quality estimate error {_fmt(error, '.2f')} points"
        )
        lines.append("-" * len(header))
    lines.append(f"best strategy by mean share: {report.get('best') or '–'}")
    lines.append(
        "quality estimate error: mean |estimated − true| mean score per language (committee and parity: "
        "the difference estimator over their labels, estimation.py; the others: the mean of what they sent)"
    )
    curve = report.get("learning_curve") or learning_curve(report.get("curves") or [])
    if curve:
        lines.append(
            "committee learning curve: accuracy on the items neither it nor a committee trained on "
            "as many random picks has seen, committee / random (mean over the runs where both had "
            "a model; n/a: the committee's labels could not train one)"
        )
        for language in dict.fromkeys(c["language"] for c in curve):
            cells = [
                f"{c['labels']:g}: "
                + (
                    "n/a"
                    if c["committee"] is None
                    else f"{c['committee']:.3f} / {c['random']:.3f} ({c['difference']:+.3f})"
                )
                for c in curve
                if c["language"] == language
            ]
            lines.append(f"  {language:<10} " + "  ".join(cells))
    return "\n".join(lines)


def learning_curve(curves: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per language and round: the committee's and random's accuracy, averaged over the
    runs (seeds) where both had a model, their difference, and in how many runs the
    committee had none."""
    cells: dict[tuple[str, int], dict[str, dict[Any, float | None]]] = {}
    labels: dict[tuple[str, int], list[float]] = {}
    for c in curves:
        key = (c["language"], c["step"])
        cells.setdefault(key, {}).setdefault(c["strategy"], {})[c.get("seed")] = c["accuracy"]
        labels.setdefault(key, []).append(c["labels"])
    out = []
    for (language, step), by in cells.items():
        committee, random_ = by.get("committee", {}), by.get("random", {})
        both = [s for s in committee if committee[s] is not None and random_.get(s) is not None]
        mean_c = float(np.mean([committee[s] for s in both])) if both else None
        mean_r = float(np.mean([random_[s] for s in both])) if both else None
        out.append(
            {
                "language": language,
                "step": step,
                "labels": round(float(np.mean(labels[(language, step)])), 1),
                "committee": None if mean_c is None else round(mean_c, 4),
                "random": None if mean_r is None else round(mean_r, 4),
                "difference": (
                    None if mean_c is None or mean_r is None else round(mean_c - mean_r, 4)
                ),
                "runs": len(both),
                "runs_without_committee": sum(1 for v in committee.values() if v is None),
            }
        )
    return out


def report_write(report: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in (
        ("results", report["results"]),
        ("curves", report.get("curves") or []),
        ("estimates", report.get("estimates") or []),
    ):
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
    cell = {(r["strategy"], r["language"]): r["share"] or 0 for r in report["results"]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(strategies)
    x = np.arange(len(languages))
    for k, strategy in enumerate(strategies):
        left.bar(
            x + k * width - 0.4 + width / 2,
            [cell[(strategy, lang)] for lang in languages],
            width,
            label=strategy,
        )
    left.axhline(0, color="grey", linestyle=":", linewidth=1, label="random (0)")
    left.axhline(1, color="black", linestyle=":", linewidth=1, label="oracle (1)")
    left.set_xticks(x, languages)
    left.set_ylabel("share of the achievable gain")
    left.set_title(
        f"Bad outputs found beyond random, of what an oracle finds ({report['budget']:.0%} budget)"
    )
    left.legend(fontsize=8)
    first_seed = (report.get("seeds") or [None])[0]
    curves = [
        c
        for c in report.get("curves") or []
        if c["accuracy"] is not None and c.get("seed") == first_seed
    ]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, lang in enumerate(languages):
        for strategy, style in (("committee", "-"), ("random", ":")):
            pts = [
                (c["labels"], c["accuracy"])
                for c in curves
                if c["language"] == lang and c["strategy"] == strategy
            ]
            if pts:
                right.plot(
                    *zip(*pts, strict=True),
                    style,
                    marker="o",
                    markersize=3,
                    color=colours[n % len(colours)],
                    label=f"{lang}" if strategy == "committee" else None,
                )
    right.set_xlabel("labels seen (solid: committee picks, dotted: random picks)")
    right.set_ylabel("accuracy on hidden items")
    right.set_title("Committee learning curves per language")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""The maths of the progress report, on plain arrays (no Django): bootstrap means of many
groups at once, the CI of a difference between two groups, and Bradley–Terry strengths
with bootstrap intervals.

Every bootstrap here is vectorised over resamples. Per-item quality scores take few
distinct values (a mean of k ratings, a win share j/k, a label share), so resampling a
group's n items with replacement is the same as drawing the counts of its distinct
values from a multinomial with the group's value frequencies — one draw per group and
resample instead of n, for every group at once. Groups that are different items are
independent, so the bootstrap distribution of a difference between two groups is the
difference of their draws, resample by resample (Efron & Tibshirani 1993, ch. 8, the
two-sample bootstrap); its percentile interval is the CI of the change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

CONFIDENCE = 0.95
# Beyond this many distinct values the multinomial costs more than resampling indices.
MAX_DISTINCT = 256
# How many cells (resamples × groups × distinct values) one multinomial chunk may hold.
CHUNK_CELLS = 8_000_000
# Groups with fewer than this many items per distinct value are resampled by index.
INDEX_FACTOR = 4
# A change or gap needs this many items on both sides for an interval and a verdict: a
# percentile bootstrap of two or three items is far too narrow.
MIN_ITEMS = 5
# Bradley–Terry: half a win each way for every pair that met, so a model that never lost
# has a finite strength (a weak symmetric prior: the maximum exists and is unique on each
# connected set of models).
BT_PRIOR = 0.5
BT_ITERATIONS = 100
# Newton stops once no log-strength moves by more than this.
BT_TOLERANCE = 1e-10
BT_RIDGE = 1e-9


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True), by hashing: a million values with a few
    hundred distinct ones cost a pass, not a sort."""
    codes, uniques = pd.factorize(np.asarray(values), sort=True, use_na_sentinel=False)
    return np.asarray(uniques), codes.astype(np.int64, copy=False)


@dataclass(frozen=True)
class GroupMeans:
    """Mean per group with bootstrap draws: `draws[g]` holds B resampled means (NaN where
    the group has no items)."""

    n: np.ndarray  # (G,) items per group
    mean: np.ndarray  # (G,) NaN where n == 0
    draws: np.ndarray  # (G, B)

    def ci(self, confidence: float = CONFIDENCE) -> np.ndarray:
        """(G, 2) percentile intervals; NaN for groups with fewer than two items."""
        out = percentile_ci(self.draws, confidence)
        out[self.n < 2] = np.nan
        return out


def percentile_ci(draws: np.ndarray, confidence: float = CONFIDENCE) -> np.ndarray:
    """(…, 2) percentile interval along the last axis; NaN where every draw is NaN."""
    tail = (1 - confidence) / 2 * 100
    draws = np.asarray(draws, dtype=np.float64)
    out = np.full((*draws.shape[:-1], 2), np.nan)
    if draws.shape[-1] == 0:
        return out
    finite = np.isfinite(draws).all(axis=-1)
    if finite.any():
        out[finite] = np.percentile(draws[finite], [tail, 100 - tail], axis=-1).T
    return out


def multinomial_draws(
    rng: np.random.Generator, n: np.ndarray, p: np.ndarray, resamples: int
) -> np.ndarray:
    """(resamples, G, D) multinomial counts: n[g] draws over the D categories with
    probabilities p[g]. Drawn category by category as conditional binomials (count of d
    given the counts before it), each one vectorised over every group and resample:
    numpy's own multinomial loops over rows in C but pays per row, which at 260 groups ×
    1,000 resamples costs ten times more."""
    n = np.asarray(n, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    g, d = p.shape
    out = np.empty((resamples, g, d), dtype=np.int64)
    remaining = np.broadcast_to(n, (resamples, g)).copy()
    left = np.ones(g)
    for k in range(d - 1):
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.clip(np.where(left > 0, p[:, k] / left, 0.0), 0.0, 1.0)
        draw = rng.binomial(remaining, q)
        out[:, :, k] = draw
        remaining -= draw
        left = left - p[:, k]
    out[:, :, d - 1] = remaining
    return out


def bootstrap_group_means(
    group: np.ndarray, values: np.ndarray, *, n_groups: int, resamples: int = 1000, seed: int = 0
) -> GroupMeans:
    """Mean of `values` per group (codes 0..n_groups-1) with `resamples` bootstrap means,
    resampling each group's rows (items) with replacement."""
    group = np.asarray(group, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = np.bincount(group, minlength=n_groups).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(group, weights=values, minlength=n_groups) / n
    draws = np.full((n_groups, resamples), np.nan)
    if len(values) == 0 or resamples <= 0:
        return GroupMeans(n, mean, draws)
    distinct, vidx = unique_inverse(values)
    d = len(distinct)
    live = np.flatnonzero(n > 0)
    # A group of few items is cheaper to resample by index (one uniform per item) than by
    # conditional binomials (one per distinct value, each several times dearer).
    small = live[n[live] < INDEX_FACTOR * d] if d <= MAX_DISTINCT else live
    large = np.setdiff1d(live, small)
    if len(large):
        counts = np.bincount(group * d + vidx.reshape(-1), minlength=n_groups * d).reshape(
            n_groups, d
        )
        per_chunk = max(1, CHUNK_CELLS // max(1, resamples * d))
        for start in range(0, len(large), per_chunk):
            g = large[start : start + per_chunk]
            # (B, g, d) counts of each distinct value in each resample of each group.
            w = multinomial_draws(rng, n[g], counts[g] / n[g, None], resamples)
            draws[g] = ((w @ distinct) / n[g]).T
    if len(small):
        draws[small] = _index_resample_means(group, values, small, n, resamples=resamples, rng=rng)
    return GroupMeans(n, mean, draws)


def _index_resample_means(
    group: np.ndarray,
    values: np.ndarray,
    which: np.ndarray,
    n: np.ndarray,
    *,
    resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(len(which), B) bootstrap means of the groups `which`, all at once: their rows laid
    end to end, each resample draws a row of the same group for every position, and the
    means are segment sums (np.add.reduceat) of the drawn values."""
    order = np.argsort(group, kind="stable")
    sorted_values = values[order]
    starts_all = np.concatenate([[0], np.cumsum(n)[:-1]])
    sizes = n[which]
    total = int(sizes.sum())
    seg_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    owner = np.repeat(np.arange(len(which)), sizes)
    base, size = starts_all[which][owner], sizes[owner]
    out = np.empty((len(which), resamples))
    per_chunk = max(1, CHUNK_CELLS // max(1, total))
    for done in range(0, resamples, per_chunk):
        b = min(per_chunk, resamples - done)
        picked = sorted_values[base + (rng.random((b, total)) * size).astype(np.int64)]
        out[:, done : done + b] = (np.add.reduceat(picked, seg_starts, axis=1) / sizes).T
    return out


@dataclass(frozen=True)
class Change:
    value: float | None
    ci: tuple[float | None, float | None]
    verdict: str  # "up", "down" or "no_evidence"


def _opt(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def change_between(
    new_draws: np.ndarray,
    old_draws: np.ndarray,
    *,
    new: float,
    old: float,
    confidence: float = CONFIDENCE,
) -> Change:
    """The change new − old with the percentile CI of the difference of independent draws.
    "up" / "down" when the interval excludes 0, else "no_evidence"."""
    lo, hi = percentile_ci(np.asarray(new_draws) - np.asarray(old_draws), confidence)
    value = _opt(new - old)
    lo, hi = _opt(lo), _opt(hi)
    if lo is None or hi is None:
        verdict = "no_evidence"
    elif lo > 0:
        verdict = "up"
    elif hi < 0:
        verdict = "down"
    else:
        verdict = "no_evidence"
    return Change(value, (lo, hi), verdict)


def changes_vectorised(
    new_draws: np.ndarray, old_draws: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) CIs of K differences at once and their verdict codes (+1 up, −1 down, 0 none)."""
    ci = percentile_ci(np.asarray(new_draws) - np.asarray(old_draws), confidence)
    verdict = np.where(ci[:, 0] > 0, 1, np.where(ci[:, 1] < 0, -1, 0))
    return ci, verdict


@dataclass(frozen=True)
class BradleyTerry:
    models: list[str]
    strength: np.ndarray  # (M,) log-strength, mean 0
    ci: np.ndarray  # (M, 2)
    win_rate: np.ndarray  # (M,) share of its comparisons won (ties half)
    win_ci: np.ndarray  # (M, 2)
    comparisons: np.ndarray  # (M,)


def _bt_fit(wins: np.ndarray, games: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Bradley–Terry maximum likelihood for many win matrices at once, by Newton's method
    on the log-strengths (the log-likelihood is concave; Hunter 2004, §2).

    wins (B, M, M): wins[b, i, j] = how often i beat j; games = wins + wins^T. Returns
    (B, M) log-strengths with mean 0 over models that played; `start` (M,) log-strengths
    to begin from. Zermelo's MM iteration reaches the same maximum but needs dozens of
    steps where Newton needs five to eight; a step is a batch of M × M solves. The
    information matrix is singular along "add a constant to every strength", so the
    mean-zero constraint is added to it (the gradient sums to zero, so the step keeps the
    mean); a model that did not play keeps strength 0 and is NaN in the result. A step
    is cut to at most 1 on the log scale, which keeps a start far from the maximum from
    overshooting.
    """
    b, m, _ = wins.shape
    total_wins = wins.sum(axis=2)
    played = games.sum(axis=2) > 0
    n_played = np.maximum(played.sum(axis=1), 1)
    theta = (
        np.zeros((b, m))
        if start is None
        else np.broadcast_to(np.nan_to_num(np.asarray(start, dtype=np.float64)), (b, m)).copy()
    )
    theta = np.where(played, theta, 0.0)
    diagonal = np.arange(m)
    # The constraint's rank-one term, and 1 on the diagonal of a model that did not play.
    # Models in separate sets that never met leave the matrix singular along their sets'
    # offsets, which the data do not fix: a ridge far below any game's weight keeps each
    # set where it started.
    constraint = (played[:, :, None] & played[:, None, :]) / n_played[:, None, None]
    constraint[:, diagonal, diagonal] += ~played + BT_RIDGE
    active = np.arange(b)
    for _ in range(BT_ITERATIONS):
        t = theta[active]
        g = games[active]
        # p[b, i, j]: the probability that i beats j.
        p = 1.0 / (1.0 + np.exp(t[:, None, :] - t[:, :, None]))
        gradient = np.where(played[active], total_wins[active] - (g * p).sum(axis=2), 0.0)
        weight = g * p * (1.0 - p)
        information = constraint[active] - weight
        information[:, diagonal, diagonal] += weight.sum(axis=2)
        step = np.linalg.solve(information, gradient[..., None])[..., 0]
        largest = np.abs(step).max(axis=1)
        t = t + step / np.maximum(1.0, largest)[:, None]
        t -= (t * played[active]).sum(axis=1, keepdims=True) / n_played[active, None]
        theta[active] = np.where(played[active], t, 0.0)
        active = active[largest >= BT_TOLERANCE]
        if not len(active):
            break
    return np.where(played, theta, np.nan)


def _pattern_matrix(
    rows: np.ndarray, columns: list[np.ndarray], values: list[np.ndarray], width: int
) -> sparse.csr_matrix:
    """Sparse (patterns × width) matrix with `values[i]` at (rows, columns[i]), duplicates
    summed: each pattern touches two cells, so a resample's totals are one sparse product."""
    return sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate([rows, rows]), np.concatenate(columns))),
        shape=(len(rows), width),
    )


@dataclass(frozen=True)
class _BTPatterns:
    """The distinct (left, right, share) comparisons and how often each occurs, with each
    pattern's contribution to the flattened win matrix: a resample's matrix is its pattern
    counts times that (one sparse product for all resamples)."""

    pl: np.ndarray
    pr: np.ndarray
    ps: np.ndarray
    freq: np.ndarray
    m: int
    to_wins: sparse.csr_matrix

    @classmethod
    def of(cls, left: np.ndarray, right: np.ndarray, share: np.ndarray, m: int) -> _BTPatterns:
        # Distinct (left, right, share) patterns, as one integer key each. (i, j, s) and
        # (j, i, 1 − s) are the same comparison: written with the lower code on the left,
        # they are one pattern, and half the draws.
        swap = left > right
        low, high = np.where(swap, right, left), np.where(swap, left, right)
        shares, share_code = np.unique(np.where(swap, 1 - share, share), return_inverse=True)
        s_count = max(1, len(shares))
        key, freq = np.unique(
            (low * m + high) * s_count + share_code.reshape(-1), return_counts=True
        )
        pl, pr, ps = (
            key // s_count // m,
            key // s_count % m,
            shares[key % s_count] if len(key) else np.zeros(0),
        )
        rows = np.arange(len(pl))
        to_wins = _pattern_matrix(rows, [pl * m + pr, pr * m + pl], [ps, 1 - ps], m * m)
        return cls(pl, pr, ps, freq, m, to_wins)

    @property
    def n(self) -> int:
        return int(self.freq.sum())

    def matrices(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.m
        wins = np.asarray((self.to_wins.T @ weights.T).T).reshape(-1, m, m)
        met = (wins + wins.transpose(0, 2, 1)) > 0
        wins = wins + BT_PRIOR * met
        return wins, wins + wins.transpose(0, 2, 1)

    def bootstrap(
        self, strength: np.ndarray, *, resamples: int, seed: int, confidence: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Intervals of the strengths and of the win rates."""
        rng = np.random.default_rng(seed)
        # Poisson bootstrap (each item weighted by a Poisson(1) count; Hanley & MacGibbon 2006):
        # one vectorised draw for every pattern and resample, where the multinomial over
        # 20 × 19 pairs × shares costs a conditional binomial per pattern. The two agree as
        # the number of items grows; the report's means keep the exact multinomial.
        weights = rng.poisson(
            self.freq[None, :].astype(np.float64), size=(resamples, len(self.freq))
        ).astype(np.float64)
        ci = percentile_ci(_bt_fit(*self.matrices(weights), start=strength).T, confidence)
        rows, pl, pr, ps = np.arange(len(self.pl)), self.pl, self.pr, self.ps
        to_app = _pattern_matrix(rows, [pl, pr], [np.ones(len(pl)), np.ones(len(pl))], self.m)
        to_won = _pattern_matrix(rows, [pl, pr], [ps, 1 - ps], self.m)
        app_b = np.asarray((to_app.T @ weights.T).T)
        won_b = np.asarray((to_won.T @ weights.T).T)
        with np.errstate(invalid="ignore", divide="ignore"):
            win_ci = percentile_ci((won_b / app_b).T, confidence)
        return ci, win_ci


def bradley_terry_bootstrap(
    left: np.ndarray,
    right: np.ndarray,
    share_left: np.ndarray,
    *,
    n_models: int,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    names: list[str] | None = None,
) -> BradleyTerry:
    """Bradley–Terry strengths of `n_models` from comparisons (one per item): model codes
    `left` and `right`, and how much the item favours left (1 won, 0 lost, ½ tie). CIs by
    resampling items: the counts of the distinct (left, right, share) patterns are drawn at
    once, so every resample is a small win matrix and Newton's method runs on all of them
    at once."""
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    share = np.asarray(share_left, dtype=np.float64)
    m = n_models
    names = names or [str(k) for k in range(m)]
    patterns = _BTPatterns.of(left, right, share, m)
    strength = (
        _bt_fit(*patterns.matrices(patterns.freq[None, :].astype(np.float64)))[0]
        if patterns.n
        else np.full(m, np.nan)
    )
    appearances = np.bincount(left, minlength=m) + np.bincount(right, minlength=m)
    won = np.bincount(left, weights=share, minlength=m) + np.bincount(
        right, weights=1 - share, minlength=m
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = won / appearances
    ci = np.full((m, 2), np.nan)
    win_ci = np.full((m, 2), np.nan)
    if patterns.n >= 2 and resamples > 0:
        ci, win_ci = patterns.bootstrap(
            strength, resamples=resamples, seed=seed, confidence=confidence
        )
    return BradleyTerry(list(names), strength, ci, win_rate, win_ci, appearances)


def needed_items(*, n: int, half_width: float, target: float) -> int:
    """How many more items bring a CI of `half_width` (from n items) down to `target`:
    the half-width of a mean shrinks with 1/√n."""
    if n <= 0 or not np.isfinite(half_width) or target <= 0 or half_width <= target:
        return 0
    return int(np.ceil(n * ((half_width / target) ** 2 - 1)))


@dataclass(frozen=True)
class Series:
    """Quality per (language, key) — key a model version or a period, in order — with the
    change from the language's previous key and the gap to the key's best language.

    Arrays are (L, K) unless said otherwise; NaN where a language has no items for a key.
    `change_*` compare with the language's previous key with enough items (`previous`, −1
    for none); `gap_*` is best − this language at the same key; `gap_change_*` compares
    the gap with the one at `previous` (negative: the gap narrowed).
    """

    n: np.ndarray
    mean: np.ndarray
    ci: np.ndarray  # (L, K, 2)
    previous: np.ndarray
    change: np.ndarray
    change_ci: np.ndarray  # (L, K, 2)
    change_verdict: np.ndarray  # +1 up, −1 down, 0 no evidence (or no previous)
    best: np.ndarray  # (K,) language code of the best language, −1 where none
    gap: np.ndarray
    gap_ci: np.ndarray  # (L, K, 2)
    gap_change: np.ndarray
    gap_change_ci: np.ndarray  # (L, K, 2)
    gap_change_verdict: np.ndarray


def progress_series(
    language: np.ndarray,
    key: np.ndarray,
    score: np.ndarray,
    *,
    n_languages: int,
    n_keys: int,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    rank: np.ndarray | None = None,
) -> Series:
    """The progress table from one row per scored item: its language code, key code and
    score. One bootstrap for all (language, key) groups; changes and gaps are differences
    of those draws, computed for all languages and keys at once.

    `rank` (K,), non-decreasing, orders the keys (a release date): a key's previous one is
    the last key with at least MIN_ITEMS items and a strictly smaller rank, so versions released together —
    or undated (NaN) — are not compared as if one followed the other. By default every
    key follows the one before it. A change or gap gets an interval and a verdict only
    when both of its groups have at least MIN_ITEMS items."""
    L, K = n_languages, n_keys
    gm = bootstrap_group_means(
        np.asarray(language, dtype=np.int64) * K + np.asarray(key, dtype=np.int64),
        score,
        n_groups=L * K,
        resamples=resamples,
        seed=seed,
    )
    n = gm.n.reshape(L, K)
    mean = gm.mean.reshape(L, K)
    ci = gm.ci(confidence).reshape(L, K, 2)
    draws = gm.draws.reshape(L, K, resamples if resamples > 0 else 0)
    enough = n >= MIN_ITEMS
    previous = _previous_keys(n, rank)
    change, change_ci, change_verdict = _changes(mean, draws, enough, previous, confidence)
    best, gap, gap_draws, gap_ci = _gaps(mean, draws, n, confidence)
    gap_change, gap_change_ci, gap_change_verdict = _gap_changes(
        gap, gap_draws, enough, previous, confidence
    )
    return Series(
        n,
        mean,
        ci,
        previous,
        change,
        change_ci,
        change_verdict,
        best,
        gap,
        gap_ci,
        gap_change,
        gap_change_ci,
        gap_change_verdict,
    )


def _previous_keys(n: np.ndarray, rank: np.ndarray | None) -> np.ndarray:
    """Per language and key, the previous key with enough items (−1 for none): a running
    maximum of "last such key seen", read just before the first key of the same rank."""
    L, K = n.shape
    present = n > 0
    enough = n >= MIN_ITEMS
    seen = np.where(enough, np.arange(K)[None, :], -1)
    last = np.maximum.accumulate(seen, axis=1) if K else seen
    rank = np.arange(K, dtype=np.float64) if rank is None else np.asarray(rank, dtype=np.float64)
    block_start = np.zeros(K, dtype=np.int64)
    for k in range(1, K):  # over keys (versions or periods), not rows or resamples
        block_start[k] = block_start[k - 1] if rank[k] == rank[k - 1] else k
    before = np.concatenate([np.full((L, 1), -1), last], axis=1)[:, block_start]
    return np.where(present & np.isfinite(rank)[None, :], before, -1)


def _changes(
    mean: np.ndarray,
    draws: np.ndarray,
    enough: np.ndarray,
    previous: np.ndarray,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The change from each language's previous key, with an interval and a verdict where
    both groups have enough items."""
    L, K = mean.shape
    rows, cols = np.nonzero(previous >= 0)
    prev_cols = previous[rows, cols]
    change = np.full((L, K), np.nan)
    change_ci = np.full((L, K, 2), np.nan)
    change_verdict = np.zeros((L, K), dtype=np.int64)
    if len(rows):
        change[rows, cols] = mean[rows, cols] - mean[rows, prev_cols]
        sure = enough[rows, cols] & enough[rows, prev_cols]
        r, c, p = rows[sure], cols[sure], prev_cols[sure]
        if len(r):
            c_ci, c_v = changes_vectorised(draws[r, c], draws[r, p], confidence)
            change_ci[r, c] = c_ci
            change_verdict[r, c] = c_v
    return change, change_ci, change_verdict


def _gaps(
    mean: np.ndarray, draws: np.ndarray, n: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The best language per key among those with enough items, and each language's gap to
    it (best − this) with its draws and interval."""
    L, K = mean.shape
    B = draws.shape[2]
    present, enough = n > 0, n >= MIN_ITEMS
    candidate = np.where(enough, mean, -np.inf)
    best = np.where(np.isfinite(candidate).any(axis=0), np.argmax(candidate, axis=0), -1)
    gap = np.full((L, K), np.nan)
    gap_draws = np.full((L, K, B), np.nan)
    gap_ci = np.full((L, K, 2), np.nan)
    kk = np.flatnonzero(best >= 0)
    if len(kk):
        gap[:, kk] = mean[best[kk], kk][None, :] - mean[:, kk]
        gap_draws[:, kk] = draws[best[kk], kk][None, :, :] - draws[:, kk]
        gap_ci[:, kk] = percentile_ci(gap_draws[:, kk], confidence)
        gap_ci[~enough] = np.nan
        # The best language itself: gap 0 by definition, no interval.
        gap_ci[best[kk], kk] = np.nan
        gap_draws[best[kk], kk] = 0.0
        gap[best[kk], kk] = 0.0
    gap[~present] = np.nan
    return best, gap, gap_draws, gap_ci


def _gap_changes(
    gap: np.ndarray,
    gap_draws: np.ndarray,
    enough: np.ndarray,
    previous: np.ndarray,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How each gap moved since the language's previous key (negative: it narrowed)."""
    L, K = gap.shape
    rows, cols = np.nonzero(previous >= 0)
    prev_cols = previous[rows, cols]
    gap_change = np.full((L, K), np.nan)
    gap_change_ci = np.full((L, K, 2), np.nan)
    gap_change_verdict = np.zeros((L, K), dtype=np.int64)
    ok = (
        (
            np.isfinite(gap[rows, cols])
            & np.isfinite(gap[rows, prev_cols])
            & enough[rows, cols]
            & enough[rows, prev_cols]
        )
        if len(rows)
        else np.zeros(0, bool)
    )
    if ok.any():
        r, c, p = rows[ok], cols[ok], prev_cols[ok]
        gap_change[r, c] = gap[r, c] - gap[r, p]
        g_ci, g_v = changes_vectorised(gap_draws[r, c], gap_draws[r, p], confidence)
        gap_change_ci[r, c] = g_ci
        gap_change_verdict[r, c] = g_v
    return gap_change, gap_change_ci, gap_change_verdict

"""Krippendorff's alpha with a bootstrap interval, on plain arrays (no Django).

Krippendorff's alpha is computed from the coincidence matrix o (Krippendorff 2011,
"Computing Krippendorff's Alpha-Reliability"): alpha = 1 - (n-1)·Σ o·δ / Σ n_c·n_k·δ.
The point estimate is the `krippendorff` package's value. The bootstrap cannot afford to
call the package a thousand times, so each item's share of o is computed once, items with
identical shares are collapsed into patterns, and a resample is a vector of pattern counts
(multinomial); the 1,000 coincidence matrices then come from one sparse product. The same
formula gives the point estimate too, and the tests hold it equal to the package's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from scipy import sparse

# The levels of measurement by their stored names (annotation.models.AgreementLevel's
# values; a test holds them equal), so this module needs no Django.
NOMINAL, ORDINAL, INTERVAL, RATIO = "nominal", "ordinal", "interval", "ratio"
LEVELS = (NOMINAL, ORDINAL, INTERVAL, RATIO)
CONFIDENCE = 0.95
MAX_RESAMPLES = 100_000
# Above this many cells (units × values²) the package's dense coincidence tensor would not
# fit comfortably in memory; the (tested-equal) sparse formula gives the point estimate.
PACKAGE_CELL_LIMIT = 12_000_000
# How many cells one bootstrap chunk may hold (resamples × units or × values²).
CHUNK_CELLS = 8_000_000


# =======================================================================================
# The numeric core: alpha with a bootstrap interval, on plain arrays
# =======================================================================================


@dataclass(frozen=True)
class AlphaResult:
    alpha: float | None
    ci: tuple[float | None, float | None]
    units: int
    excluded_units: int
    pairable_values: int
    # The same alpha by the sparse coincidence formula (equal to `alpha` up to rounding).
    alpha_vectorised: float | None = None
    # "krippendorff" (the package) or "coincidence" (the formula; data too large for the package).
    estimator: str = "krippendorff"
    included_clusters: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False
    )


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _alpha_from_coincidences(
    o: np.ndarray,
    nv: np.ndarray,
    *,
    pairs: tuple[np.ndarray, np.ndarray],
    level: str,
    domain: np.ndarray,
) -> np.ndarray:
    """Alpha for B coincidence matrices at once; NaN where undefined.

    `o` (B, E) holds only the cells (c, k) = pairs[0][e], pairs[1][e] that any unit can
    fill, and `nv` (B, V) the marginals n_c, so a 0–100 scale does not cost B × 101².
    Uses δ_cc = 0 for every metric, so Σ e·δ = Σ n_c n_k δ / (n-1). Krippendorff's ordinal
    metric is the interval metric on mid-ranks g_c = Σ_{k≤c} n_k − n_c/2, which is what
    makes the ordinal case vectorise (its distances depend on each resample's marginals).
    """
    ci, ck = pairs
    n = nv.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if level == NOMINAL:
            observed = n - o[:, ci == ck].sum(axis=1)
            expected = (n * n - (nv * nv).sum(axis=1)) / (n - 1)
            return 1 - observed / expected
        if level in (ORDINAL, INTERVAL):
            if level == ORDINAL:
                g = np.cumsum(nv, axis=1) - nv / 2
            else:
                g = np.broadcast_to(domain.astype(np.float64), nv.shape)
            ngg = (nv * g * g).sum(axis=1)
            gog = (o * g[:, ci] * g[:, ck]).sum(axis=1)
            observed = 2 * ngg - 2 * gog
            expected = 2 * (n * ngg - (nv * g).sum(axis=1) ** 2) / (n - 1)
            return 1 - observed / expected
        if level == RATIO:
            v = domain.astype(np.float64)
            total = v[:, None] + v[None, :]
            d = (
                np.divide(
                    (v[:, None] - v[None, :]), total, out=np.zeros_like(total), where=total != 0
                )
                ** 2
            )
            observed = o @ d[ci, ck]
            expected = ((nv @ d) * nv).sum(axis=1) / (n - 1)
            return 1 - observed / expected
    raise ValueError(f"unknown level {level!r}")


class _Coincidences:
    """Per-cluster shares of the coincidence matrix, collapsed into distinct patterns."""

    def __init__(
        self, *, unit: np.ndarray, value: np.ndarray, cluster: np.ndarray, n_values: int
    ) -> None:
        self.n_values = V = n_values
        unit_ids, u = np.unique(unit, return_inverse=True)
        n_units = len(unit_ids)
        keys, counts = np.unique(
            u.astype(np.int64) * V + value.astype(np.int64), return_counts=True
        )
        ku, kv = keys // V, keys % V
        m = np.bincount(ku, weights=counts, minlength=n_units)  # values per unit
        # A unit's cluster (its item): every judgment of a unit shares it.
        unit_cluster = np.zeros(n_units, dtype=np.int64)
        unit_cluster[u] = cluster
        cluster_ids, unit_cluster = np.unique(unit_cluster, return_inverse=True)
        pairable_unit = m >= 2
        cluster_pairable = (
            np.bincount(unit_cluster, weights=pairable_unit, minlength=len(cluster_ids)) > 0
        )
        self.included_clusters = cluster_ids[cluster_pairable]
        self.excluded = int((~cluster_pairable).sum())
        self.pairable_values = int(m[pairable_unit].sum())

        shares, n_clusters, (ku, kv, counts) = self._shares(
            ku=ku,
            kv=kv,
            counts=counts,
            m=m,
            pairable_unit=pairable_unit,
            unit_cluster=unit_cluster,
            cluster_pairable=cluster_pairable,
            n_values=V,
        )
        self.n_clusters = n_clusters
        self.patterns, self.cluster_pattern, self.frequency = self._collapse(shares)
        # Only the cells some pattern fills, and the marginals (row sums) of each pattern.
        cells = np.unique(self.patterns.indices)
        self.pairs = (cells // V, cells % V)
        self.cells_t = self.patterns[:, cells].T.tocsr()
        self.marginals_t = (
            self.patterns
            @ sparse.csr_matrix(
                (np.ones(V * V), (np.arange(V * V), np.arange(V * V) // V)), shape=(V * V, V)
            )
        ).T.tocsr()
        # The value counts of pairable units, for the package's point estimate.
        self.value_counts_rows = (ku, kv, counts)
        self.n_pairable_units = int(pairable_unit.sum())
        unit_new = np.full(n_units, -1, dtype=np.int64)
        unit_new[pairable_unit] = np.arange(self.n_pairable_units)
        self._unit_new = unit_new

    def result(self, **figures: Any) -> AlphaResult:
        """An AlphaResult with `figures` and this matrix's counts."""
        return AlphaResult(
            **figures,
            units=self.n_clusters,
            excluded_units=self.excluded,
            pairable_values=self.pairable_values,
            included_clusters=self.included_clusters,
        )

    @staticmethod
    def _shares(
        *,
        ku: np.ndarray,
        kv: np.ndarray,
        counts: np.ndarray,
        m: np.ndarray,
        pairable_unit: np.ndarray,
        unit_cluster: np.ndarray,
        cluster_pairable: np.ndarray,
        n_values: int,
    ) -> tuple[sparse.csr_matrix, int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each included cluster's share of the coincidence matrix (clusters × V·V), their
        number, and the (unit, value, count) rows of the pairable units."""
        V = n_values
        n_units = len(m)
        # Pair every distinct value of a unit with every distinct value of the same unit.
        keep = pairable_unit[ku]
        ku, kv, counts = ku[keep], kv[keep], counts[keep].astype(np.float64)
        lens = np.bincount(ku, minlength=n_units)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        partners = lens[ku]
        i = np.repeat(np.arange(len(ku)), partners)
        block = np.repeat(np.cumsum(partners) - partners, partners)
        j = starts[ku[i]] + (np.arange(len(i)) - block)
        weight = counts[i] * (counts[j] - (i == j)) / (m[ku[i]] - 1)
        nonzero = weight > 0
        # Clusters renumbered 0..C-1 among the included ones.
        remap = np.full(len(cluster_pairable), -1, dtype=np.int64)
        remap[cluster_pairable] = np.arange(int(cluster_pairable.sum()))
        rows = remap[unit_cluster[ku[i]]][nonzero]
        cols = (kv[i] * V + kv[j])[nonzero]
        n_clusters = int(cluster_pairable.sum())
        shares = sparse.csr_matrix((weight[nonzero], (rows, cols)), shape=(n_clusters, V * V))
        shares.sum_duplicates()
        shares.sort_indices()
        return shares, n_clusters, (ku, kv, counts)

    @staticmethod
    def _collapse(shares: sparse.csr_matrix) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
        """The distinct rows of `shares` (in np.unique's order), each row's pattern, and
        each pattern's frequency."""
        n = shares.shape[0]
        if n == 0:
            return shares, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        lengths = np.diff(shares.indptr)
        width = int(lengths.max()) if len(lengths) else 0
        pos = np.arange(shares.nnz) - np.repeat(shares.indptr[:-1], lengths)
        row = np.repeat(np.arange(n), lengths)
        padded = np.full((n, 2 * width), -1.0)
        padded[row, pos] = shares.indices
        padded[row, width + pos] = shares.data
        # np.unique(axis=0) sorts whole rows as raw bytes, slow for a hundred thousand
        # rows; rows are grouped here by hashing one column at a time (exact: equal values,
        # equal codes), and only the few distinct rows go through np.unique, which keeps
        # its order, so the patterns and their numbering are what it would give.
        group = np.zeros(n, dtype=np.int64)
        for column in padded.T:
            codes, uniques = pd.factorize(column)
            group, _ = pd.factorize(group * len(uniques) + codes)
        first_of_group = np.full(int(group.max()) + 1, n, dtype=np.int64)
        np.minimum.at(first_of_group, group, np.arange(n))
        _, first, order = np.unique(
            padded[first_of_group], axis=0, return_index=True, return_inverse=True
        )
        inverse = order.reshape(-1)[group]
        first = first_of_group[first]
        frequency = np.bincount(inverse, minlength=len(first))
        return shares[first], inverse, frequency

    def value_counts(self, *, columns: np.ndarray, n_columns: int) -> np.ndarray:
        """Value counts of the pairable units (units × the whole domain), for the package."""
        ku, kv, counts = self.value_counts_rows
        out = np.zeros((self.n_pairable_units, n_columns), dtype=np.float64)
        out[self._unit_new[ku], columns[kv]] = counts
        return out

    def alpha(self, weights: np.ndarray, *, level: str, domain: np.ndarray) -> np.ndarray:
        """Alpha for each row of pattern weights (B, P)."""
        o = np.asarray((self.cells_t @ weights.T).T)
        nv = np.asarray((self.marginals_t @ weights.T).T)
        return _alpha_from_coincidences(o, nv, pairs=self.pairs, level=level, domain=domain)

    def resample_weights(self, *, resamples: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
        """Pattern counts of each bootstrap resample of the clusters, in chunks.

        Drawing C clusters with replacement and counting their patterns is the same
        multinomial as drawing pattern counts directly with the patterns' frequencies, which
        costs O(patterns) instead of O(clusters) per resample when patterns repeat.
        """
        n, p = self.n_clusters, len(self.frequency)
        per_row = max(p, len(self.pairs[0]), n if p * 4 > n else p)
        chunk = max(1, min(resamples, CHUNK_CELLS // max(per_row, 1)))
        done = 0
        while done < resamples:
            size = min(chunk, resamples - done)
            if p * 4 <= n or p <= 64:
                weights = rng.multinomial(n, self.frequency / n, size=size).astype(np.float64)
            else:
                idx = rng.integers(0, n, size=(size, n))
                flat = (np.arange(size)[:, None] * p + self.cluster_pattern[idx]).ravel()
                weights = np.bincount(flat, minlength=size * p).reshape(size, p).astype(np.float64)
            done += size
            yield weights


def _package_alpha(
    co: _Coincidences, *, observed: np.ndarray, domain: np.ndarray, level: str
) -> float | None:
    """The `krippendorff` package's alpha of the pairable units, on the whole domain."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _finite(
            krippendorff.alpha(
                value_counts=co.value_counts(columns=observed, n_columns=len(domain)),
                value_domain=domain,
                level_of_measurement=level,
            )
        )


def _bootstrap_ci(
    co: _Coincidences,
    *,
    level: str,
    domain: np.ndarray,
    resamples: int,
    seed: int,
    confidence: float,
) -> tuple[float | None, float | None]:
    """The percentile interval of alpha over `resamples` resamples of the clusters."""
    if resamples <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    alphas = np.concatenate(
        [
            co.alpha(w, level=level, domain=domain)
            for w in co.resample_weights(resamples=resamples, rng=rng)
        ]
    )
    alphas = alphas[np.isfinite(alphas)]
    if not len(alphas):
        return None, None
    tail = (1 - confidence) / 2 * 100
    lo, hi = (float(x) for x in np.percentile(alphas, [tail, 100 - tail]))
    return lo, hi


def alpha_with_ci(
    *,
    unit: np.ndarray,
    value: np.ndarray,
    domain: Sequence[Any],
    level: str,
    cluster: np.ndarray | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    package: bool = True,
) -> AlphaResult:
    """Krippendorff's alpha of judgments given as parallel arrays, with a bootstrap CI.

    `unit[i]` is the unit of judgment i and `value[i]` the index of its value in `domain`
    (ordered for ordinal, interval and ratio). `cluster[i]` groups units that resample
    together (the item, for the per-label units of a multi-label project); by default each
    unit is its own cluster. With `package=False` the point estimate is the coincidence
    formula alone (equal to the package's; used where one report needs many alphas).
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}")
    domain_arr = np.asarray(domain)
    unit = np.asarray(unit)
    value = np.asarray(value, dtype=np.int64)
    cluster = unit if cluster is None else np.asarray(cluster)
    if len(domain_arr) < 2:
        raise ValueError("the value domain needs at least two values")
    if len(unit) == 0:
        return AlphaResult(
            alpha=None, ci=(None, None), units=0, excluded_units=0, pairable_values=0
        )
    if value.min() < 0 or value.max() >= len(domain_arr):
        raise ValueError("a value lies outside the domain")
    # Values nobody used carry no weight at any level (their marginal is 0 and every
    # distance to them is multiplied by it), so the formula works on the observed ones: a
    # 0–100 scale costs what the values actually used cost. The package still gets the
    # schema's whole domain.
    observed, compact = np.unique(value, return_inverse=True)
    co = _Coincidences(
        unit=unit, value=compact.reshape(-1), cluster=cluster, n_values=len(observed)
    )
    empty = co.result(alpha=None, ci=(None, None))
    if co.n_clusters == 0:
        return empty
    used = domain_arr[observed]
    vectorised = _finite(
        co.alpha(co.frequency[None, :].astype(np.float64), level=level, domain=used)[0]
    )
    if vectorised is None:
        # Every pairable value is the same: disagreement is 0/0 and alpha undefined.
        return empty
    estimator = "coincidence"
    point = vectorised
    if package and co.n_pairable_units * len(domain_arr) ** 2 <= PACKAGE_CELL_LIMIT:
        point = _package_alpha(co, observed=observed, domain=domain_arr, level=level)
        estimator = "krippendorff"
    lo, hi = _bootstrap_ci(
        co, level=level, domain=used, resamples=resamples, seed=seed, confidence=confidence
    )
    return co.result(alpha=point, ci=(lo, hi), alpha_vectorised=vectorised, estimator=estimator)


def matrix_alpha(
    reliability_data: Any,
    *,
    level: str,
    value_domain: Sequence[Any] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> AlphaResult:
    """alpha_with_ci on a raters × units matrix with NaN for missing values (the layout of
    the `krippendorff` package and of Krippendorff's papers)."""
    data = np.asarray(reliability_data, dtype=np.float64)
    domain = (
        np.unique(data[~np.isnan(data)])
        if value_domain is None
        else np.asarray(value_domain, dtype=np.float64)
    )
    raters, units = np.nonzero(~np.isnan(data))
    values = np.searchsorted(domain, data[raters, units])
    if np.any(values >= len(domain)) or np.any(
        domain[np.minimum(values, len(domain) - 1)] != data[raters, units]
    ):
        raise ValueError("the reliability data contains values outside the domain")
    return alpha_with_ci(
        unit=units, value=values, domain=domain, level=level, resamples=resamples, seed=seed
    )


def bootstrap_mean(
    values: np.ndarray, *, resamples: int = 1000, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float | None, tuple[float | None, float | None]]:
    """Mean of per-item values with a percentile-bootstrap CI over items (vectorised the same
    way: distinct values and their counts, resampled as a multinomial)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return None, (None, None)
    mean = float(values.mean())
    if len(values) < 2 or resamples <= 0:
        return mean, (None, None)
    distinct, counts = np.unique(values, return_counts=True)
    rng = np.random.default_rng(seed)
    n = len(values)
    means: list[np.ndarray] = []
    chunk = max(1, CHUNK_CELLS // max(len(distinct), n if len(distinct) * 4 > n else 1))
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        if len(distinct) * 4 <= n or len(distinct) <= 64:
            w = rng.multinomial(n, counts / n, size=size)
            means.append(w @ distinct / n)
        else:
            means.append(values[rng.integers(0, n, size=(size, n))].mean(axis=1))
        done += size
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(np.concatenate(means), [tail, 100 - tail])
    return mean, (float(lo), float(hi))

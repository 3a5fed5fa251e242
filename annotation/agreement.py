"""Agreement, aggregation and the per-language parity report.

Conventions, stated once and used everywhere in this module:

- A *unit* is an item. Its values are the current revisions of its production and
  historical judgments. Honeypot, calibration and adjudication judgments never enter
  production agreement; calibration judgments are measured on their own (``by="round"``).
- Units with fewer than two judgments cannot show agreement: they are excluded and
  counted (``excluded_units``).
- The value domain is the project schema's — every point of a rating scale, every label,
  every pairwise choice — not only the values that happen to be observed.
- The level of measurement is the one the task implies (nominal for labels and pairwise
  choices, ordinal for rating scales and graded preferences); the schema's ``level``
  overrides it, and an explicit ``level`` argument overrides both.
- Multi-label projects: one binary alpha per label; the headline pools the labels
  (every item contributes one binary unit per label) and still resamples whole items.
- Every alpha comes with a 95% percentile-bootstrap interval over units (items), seeded.

Krippendorff's alpha is computed from the coincidence matrix o (Krippendorff 2011,
"Computing Krippendorff's Alpha-Reliability"): alpha = 1 - (n-1)·Σ o·δ / Σ n_c·n_k·δ.
The point estimate is the `krippendorff` package's value. The bootstrap cannot afford to
call the package a thousand times, so each item's share of o is computed once, items with
identical shares are collapsed into patterns, and a resample is a vector of pattern counts
(multinomial); the 1,000 coincidence matrices then come from one sparse product. The same
formula gives the point estimate too, and the tests hold it equal to the package's.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, IntegerField, Max, Min, Q
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone
from scipy import sparse

from annotation.gold import gold_matches
from annotation.labels import ItemLabel, LabelRule, item_label, round_half_up, votes_of
from annotation.languages import language_tag_normalize
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    AgreementLevel,
    AssignmentKind,
    EvaluatorProfile,
    ExternalRater,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Project,
    Selection,
    TaskType,
)
from annotation.schema import PAIRWISE_CHOICES

CALIBRATION_KINDS = (AssignmentKind.CALIBRATION.value,)
LEVELS = tuple(AgreementLevel.values)
BREAKDOWNS = ("language", "evaluator", "model", "round")
METADATA_PREFIX = "metadata:"
CONFIDENCE = 0.95
MAX_RESAMPLES = 100_000
# Above this many cells (units × values²) the package's dense coincidence tensor would not
# fit comfortably in memory; the (tested-equal) sparse formula gives the point estimate.
PACKAGE_CELL_LIMIT = 12_000_000
# How many cells one bootstrap chunk may hold (resamples × units or × values²).
CHUNK_CELLS = 8_000_000
# Pairwise kappa needs this many shared items to mean anything.
KAPPA_MIN_SHARED = 5
# Graded preference of A over B: b much better … a much better (DESIGN.md, pairwise value).
GRADED_DOMAIN = (-2, -1, 0, 1, 2)


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
    included_clusters: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _alpha_from_coincidences(
    o: np.ndarray, nv: np.ndarray, *, pairs: tuple[np.ndarray, np.ndarray], level: str, domain: np.ndarray
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
        if level == AgreementLevel.NOMINAL:
            observed = n - o[:, ci == ck].sum(axis=1)
            expected = (n * n - (nv * nv).sum(axis=1)) / (n - 1)
            return 1 - observed / expected
        if level in (AgreementLevel.ORDINAL, AgreementLevel.INTERVAL):
            if level == AgreementLevel.ORDINAL:
                g = np.cumsum(nv, axis=1) - nv / 2
            else:
                g = np.broadcast_to(domain.astype(np.float64), nv.shape)
            ngg = (nv * g * g).sum(axis=1)
            gog = (o * g[:, ci] * g[:, ck]).sum(axis=1)
            observed = 2 * ngg - 2 * gog
            expected = 2 * (n * ngg - (nv * g).sum(axis=1) ** 2) / (n - 1)
            return 1 - observed / expected
        if level == AgreementLevel.RATIO:
            v = domain.astype(np.float64)
            total = v[:, None] + v[None, :]
            d = np.divide((v[:, None] - v[None, :]), total, out=np.zeros_like(total), where=total != 0) ** 2
            observed = o @ d[ci, ck]
            expected = ((nv @ d) * nv).sum(axis=1) / (n - 1)
            return 1 - observed / expected
    raise ValueError(f"unknown level {level!r}")


class _Coincidences:
    """Per-cluster shares of the coincidence matrix, collapsed into distinct patterns."""

    def __init__(self, *, unit: np.ndarray, value: np.ndarray, cluster: np.ndarray, n_values: int) -> None:
        self.n_values = V = n_values
        unit_ids, u = np.unique(unit, return_inverse=True)
        n_units = len(unit_ids)
        keys, counts = np.unique(u.astype(np.int64) * V + value.astype(np.int64), return_counts=True)
        ku, kv = keys // V, keys % V
        m = np.bincount(ku, weights=counts, minlength=n_units)  # values per unit
        # A unit's cluster (its item): every judgment of a unit shares it.
        unit_cluster = np.zeros(n_units, dtype=np.int64)
        unit_cluster[u] = cluster
        cluster_ids, unit_cluster = np.unique(unit_cluster, return_inverse=True)
        pairable_unit = m >= 2
        cluster_pairable = np.bincount(unit_cluster, weights=pairable_unit, minlength=len(cluster_ids)) > 0
        self.included_clusters = cluster_ids[cluster_pairable]
        self.excluded = int((~cluster_pairable).sum())
        self.pairable_values = int(m[pairable_unit].sum())

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
        remap = np.full(len(cluster_ids), -1, dtype=np.int64)
        remap[cluster_pairable] = np.arange(int(cluster_pairable.sum()))
        rows = remap[unit_cluster[ku[i]]][nonzero]
        cols = (kv[i] * V + kv[j])[nonzero]
        n_clusters = int(cluster_pairable.sum())
        shares = sparse.csr_matrix((weight[nonzero], (rows, cols)), shape=(n_clusters, V * V))
        shares.sum_duplicates()
        shares.sort_indices()
        self.n_clusters = n_clusters
        self.patterns, self.cluster_pattern, self.frequency = self._collapse(shares)
        # Only the cells some pattern fills, and the marginals (row sums) of each pattern.
        cells = np.unique(self.patterns.indices)
        self.pairs = (cells // V, cells % V)
        self.cells_t = self.patterns[:, cells].T.tocsr()
        self.marginals_t = (self.patterns @ sparse.csr_matrix(
            (np.ones(V * V), (np.arange(V * V), np.arange(V * V) // V)), shape=(V * V, V)
        )).T.tocsr()
        # The value counts of pairable units, for the package's point estimate.
        self.value_counts_rows = (ku, kv, counts)
        self.n_pairable_units = int(pairable_unit.sum())
        unit_new = np.full(n_units, -1, dtype=np.int64)
        unit_new[pairable_unit] = np.arange(self.n_pairable_units)
        self._unit_new = unit_new

    @staticmethod
    def _collapse(shares: sparse.csr_matrix) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
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
        _, first, inverse, frequency = np.unique(
            padded, axis=0, return_index=True, return_inverse=True, return_counts=True
        )
        return shares[first], inverse.reshape(-1), frequency

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
        return AlphaResult(alpha=None, ci=(None, None), units=0, excluded_units=0, pairable_values=0)
    if value.min() < 0 or value.max() >= len(domain_arr):
        raise ValueError("a value lies outside the domain")
    # Values nobody used carry no weight at any level (their marginal is 0 and every
    # distance to them is multiplied by it), so the formula works on the observed ones: a
    # 0–100 scale costs what the values actually used cost. The package still gets the
    # schema's whole domain.
    observed, compact = np.unique(value, return_inverse=True)
    co = _Coincidences(unit=unit, value=compact.reshape(-1), cluster=cluster, n_values=len(observed))
    empty = AlphaResult(
        alpha=None, ci=(None, None), units=co.n_clusters, excluded_units=co.excluded,
        pairable_values=co.pairable_values, included_clusters=co.included_clusters,
    )
    if co.n_clusters == 0:
        return empty
    used = domain_arr[observed]
    vectorised = _finite(co.alpha(co.frequency[None, :].astype(np.float64), level=level, domain=used)[0])
    if vectorised is None:
        # Every pairable value is the same: disagreement is 0/0 and alpha undefined.
        return empty
    estimator = "coincidence"
    point = vectorised
    if package and co.n_pairable_units * len(domain_arr) ** 2 <= PACKAGE_CELL_LIMIT:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            point = _finite(
                krippendorff.alpha(
                    value_counts=co.value_counts(columns=observed, n_columns=len(domain_arr)),
                    value_domain=domain_arr,
                    level_of_measurement=level,
                )
            )
        estimator = "krippendorff"
    lo = hi = None
    if resamples > 0:
        rng = np.random.default_rng(seed)
        alphas = np.concatenate([
            co.alpha(w, level=level, domain=used)
            for w in co.resample_weights(resamples=resamples, rng=rng)
        ])
        alphas = alphas[np.isfinite(alphas)]
        if len(alphas):
            tail = (1 - confidence) / 2 * 100
            lo, hi = (float(x) for x in np.percentile(alphas, [tail, 100 - tail]))
    return AlphaResult(
        alpha=point,
        ci=(lo, hi),
        units=co.n_clusters,
        excluded_units=co.excluded,
        pairable_values=co.pairable_values,
        alpha_vectorised=vectorised,
        estimator=estimator,
        included_clusters=co.included_clusters,
    )


def matrix_alpha(
    reliability_data: Any, *, level: str, value_domain: Sequence[Any] | None = None, resamples: int = 1000,
    seed: int = 0,
) -> AlphaResult:
    """alpha_with_ci on a raters × units matrix with NaN for missing values (the layout of
    the `krippendorff` package and of Krippendorff's papers)."""
    data = np.asarray(reliability_data, dtype=np.float64)
    domain = np.unique(data[~np.isnan(data)]) if value_domain is None else np.asarray(value_domain, dtype=np.float64)
    raters, units = np.nonzero(~np.isnan(data))
    values = np.searchsorted(domain, data[raters, units])
    if np.any(values >= len(domain)) or np.any(domain[np.minimum(values, len(domain) - 1)] != data[raters, units]):
        raise ValueError("the reliability data contains values outside the domain")
    return alpha_with_ci(unit=units, value=values, domain=domain, level=level, resamples=resamples, seed=seed)


def bootstrap_mean(values: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                   confidence: float = CONFIDENCE) -> tuple[float | None, tuple[float | None, float | None]]:
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


# =======================================================================================
# From judgments to numbers: the project's value scheme
# =======================================================================================


@dataclass(frozen=True)
class _Scheme:
    """How a project's judgment values become indices into an ordered value domain."""

    task_type: str
    level: str
    domain: tuple[Any, ...]
    labels: tuple[str, ...] = ()  # multi-label projects: one binary unit per label
    multi: bool = False

    @classmethod
    def of(cls, project: Project, level: str) -> _Scheme:
        schema = project.schema or {}
        if project.task_type == TaskType.RATING:
            scale = schema.get("scale") or {"min": 1, "max": 5}
            return cls(project.task_type, level, tuple(range(scale["min"], scale["max"] + 1)))
        if project.task_type == TaskType.PAIRWISE:
            if level == AgreementLevel.NOMINAL:
                return cls(project.task_type, level, PAIRWISE_CHOICES)
            # Graded preference: strength of A over B; tie and both-bad prefer neither.
            return cls(project.task_type, level, GRADED_DOMAIN)
        labels = tuple(schema.get("labels") or ())
        if schema.get("multi"):
            return cls(project.task_type, level, (0, 1), labels=labels, multi=True)
        return cls(project.task_type, level, labels)

    def index(self, value: dict[str, Any]) -> int:
        if self.task_type == TaskType.RATING:
            return int(value["score"]) - int(self.domain[0])
        if self.task_type == TaskType.PAIRWISE:
            choice = value["choice"]
            if self.level == AgreementLevel.NOMINAL:
                return PAIRWISE_CHOICES.index(choice)
            strength = int(value.get("strength", 1))
            graded = strength if choice == "a" else -strength if choice == "b" else 0
            return GRADED_DOMAIN.index(graded)
        return self.domain.index(value["labels"][0])

    def encode(self, values: Sequence[dict[str, Any]]) -> np.ndarray:
        """Value indices (n,) — or, for multi-label, a binary matrix (n, labels)."""
        if self.multi:
            out = np.zeros((len(values), len(self.labels)), dtype=np.int64)
            position = {label: k for k, label in enumerate(self.labels)}
            for row, value in enumerate(values):
                for label in value.get("labels", ()):
                    if label in position:
                        out[row, position[label]] = 1
            return out
        return np.fromiter((self.index(v) for v in values), dtype=np.int64, count=len(values))

    @property
    def kappa_weights(self) -> str | None:
        return None if self.level == AgreementLevel.NOMINAL else "quadratic"


def level_resolve(*, project: Project, level: str | None = None) -> str:
    """The level of measurement: the explicit argument, else the project's (schema or task)."""
    if level is None or level == "":
        return project.agreement_level
    if level not in LEVELS:
        raise ValidationError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    return level


def _language_resolve(project: Project, language: str | None) -> str | None:
    if language is None or language == "":
        return None
    tag = language_tag_normalize(language)
    if not project.languages.filter(tag=tag).exists():
        enabled = ", ".join(project.languages.values_list("tag", flat=True)) or "none"
        raise ValidationError(f"{tag!r} is not a language of project {project.slug} (its languages: {enabled})")
    return tag


def _by_resolve(by: str | None) -> str | None:
    if by is None or by == "":
        return None
    if by in BREAKDOWNS:
        return by
    if by.startswith(METADATA_PREFIX) and by[len(METADATA_PREFIX):].strip():
        return by
    raise ValidationError(
        f"by must be one of {', '.join(BREAKDOWNS)} or {METADATA_PREFIX}<key> (an item metadata key), not {by!r}"
    )


@dataclass
class _Judgments:
    """The judgments in scope, as parallel columns (one row per current judgment)."""

    frame: pd.DataFrame
    rater_labels: dict[str, str]
    # Encoded values per scheme, computed once and carried into subsets (a breakdown takes
    # many subsets of the same judgments).
    codes: dict[_Scheme, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, mask: Any) -> _Judgments:
        mask = np.asarray(mask)
        return _Judgments(self.frame[mask], self.rater_labels, {k: v[mask] for k, v in self.codes.items()})

    def encoded(self, scheme: _Scheme) -> np.ndarray:
        if scheme not in self.codes:
            self.codes[scheme] = scheme.encode(list(self.frame["value"]))
        return self.codes[scheme]


def _values_rebuild(task_type: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Judgment values (the agreement-relevant part) from the columns the database extracted."""
    if task_type == TaskType.RATING:
        return [{"score": int(score)} for score in frame["_score"]]
    if task_type == TaskType.PAIRWISE:
        return [
            {"choice": choice, "strength": int(strength)} if strength == strength and strength is not None
            else {"choice": choice}
            for choice, strength in zip(frame["_choice"], frame["_strength"], strict=True)
        ]
    return [{"labels": json.loads(raw) if isinstance(raw, str) else list(raw or ())} for raw in frame["_labels"]]


def _judgments_load(
    project: Project,
    *,
    language: str | None = None,
    kinds: Sequence[str] = COUNTED_JUDGMENT_KINDS,
    item_fields: Sequence[str] = (),
    item_ids: Iterable[int] | None = None,
    with_created: bool = False,
) -> _Judgments:
    qs = Judgment.objects.filter(item__project=project, is_current=True, kind__in=list(kinds))
    if language:
        qs = qs.filter(item__language__tag=language)
    if item_ids is not None:
        qs = qs.filter(item_id__in=list(item_ids))
    # Only the parts of the value agreement needs, extracted by the database: decoding
    # every judgment's JSON (and converting every timestamp) in Python is most of the time
    # a large report takes otherwise.
    if project.task_type == TaskType.RATING:
        parts = {"_score": Cast(KT("value__score"), IntegerField())}
    elif project.task_type == TaskType.PAIRWISE:
        parts = {"_choice": KT("value__choice"), "_strength": Cast(KT("value__strength"), IntegerField())}
    else:
        parts = {"_labels": KT("value__labels")}
    extra = ["created_at"] if with_created else []
    columns = ["item_id", "evaluator_id", "external_rater_id", "item__language__tag", "guideline_version", "kind",
               *extra, *(f"item__{name}" for name in item_fields), *parts]
    rows = list(qs.annotate(**parts).order_by("item_id", "id").values_list(*columns))
    names = ["item", "evaluator", "external", "language", "guideline_version", "kind", *extra, *item_fields,
             *parts]
    frame = pd.DataFrame.from_records(rows, columns=names)
    frame["value"] = _values_rebuild(project.task_type, frame) if len(frame) else pd.Series(dtype=object)
    frame = frame.drop(columns=list(parts))
    if frame.empty:
        frame["rater"] = pd.Series(dtype=str)
        return _Judgments(frame, {})
    evaluator = frame["evaluator"].astype("Int64")
    external = frame["external"].astype("Int64")
    frame["rater"] = np.where(evaluator.notna(), "ev:" + evaluator.astype(str), "ext:" + external.astype(str))
    labels: dict[str, str] = {}
    ev_ids = sorted({int(x) for x in evaluator.dropna()})
    if ev_ids:
        names_by_user = dict(EvaluatorProfile.objects.filter(user_id__in=ev_ids).values_list("user_id", "pseudonym"))
        labels.update({f"ev:{uid}": names_by_user.get(uid, f"evaluator-{uid}") for uid in ev_ids})
    ext_ids = sorted({int(x) for x in external.dropna()})
    if ext_ids:
        labels.update({
            f"ext:{pk}": external_id
            for pk, external_id in ExternalRater.objects.filter(pk__in=ext_ids).values_list("pk", "external_id")
        })
    return _Judgments(frame, labels)


def _alpha_summary(data: _Judgments, scheme: _Scheme, *, resamples: int, seed: int,
                   per_label: bool = False, package: bool = True) -> dict[str, Any]:
    """alpha, level, ci, units, judgments, excluded_units for these judgments."""
    frame = data.frame
    out: dict[str, Any] = {"alpha": None, "level": scheme.level, "ci": [None, None], "units": 0,
                           "judgments": int(len(frame)), "excluded_units": 0}
    if frame.empty:
        if scheme.multi and per_label:
            out["labels"] = [{"label": label, "alpha": None, "ci": [None, None], "units": 0}
                             for label in scheme.labels]
        return out
    items = frame["item"].to_numpy(dtype=np.int64)
    encoded = data.encoded(scheme)
    if scheme.multi:
        n_labels = len(scheme.labels)
        unit = (items[:, None] * n_labels + np.arange(n_labels)[None, :]).ravel()
        result = alpha_with_ci(unit=unit, value=encoded.ravel(), cluster=np.repeat(items, n_labels),
                               domain=scheme.domain, level=scheme.level, resamples=resamples, seed=seed,
                               package=package)
        if per_label:
            out["labels"] = []
            for k, label in enumerate(scheme.labels):
                r = alpha_with_ci(unit=items, value=encoded[:, k], domain=scheme.domain, level=scheme.level,
                                  resamples=resamples, seed=seed)
                out["labels"].append({"label": label, "alpha": r.alpha, "ci": list(r.ci), "units": r.units})
    else:
        result = alpha_with_ci(unit=items, value=encoded, domain=scheme.domain, level=scheme.level,
                               resamples=resamples, seed=seed, package=package)
    out.update(alpha=result.alpha, ci=list(result.ci), units=result.units, excluded_units=result.excluded_units)
    return out


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


def kappa_matrix(*, project: Project, language: str | None = None, level: str | None = None,
                 min_shared: int = KAPPA_MIN_SHARED) -> dict[str, Any]:
    """Cohen's kappa (scikit-learn) between every two raters on the items both judged.

    Weighted (quadratic) for ordinal, interval and ratio levels, unweighted for nominal.
    Pairs that share fewer than `min_shared` units get None.
    """
    level = level_resolve(project=project, level=level)
    language = _language_resolve(project, language)
    scheme = _Scheme.of(project, level)
    data = _judgments_load(project, language=language)
    return _kappa_from(data, scheme, min_shared=min_shared)


def _kappa_from(data: _Judgments, scheme: _Scheme, *, min_shared: int = KAPPA_MIN_SHARED) -> dict[str, Any]:
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
                value = _kappa(matrix[both, i], matrix[both, j], n_values=len(scheme.domain),
                               weights=scheme.kappa_weights)
                kappa[i][j] = kappa[j][i] = value
    return {
        "raters": [{"key": r, "label": data.rater_labels.get(r, r)} for r in raters],
        "kappa": kappa,
        "shared": shared,
        "weights": scheme.kappa_weights,
        "min_shared": min_shared,
    }


def _evaluator_groups(data: _Judgments, scheme: _Scheme, *, overall: float | None, resamples: int,
                      seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
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
        # Agreement with the others: alpha over two-value units (this rater's value, one
        # other rater's value), resampled by item.
        pair_id = np.arange(len(own))
        if scheme.multi:
            n_labels = len(scheme.labels)
            unit = np.concatenate([pair_id, pair_id])[:, None] * n_labels + np.arange(n_labels)[None, :]
            value = np.concatenate([encoded[row], encoded[other]])
            cluster = np.repeat(np.concatenate([items[row], items[other]]), n_labels)
            with_others = alpha_with_ci(unit=unit.ravel(), value=value.ravel(), cluster=cluster,
                                        domain=scheme.domain, level=scheme.level, resamples=resamples, seed=seed,
                                        package=False)
        else:
            with_others = alpha_with_ci(
                unit=np.concatenate([pair_id, pair_id]), value=np.concatenate([encoded[row], encoded[other]]),
                cluster=np.concatenate([items[row], items[row]]), domain=scheme.domain, level=scheme.level,
                resamples=resamples, seed=seed, package=False,
            )
        # Leave-one-out is a point estimate: its change against the overall alpha is the signal.
        without = _alpha_summary(data.subset(~mine), scheme, resamples=0, seed=seed, package=False)
        own_items = np.unique(items[mine])
        shared_items = np.unique(items[row]) if len(row) else np.zeros(0)
        k = index[key]
        peer = [(kappas["kappa"][k][j], kappas["shared"][k][j]) for j in range(len(index))
                if j != k and kappas["kappa"][k][j] is not None]
        kappa_mean = (sum(v * w for v, w in peer) / sum(w for _, w in peer)) if peer else None
        groups.append({
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
            if without["alpha"] is not None and overall is not None else None,
            "kappa_mean": kappa_mean,
        })
    return groups, kappas


# =======================================================================================
# The agreement report
# =======================================================================================


def _group_key_column(data: _Judgments, by: str) -> pd.Series:
    frame = data.frame
    if by == "language":
        return frame["language"]
    if by == "model":
        single = frame["model"].fillna("")
        pair = [" vs ".join(sorted(p for p in (a, b) if p)) for a, b in zip(frame["model_a"], frame["model_b"], strict=True)]
        keyed = np.where(single != "", single, pair)
        return pd.Series(keyed, index=frame.index).replace("", "(none)")
    if by == "round":
        version = frame["guideline_version"].fillna("").replace("", "(none)")
        return frame["language"] + " · " + version
    key = by[len(METADATA_PREFIX):]
    return frame["metadata"].map(lambda m: _metadata_label((m or {}).get(key) if isinstance(m, dict) else None))


def _metadata_label(value: Any) -> str:
    if value is None or value == "":
        return "(none)"
    if isinstance(value, str):
        return value
    return str(value)


def agreement_report(
    *,
    project: Project,
    language: str | None = None,
    level: str | None = None,
    by: str | None = None,
    seed: int = 0,
    resamples: int = 1000,
) -> dict[str, Any]:
    """Krippendorff's alpha with a bootstrap CI for the project (or one language), and
    optionally broken down `by` language, evaluator, model, round or metadata:<key>.

    Raises ValidationError (with a message naming the argument) for a bad level, language or by.
    """
    level = level_resolve(project=project, level=level)
    language = _language_resolve(project, language)
    by = _by_resolve(by)
    if not isinstance(resamples, int) or isinstance(resamples, bool) or not 0 <= resamples <= MAX_RESAMPLES:
        raise ValidationError(f"resamples must be a whole number from 0 to {MAX_RESAMPLES}")
    scheme = _Scheme.of(project, level)
    item_fields: tuple[str, ...] = ()
    if by == "model":
        item_fields = ("model", "model_a", "model_b")
    elif by and by.startswith(METADATA_PREFIX):
        item_fields = ("metadata",)
    data = _judgments_load(project, language=language, item_fields=item_fields)
    report: dict[str, Any] = {
        "project": project.slug,
        "language": language,
        "by": by,
        **_alpha_summary(data, scheme, resamples=resamples, seed=seed, per_label=True),
        "raters": int(data.frame["rater"].nunique()) if len(data) else 0,
        "kinds": list(COUNTED_JUDGMENT_KINDS),
        "resamples": resamples,
        "seed": seed,
        "confidence": CONFIDENCE,
    }
    if by is None:
        return report
    if by == "evaluator":
        groups, kappas = _evaluator_groups(data, scheme, overall=report["alpha"], resamples=resamples, seed=seed)
        report["groups"] = groups
        report["kappa"] = kappas
        return report
    if by == "round":
        # Calibration rounds are measured on calibration judgments (a round is a language
        # and a guideline version); one evaluator's retries keep only the latest judgment.
        data = _judgments_load(project, language=language, kinds=CALIBRATION_KINDS, with_created=True)
        if len(data):
            frame = data.frame.assign(_group=_group_key_column(data, by))
            frame = frame.sort_values("created_at").drop_duplicates(["_group", "item", "rater"], keep="last")
            data = _Judgments(frame, data.rater_labels)
        report["round_kinds"] = list(CALIBRATION_KINDS)
    keys = _group_key_column(data, by) if len(data) else pd.Series(dtype=str)
    groups = []
    for key in sorted(keys.unique()):
        summary = _alpha_summary(data.subset((keys == key).to_numpy()), scheme, resamples=resamples, seed=seed)
        groups.append({"key": key, "label": key, **summary})
    report["groups"] = groups
    return report


# =======================================================================================
# Aggregation: one label per item
# =======================================================================================

AGGREGATION_METHODS = ("majority", "dawid_skene")


def item_labels(
    *,
    project: Project,
    method: str = "majority",
    language: str | None = None,
    item_ids: Iterable[int] | None = None,
) -> dict[int, ItemLabel]:
    """One label per judged (or adjudicated) item, keyed by item id.

    The label rule of annotation.labels (a FinalLabel always wins; majority, or
    crowd-kit's Dawid–Skene for labels and pairwise choices), over the counted judgments.
    """
    if method not in AGGREGATION_METHODS:
        raise ValidationError(f"method must be one of {', '.join(AGGREGATION_METHODS)}, not {method!r}")
    if method == "dawid_skene" and project.task_type == TaskType.RATING:
        raise ValidationError("dawid_skene aggregates labels and pairwise choices; ratings use method=majority (the median)")
    language = _language_resolve(project, language)
    ids = None if item_ids is None else list(item_ids)
    scheme = _Scheme.of(project, AgreementLevel.NOMINAL)
    data = _judgments_load(project, language=language, item_ids=ids)
    finals_qs = FinalLabel.objects.filter(item__project=project)
    if language:
        finals_qs = finals_qs.filter(item__language__tag=language)
    if ids is not None:
        finals_qs = finals_qs.filter(item_id__in=ids)
    finals = dict(finals_qs.values_list("item_id", "value"))
    frame = data.frame
    by_item: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item_id, value in zip(frame["item"], frame["value"], strict=True):
        by_item[int(item_id)].append(value)

    rule = LabelRule.of(project)
    fitted: dict[int, dict[str, Any]] = {}
    if method == "dawid_skene" and by_item:
        fitted = _aggregate_categorical(frame, scheme, method=method)
    labels: dict[int, ItemLabel] = {}
    for item_id in sorted(set(by_item) | set(finals)):
        values = by_item.get(item_id, [])
        final = finals.get(item_id)
        if item_id in fitted and final is None and rule.task_type == TaskType.LABELS:
            # Dawid–Skene's label set: the rule's agreement, from its value.
            base = item_label(rule=rule, votes=votes_of(rule.task_type, values), final=fitted[item_id])
            assert base is not None
            labels[item_id] = ItemLabel(value=fitted[item_id], agreement=base.agreement, n_judgments=len(values),
                                        source="dawid_skene")
            continue
        choice = fitted[item_id].get("choice") if item_id in fitted else None
        label = item_label(rule=rule, votes=votes_of(rule.task_type, values), final=final, choice=choice)
        if label is not None:
            labels[item_id] = label
    return labels


@dataclass(frozen=True)
class FittedChoices:
    """Each judged item's pairwise choice as Dawid–Skene decided it, in two arrays (item
    ids ascending, codes into `names`): a million items take 9 MB, not a dict of labels."""

    ids: np.ndarray
    codes: np.ndarray
    names: tuple[str, ...]

    def get(self, item_id: int) -> str | None:
        at = int(self.ids.searchsorted(item_id))
        if at < len(self.ids) and self.ids[at] == item_id:
            return self.names[self.codes[at]]
        return None


# Judgments read per fetch while fitting (three integers each).
_FIT_CHUNK = 50_000


def dawid_skene_choices(*, project: Project) -> FittedChoices:
    """Dawid–Skene over every counted judgment of a pairwise project, for a streamed
    export: the judgments are read from a server-side cursor as three integers each (item,
    rater, choice code) into arrays, fitted with crowd-kit, and only the chosen choice per
    item is kept. `item_labels(method="dawid_skene")` gives the same choices; it builds
    a label object per item, which a million-item export cannot afford."""
    # Codes in sorted order: crowd-kit orders the labels it sees, so the tie-breaking
    # between equally likely choices is the one item_labels gets from the names.
    names = tuple(sorted(PAIRWISE_CHOICES))
    if connection.vendor == "postgresql":
        choice = "j.value ->> 'choice'"
    else:
        choice = "json_extract(j.value, '$.choice')"
    code = "CASE " + choice + "".join(f" WHEN '{name}' THEN {n}" for n, name in enumerate(names)) + " END"
    kinds = ", ".join(f"'{kind}'" for kind in COUNTED_JUDGMENT_KINDS)
    sql = (
        # Raters: evaluators by id, external raters by minus theirs, one integer column.
        f"SELECT j.item_id, coalesce(j.evaluator_id, -j.external_rater_id), {code} "  # noqa: S608 - no values
        "FROM annotation_judgment j JOIN annotation_item i ON i.id = j.item_id "
        # A choice outside the schema (a row written around it) has no code: left out.
        f"WHERE i.project_id = %s AND j.is_current AND j.kind IN ({kinds}) AND {code} IS NOT NULL"
    )
    chunks = []
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        if connection.vendor == "postgresql":
            # A plain scan: compiling it with JIT costs more than it saves (as in the export).
            with connection.cursor() as settings_cursor:
                settings_cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, [project.pk])
        while rows := cursor.fetchmany(_FIT_CHUNK):
            chunks.append(np.array(rows, dtype=np.int64))
    if not chunks:
        return FittedChoices(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int8), names)
    judged = np.concatenate(chunks)
    del chunks
    tasks = pd.DataFrame({"task": judged[:, 0], "worker": judged[:, 1], "label": judged[:, 2]})
    del judged
    predicted = _crowdkit_predict(tasks, method="dawid_skene")
    ids = predicted.index.to_numpy(dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    return FittedChoices(ids[order], predicted.to_numpy(dtype=np.int8)[order], names)


def _crowdkit_predict(tasks: pd.DataFrame, *, method: str) -> pd.Series:
    """crowd-kit's label per task (columns task, worker, label) by majority or Dawid–Skene."""
    from crowdkit.aggregation import DawidSkene, MajorityVote

    # crowd-kit still uses pandas idioms that newer pandas warns about on every call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "majority":
            return MajorityVote().fit_predict(tasks)
        return DawidSkene(n_iter=100).fit_predict(tasks)


def _aggregate_categorical(frame: pd.DataFrame, scheme: _Scheme, *, method: str) -> dict[int, dict[str, Any]]:
    items = frame["item"].astype(np.int64).to_numpy()
    values = list(frame["value"])
    out: dict[int, dict[str, Any]] = {}
    if scheme.multi:
        encoded = scheme.encode(values)
        n_labels = len(scheme.labels)
        tasks = pd.DataFrame({
            "task": (items[:, None] * n_labels + np.arange(n_labels)[None, :]).ravel(),
            "worker": np.repeat(frame["rater"].to_numpy(), n_labels),
            "label": encoded.ravel(),
        })
        predicted = _crowdkit_predict(tasks, method=method)
        chosen: dict[int, list[str]] = defaultdict(list)
        for task, label in predicted.items():
            if int(label) == 1:
                chosen[int(task) // n_labels].append(scheme.labels[int(task) % n_labels])
        share = pd.DataFrame(encoded).groupby(items).mean()
        for item_id in np.unique(items):
            picked = chosen.get(int(item_id)) or [scheme.labels[int(np.argmax(share.loc[item_id].to_numpy()))]]
            out[int(item_id)] = {"labels": [label for label in scheme.labels if label in picked]}
        return out
    key = "choice" if scheme.task_type == TaskType.PAIRWISE else "label"
    raw = [v["choice"] if key == "choice" else v["labels"][0] for v in values]
    predicted = _crowdkit_predict(pd.DataFrame({"task": items, "worker": frame["rater"].to_numpy(), "label": raw}),
                                  method=method)
    # Strengths of the judgments per (item, choice), gathered in one pass.
    strengths: dict[tuple[int, str], list[int]] = defaultdict(list)
    if key == "choice":
        for item_id, value in zip(items, values, strict=True):
            strengths[(int(item_id), value.get("choice"))].append(int(value.get("strength", 1)))
    for task, label in predicted.items():
        item_id = int(task)
        if key == "label":
            out[item_id] = {"labels": [label]}
            continue
        value: dict[str, Any] = {"choice": label}
        if label in ("a", "b"):
            same = strengths.get((item_id, label))
            value["strength"] = min(2, max(1, round_half_up(float(np.median(same))))) if same else 1
        out[item_id] = value
    return out


def bradley_terry(comparisons: pd.DataFrame) -> list[dict[str, Any]]:
    """Rank models from pairwise wins with crowd-kit's Bradley–Terry (ties left out).

    `comparisons` has columns worker, left, right, label (the winner: left or right).
    """
    from crowdkit.aggregation import BradleyTerry

    if comparisons.empty or len(set(comparisons["left"]) | set(comparisons["right"])) < 2:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = BradleyTerry(n_iter=100).fit_predict(comparisons)
    wins = Counter(comparisons["label"])
    appearances = Counter(comparisons["left"]) + Counter(comparisons["right"])
    ranking = [
        {"model": str(model), "score": _finite(float(score)), "wins": int(wins.get(model, 0)),
         "comparisons": int(appearances.get(model, 0))}
        for model, score in scores.items()
    ]
    ranking.sort(key=lambda r: (-(r["score"] if r["score"] is not None else -math.inf), r["model"]))
    for rank, row in enumerate(ranking, start=1):
        row["rank"] = rank
    return ranking


# =======================================================================================
# The parity report
# =======================================================================================

QUALITY_SELECTIONS = tuple(s for s in Selection.values if s != Selection.UNCERTAINTY)


def _win_share(value: dict[str, Any], side: str) -> float:
    """How much one pairwise judgment favours `side` ("a" or "b"): 1, 0, or ½ for a tie."""
    choice = value.get("choice")
    if choice in ("tie", "both_bad"):
        return 0.5
    return 1.0 if choice == side else 0.0


def _positive(value: dict[str, Any], label: str) -> float:
    return 1.0 if label in value.get("labels", ()) else 0.0


def _quality_rows(frame: pd.DataFrame, finals: dict[int, dict[str, Any]], project: Project) -> pd.DataFrame:
    """One row per (item, model) with the item's quality score for that model.

    rating: mean score; pairwise: the model's win share (ties and both-bad count half);
    labels: share of judgments with the schema's first label. A final label replaces its
    item's judgments.
    """
    schema = project.schema or {}
    positive = (schema.get("labels") or [""])[0]
    if project.task_type == TaskType.RATING:
        def score(v: dict[str, Any]) -> float:
            return float(v["score"])
    elif project.task_type == TaskType.PAIRWISE:
        def score(v: dict[str, Any]) -> float:
            return _win_share(v, "a")
    else:
        def score(v: dict[str, Any]) -> float:
            return _positive(v, positive)
    per_judgment = pd.DataFrame({"item": frame["item"].to_numpy(),
                                 "score": np.fromiter((score(v) for v in frame["value"]), dtype=np.float64,
                                                      count=len(frame))})
    per_item = per_judgment.groupby("item", sort=True)["score"].mean()
    decided = [pk for pk in per_item.index if int(pk) in finals]
    if decided:
        per_item.loc[decided] = [score(finals[int(pk)]) for pk in decided]
    firsts = frame.drop_duplicates("item").set_index("item").loc[per_item.index]
    if project.task_type == TaskType.PAIRWISE:
        side_a = pd.DataFrame({"item": per_item.index, "model": firsts["model_a"].fillna("").replace("", "A").to_numpy(),
                               "score": per_item.to_numpy()})
        side_b = pd.DataFrame({"item": per_item.index, "model": firsts["model_b"].fillna("").replace("", "B").to_numpy(),
                               "score": 1 - per_item.to_numpy()})
        return pd.concat([side_a, side_b], ignore_index=True)
    return pd.DataFrame({"item": per_item.index, "model": firsts["model"].fillna("").to_numpy(),
                         "score": per_item.to_numpy()})


def parity_report(*, project: Project, seed: int = 0, resamples: int = 1000) -> dict[str, Any]:
    """Per language: items, judgments, alpha with CI, model quality with CI, the ranking of
    models, honeypot accuracy, judgments per day, the gap to the best language, and flags.

    Model quality uses only items that were not picked by an uncertainty selector (those
    over-represent hard cases); the report says which items it used.
    """
    level = project.agreement_level
    scheme = _Scheme.of(project, level)
    data = _judgments_load(project, item_fields=("model", "model_a", "model_b", "selection"))
    frame = data.frame
    finals = dict(FinalLabel.objects.filter(item__project=project).values_list("item_id", "value"))
    item_counts = {
        row["language__tag"]: row
        for row in Item.objects.filter(project=project, is_gold=False)
        .values("language__tag")
        .annotate(
            n=Count("id"),
            uncertainty=Count("id", filter=Q(selection=Selection.UNCERTAINTY)),
            adjudication=Count("id", filter=Q(status=ItemStatus.ADJUDICATION)),
            final=Count("id", filter=Q(status=ItemStatus.FINAL)),
        )
    }
    quality_frame = frame[frame["selection"] != Selection.UNCERTAINTY] if len(frame) else frame
    measure, focus = _quality_measure(project, quality_frame)
    honeypots = _honeypot_accuracy(project)
    throughput = _throughput(project, now=timezone.now())
    now = timezone.now()
    rows: list[dict[str, Any]] = []
    for lang in project.languages.order_by("tag"):
        tag = lang.tag
        sub = data.subset((frame["language"] == tag).to_numpy()) if len(frame) else data
        counts = item_counts.get(tag, {})
        agreement = _alpha_summary(sub, scheme, resamples=resamples, seed=seed, per_label=False)
        qsub = quality_frame[quality_frame["language"] == tag] if len(quality_frame) else quality_frame
        quality, models = _language_quality(project, qsub, finals, focus=focus, resamples=resamples, seed=seed)
        row: dict[str, Any] = {
            "language": tag,
            "name": lang.name,
            "direction": lang.direction,
            "items": int(counts.get("n", 0)),
            "items_judged": int(sub.frame["item"].nunique()) if len(sub) else 0,
            "items_in_adjudication": int(counts.get("adjudication", 0)),
            "items_final": int(counts.get("final", 0)),
            "judgments": agreement["judgments"],
            "raters": int(sub.frame["rater"].nunique()) if len(sub) else 0,
            "alpha": agreement["alpha"],
            "level": level,
            "ci": agreement["ci"],
            "units": agreement["units"],
            "excluded_units": agreement["excluded_units"],
            "quality": quality,
            "models": models,
            "ranking": _language_ranking(project, qsub, models),
            "honeypot": honeypots.get(tag, {"accuracy": None, "judged": 0}),
            **throughput.get(tag, _throughput_row(None, now=now)),
            "gap": None,
            "flags": [],
        }
        rows.append(row)
    best = _gaps_and_flags(project, rows)
    return {
        "project": project.slug,
        "task_type": project.task_type,
        "level": level,
        "agreement_threshold": project.agreement_threshold,
        "generated_at": now.isoformat(),
        "resamples": resamples,
        "seed": seed,
        "confidence": CONFIDENCE,
        "quality": {
            **measure,
            "items_used": "items not picked by an uncertainty selector (selection: "
            + ", ".join(QUALITY_SELECTIONS) + "); final labels replace their item's judgments",
            "selections": list(QUALITY_SELECTIONS),
            "items_excluded_uncertainty": int(sum(c.get("uncertainty", 0) for c in item_counts.values())),
        },
        "best_language": best,
        "languages": rows,
    }



def _quality_measure(project: Project, frame: pd.DataFrame) -> tuple[dict[str, Any], str | None]:
    schema = project.schema or {}
    if project.task_type == TaskType.RATING:
        scale = schema.get("scale") or {}
        return {"measure": "mean_rating", "scale": [scale.get("min"), scale.get("max")], "focus_model": None}, None
    if project.task_type == TaskType.LABELS:
        positive = (schema.get("labels") or [None])[0]
        return {"measure": "label_share", "label": positive, "focus_model": None}, None
    # Pairwise: the headline is the win rate of the model compared most often (ties by name).
    appearances: Counter[str] = Counter()
    if len(frame):
        per_item = frame.drop_duplicates("item")
        appearances.update(m or "A" for m in per_item["model_a"])
        appearances.update(m or "B" for m in per_item["model_b"])
    focus = min(appearances, key=lambda m: (-appearances[m], m)) if appearances else None
    return {"measure": "win_rate", "focus_model": focus}, focus


def _language_quality(project: Project, frame: pd.DataFrame, finals: dict[int, dict[str, Any]], *,
                      focus: str | None, resamples: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    empty = {"value": None, "ci": [None, None], "items": 0}
    if frame.empty:
        return empty, []
    scores = _quality_rows(frame, finals, project)
    models = []
    for model, group in scores.groupby("model", sort=True):
        value, ci = bootstrap_mean(group["score"].to_numpy(), resamples=resamples, seed=seed)
        models.append({"model": model or "(none)", "value": value, "ci": list(ci), "items": int(len(group))})
    if project.task_type == TaskType.PAIRWISE:
        headline = scores[scores["model"] == focus]
    else:
        headline = scores
    if headline.empty:
        return empty, models
    value, ci = bootstrap_mean(headline["score"].to_numpy(), resamples=resamples, seed=seed)
    return {"value": value, "ci": list(ci), "items": int(headline["item"].nunique())}, models


def _language_ranking(project: Project, frame: pd.DataFrame, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if project.task_type != TaskType.PAIRWISE:
        ranked = sorted((m for m in models if m["value"] is not None), key=lambda m: (-m["value"], m["model"]))
        return [{"model": m["model"], "score": m["value"], "rank": k} for k, m in enumerate(ranked, start=1)]
    if frame.empty:
        return []
    decisive = [
        (rater, a or "A", b or "B", (a or "A") if v["choice"] == "a" else (b or "B"))
        for rater, a, b, v in zip(frame["rater"], frame["model_a"], frame["model_b"], frame["value"], strict=True)
        if v.get("choice") in ("a", "b")
    ]
    comparisons = pd.DataFrame.from_records(decisive, columns=["worker", "left", "right", "label"])
    return bradley_terry(comparisons)


def _honeypot_accuracy(project: Project) -> dict[str, dict[str, Any]]:
    rows = Judgment.objects.filter(
        item__project=project, kind=AssignmentKind.HONEYPOT, is_current=True, item__gold__isnull=False
    ).values_list("item__language__tag", "value", "item__gold__value", "item__gold__tolerance")
    hits: Counter[str] = Counter()
    judged: Counter[str] = Counter()
    for tag, value, gold_value, tolerance in rows:
        judged[tag] += 1
        hits[tag] += bool(gold_matches(task_type=project.task_type, gold_value=gold_value,
                                       tolerance=tolerance or {}, value=value))
    return {tag: {"accuracy": hits[tag] / n, "judged": n} for tag, n in judged.items()}


def _throughput_row(row: dict[str, Any] | None, *, now: Any) -> dict[str, Any]:
    if not row or not row["n"]:
        return {"judgments_per_day": None, "judgments_last_7_days": 0, "first_judgment_at": None,
                "last_judgment_at": None}
    first, last = row["first"], row["last"]
    days = max(1.0, (last - first).total_seconds() / 86400)
    return {
        "judgments_per_day": row["n"] / days,
        "judgments_last_7_days": int(row["recent"]),
        "first_judgment_at": first.isoformat(),
        "last_judgment_at": last.isoformat(),
    }


def _throughput(project: Project, *, now: Any) -> dict[str, dict[str, Any]]:
    """Judgments per day over each language's active span, and in the last seven days."""
    rows = (
        Judgment.objects.filter(item__project=project, is_current=True, kind__in=list(COUNTED_JUDGMENT_KINDS))
        .values("item__language__tag")
        .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"),
                  recent=Count("id", filter=Q(created_at__gte=now - timedelta(days=7))))
    )
    return {row["item__language__tag"]: _throughput_row(row, now=now) for row in rows}


def _overlaps(a: list[float | None], b: list[float | None]) -> bool:
    if None in a or None in b:
        return True
    return a[0] <= b[1] and b[0] <= a[1]


def _gaps_and_flags(project: Project, rows: list[dict[str, Any]]) -> str | None:
    measured = [r for r in rows if r["quality"]["value"] is not None]
    best = max(measured, key=lambda r: (r["quality"]["value"], r["language"]), default=None)
    for row in rows:
        flags = row["flags"]
        if row["alpha"] is None:
            flags.append({"code": "no_agreement", "message": "no item has two judgments yet; agreement unknown"})
        elif row["alpha"] < project.agreement_threshold:
            flags.append({
                "code": "low_agreement",
                "message": f"alpha {row['alpha']:.3f} is below the project threshold {project.agreement_threshold:.3f}",
            })
        if best is None or row["quality"]["value"] is None:
            continue
        row["gap"] = best["quality"]["value"] - row["quality"]["value"]
        if row is not best and _overlaps(row["quality"]["ci"], best["quality"]["ci"]):
            flags.append({
                "code": "indistinct",
                "message": f"its quality CI overlaps the best language's ({best['language']}): "
                "too wide to tell the two apart yet",
            })
    return best["language"] if best else None

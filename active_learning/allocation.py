"""Splitting a round's budget across languages.

- ``uniform``: the same share for every language;
- ``proportional``: shares proportional to each language's pool;
- ``parity``: first a random audit slice in every language (10–15% of the budget, sized
  so each language's quality estimate gets a usable confidence interval; the parity
  report estimates quality only from such items), then the rest half equally and half
  in proportion to how far each language's estimated quality lags the best language.

Every language is capped by its pool and by what its qualified evaluators can take;
floors lift small shares. The result sums exactly to the budget (largest remainder) and
is the same for the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from active_learning.selection import largest_remainder

STRATEGIES = ("uniform", "proportional", "parity")
AUDIT_MIN_SHARE = 0.10
AUDIT_MAX_SHARE = 0.15
# Half-width of a 95% CI for a share of bad outputs (worst case p = 0.5): n = z²·p(1−p)/h².
AUDIT_CI_HALFWIDTH = 0.15
Z95 = 1.959964


class AllocationError(ValueError):
    """The budget cannot be split as asked; the message says why."""


@dataclass(frozen=True)
class LanguageSupply:
    """What a language can take in this round, and how it is doing."""

    tag: str
    pool: int
    capacity: int | None = None  # items its qualified evaluators can take; None = no limit
    quality: float | None = None  # estimated model quality in [0, 1], None when unknown
    evaluators: int | None = None

    @property
    def cap(self) -> int:
        return self.pool if self.capacity is None else max(0, min(self.pool, self.capacity))


@dataclass
class LanguageAllocation:
    tag: str
    audit: int
    uncertainty: int
    pool: int
    capacity: int | None
    quality: float | None
    lag: float | None
    evaluators: int | None = None

    @property
    def total(self) -> int:
        return self.audit + self.uncertainty

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["total"] = self.total
        return out


def audit_per_language(halfwidth: float = AUDIT_CI_HALFWIDTH) -> int:
    return math.ceil(Z95**2 * 0.25 / halfwidth**2)


def _fill(weights: np.ndarray, *, caps: np.ndarray, floors: np.ndarray, total: float) -> np.ndarray:
    """Real shares x in [floors, caps] with sum x = total, x = clamp(s · weight) for one scale s
    (water-filling: what a capped language cannot take flows to the others by weight)."""
    weights = np.where(caps > 0, np.maximum(weights, 0) + 1e-9, 0.0)

    def filled(s: float) -> np.ndarray:
        return np.clip(s * weights, floors, caps)

    lo, hi = 0.0, 1.0
    while filled(hi).sum() < total and hi < 1e18:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if filled(mid).sum() < total:
            lo = mid
        else:
            hi = mid
    return filled(hi)


def allocation_compute(
    *,
    languages: Sequence[LanguageSupply],
    budget: int,
    strategy: str,
    seed: int = 0,
    floor: int = 0,
    audit_min_share: float | None = None,
    audit_max_share: float | None = None,
    audit_ci_halfwidth: float = AUDIT_CI_HALFWIDTH,
) -> list[LanguageAllocation]:
    """Split `budget` across `languages`; raises AllocationError with the reason when it cannot."""
    if strategy not in STRATEGIES:
        raise AllocationError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise AllocationError("the budget must be a whole number of at least 1")
    if not languages:
        raise AllocationError("the project has no languages")
    if audit_min_share is None:
        audit_min_share = AUDIT_MIN_SHARE if strategy == "parity" else 0.0
    if audit_max_share is None:
        audit_max_share = max(audit_min_share, AUDIT_MAX_SHARE if strategy == "parity" else 0.0)
    caps, floors = _caps_and_floors(languages, budget=budget, floor=floor)
    # 1. The audit slice: the same number per language, enough for a usable CI where the budget allows.
    audit = _audit_slice(
        caps,
        floors,
        budget=budget,
        min_share=audit_min_share,
        max_share=audit_max_share,
        ci_halfwidth=audit_ci_halfwidth,
        seed=seed,
    )
    # 2. The rest, by strategy.
    quality, lag = _lags(languages)
    weights = _weights(strategy, languages, active=caps > 0, lag=lag)
    rest = budget - int(audit.sum())
    shares = audit + _fill(
        weights, caps=caps - audit, floors=np.maximum(floors - audit, 0), total=rest
    )
    totals = largest_remainder(
        shares, caps=caps, floors=np.maximum(floors, audit), total=budget, seed=seed
    )
    return [
        LanguageAllocation(
            tag=lang.tag,
            audit=int(min(audit[i], totals[i])),
            uncertainty=int(totals[i] - min(audit[i], totals[i])),
            pool=lang.pool,
            capacity=lang.capacity,
            quality=None if not np.isfinite(quality[i]) else round(float(quality[i]), 4),
            lag=None if not np.isfinite(lag[i]) else round(float(lag[i]), 4),
            evaluators=lang.evaluators,
        )
        for i, lang in enumerate(languages)
    ]


def _caps_and_floors(
    languages: Sequence[LanguageSupply], *, budget: int, floor: int
) -> tuple[np.ndarray, np.ndarray]:
    """What each language can take and the least it gets; refused when the budget does not
    fit between them."""
    caps = np.array([lang.cap for lang in languages], dtype=np.int64)
    if caps.sum() < budget:
        detail = ", ".join(f"{lang.tag} {cap}" for lang, cap in zip(languages, caps, strict=True))
        raise AllocationError(
            f"the budget {budget} is more than the languages can take now ({int(caps.sum())}: {detail}); "
            "each language is limited by its pool and its qualified evaluators' capacity"
        )
    floors = np.minimum(caps, max(0, int(floor)))
    if floors.sum() > budget:
        raise AllocationError(
            f"the floor of {floor} per language needs {int(floors.sum())} items, more than the budget {budget}"
        )
    return caps, floors


def _audit_slice(
    caps: np.ndarray,
    floors: np.ndarray,
    *,
    budget: int,
    min_share: float,
    max_share: float,
    ci_halfwidth: float,
    seed: int,
) -> np.ndarray:
    """The audit items per language: the same number in every language that can take them,
    enough for a usable CI where the budget allows, between the shares of the budget."""
    n = len(caps)
    active = caps > 0
    audit = np.zeros(n, dtype=np.int64)
    if max_share <= 0:
        return audit
    wanted = int(active.sum()) * audit_per_language(ci_halfwidth)
    audit_total = int(round(min(max(wanted, min_share * budget), max_share * budget)))
    audit_total = min(audit_total, int(caps.sum()))
    if audit_total > 0:
        even = _fill(active.astype(float), caps=caps, floors=np.zeros(n), total=audit_total)
        audit = largest_remainder(even, caps=caps, total=audit_total, seed=seed)
    # Floors and audit together may not outgrow the budget: trim audit above the floors.
    excess = int(np.maximum(floors, audit).sum()) - budget
    while excess > 0:
        i = int(np.argmax(audit - floors))
        audit[i] -= 1
        excess -= 1
    return audit


def _lags(languages: Sequence[LanguageSupply]) -> tuple[np.ndarray, np.ndarray]:
    """Each language's estimated quality and how far it lags the best one."""
    quality = np.array(
        [np.nan if lang.quality is None else float(lang.quality) for lang in languages]
    )
    lag = np.full(len(languages), np.nan)
    if np.isfinite(quality).any():
        lag = np.nanmax(quality) - quality
        # A language with no quality estimate yet is treated as the most lagging: it is
        # the one we know least about.
        lag = np.where(np.isfinite(lag), lag, np.nanmax(lag))
    return quality, lag


def _weights(
    strategy: str, languages: Sequence[LanguageSupply], *, active: np.ndarray, lag: np.ndarray
) -> np.ndarray:
    """How the budget after the audit is shared: equally, by pool, or (parity) half
    equally and half by lag."""
    if strategy == "uniform":
        return active.astype(float)
    if strategy == "proportional":
        return np.array([lang.pool for lang in languages], dtype=float)
    equal = active / max(1, int(active.sum()))
    lag_known = np.where(active & np.isfinite(lag), lag, 0.0)
    lagging = lag_known / lag_known.sum() if lag_known.sum() > 0 else equal
    return 0.5 * equal + 0.5 * lagging

"""Batch selection inside one language.

With scores: take the top-uncertainty candidates (a few times the batch size), then pick
the batch from them by k-center greedy mixed with uncertainty (each next pick maximises
`mix · uncertainty + (1 − mix) · distance to the nearest pick so far`; Sener & Savarese
2018 for k-center, the mix keeps the batch both uncertain and spread out), so a batch is
not fifty near-duplicates.

Without scores (no labels, no log-probs — a cold start): a representative batch, by
clustering the features and taking the items nearest each centre, round-robin over the
clusters in proportion to their size.

Either way, two items with the same text (after Unicode and whitespace normalisation)
never share a batch while distinct candidates remain.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from active_learning.features import project_dense

DEFAULT_CANDIDATE_FACTOR = 3.0
DEFAULT_MIX = 0.5
MAX_CLUSTERS = 256
CLUSTER_SAMPLE = 20_000


def text_key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """One integer per text; equal texts get equal keys (within one process)."""
    return np.fromiter((hash(text_key(t)) for t in texts), dtype=np.int64, count=len(texts))


def _first_of_each_text(order: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the first item of each distinct text, the others), both in the order given."""
    _, first = np.unique(keys[order], return_index=True)
    keep = np.zeros(len(order), dtype=bool)
    keep[first] = True
    return order[keep], order[~keep]


def _rank01(values: np.ndarray) -> np.ndarray:
    if len(values) <= 1:
        return np.ones(len(values))
    order = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return order / (len(values) - 1)


def kcenter_greedy(
    vectors: np.ndarray, uncertainty: np.ndarray, k: int, *, mix: float = DEFAULT_MIX
) -> np.ndarray:
    """k picks from the rows of `vectors`, starting with the most uncertain one."""
    n = len(vectors)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    u = _rank01(np.asarray(uncertainty, dtype=float))
    vectors = np.asarray(vectors, dtype=np.float64)
    sq = np.einsum("ij,ij->i", vectors, vectors)
    picks = np.empty(k, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    first = int(np.lexsort((np.arange(n), -u))[0])
    picks[0] = first
    taken[first] = True
    nearest = np.maximum(sq + sq[first] - 2 * vectors @ vectors[first], 0.0)
    for step in range(1, k):
        spread = nearest.max()
        objective = mix * u + (1 - mix) * (nearest / spread if spread > 0 else 0.0)
        objective[taken] = -np.inf
        pick = int(np.argmax(objective))
        picks[step] = pick
        taken[pick] = True
        nearest = np.minimum(nearest, np.maximum(sq + sq[pick] - 2 * vectors @ vectors[pick], 0.0))
    return picks


def batch_select(
    *,
    scores: np.ndarray,
    features: Any,
    keys: np.ndarray,
    k: int,
    candidate_factor: float = DEFAULT_CANDIDATE_FACTOR,
    mix: float = DEFAULT_MIX,
    seed: int = 0,
) -> np.ndarray:
    """Indices (into the language's pool) of the batch, in the order they were picked."""
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    scores = np.asarray(scores, dtype=float)
    order = np.lexsort((np.arange(n), -np.nan_to_num(scores, nan=-np.inf)))
    distinct, duplicates = _first_of_each_text(order, keys)
    candidates = distinct[: max(k, math.ceil(k * candidate_factor))]
    if len(candidates) > k and mix < 1:
        vectors = project_dense(features[candidates], seed=seed)
        picked = candidates[kcenter_greedy(vectors, scores[candidates], k, mix=mix)]
    else:
        picked = candidates[:k]
    if len(picked) < k:
        # Fewer distinct texts than the batch: only now may a text repeat.
        picked = np.concatenate([picked, duplicates[: k - len(picked)]])
    return picked


def representative_select(*, features: Any, keys: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A cold-start batch: nearest-to-centre items of k-means clusters, round-robin by cluster size."""
    n = features.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    distinct, duplicates = _first_of_each_text(np.arange(n), keys)
    if len(distinct) <= k:
        return np.concatenate([distinct, duplicates[: k - len(distinct)]])
    from sklearn.cluster import MiniBatchKMeans

    vectors = project_dense(features[distinct], seed=seed)
    n_clusters = min(k, MAX_CLUSTERS)
    rng = np.random.default_rng(seed)
    sample = (
        vectors
        if len(vectors) <= CLUSTER_SAMPLE
        else vectors[rng.choice(len(vectors), CLUSTER_SAMPLE, replace=False)]
    )
    km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=3, batch_size=2048).fit(
        sample
    )
    labels = km.predict(vectors)
    distance = ((vectors - km.cluster_centers_[labels]) ** 2).sum(axis=1)
    members = [np.flatnonzero(labels == c) for c in range(n_clusters)]
    members = [m[np.lexsort((m, distance[m]))] for m in members]
    sizes = np.array([len(m) for m in members], dtype=float)
    quotas = largest_remainder(sizes / sizes.sum() * k, caps=sizes.astype(int), total=k, seed=seed)
    by_size = np.lexsort((np.arange(n_clusters), -sizes))
    picked: list[int] = []
    for round_ in range(int(quotas.max())):
        for c in by_size:
            if quotas[c] > round_:
                picked.append(int(members[c][round_]))
    return distinct[np.asarray(picked, dtype=np.int64)]


def largest_remainder(
    shares: np.ndarray,
    *,
    caps: np.ndarray,
    total: int,
    floors: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Whole numbers close to `shares` that sum to `total`, within [floors, caps].

    Hamilton's method: round down, then hand the leftover units to the largest
    fractional parts; ties go in a seeded random order, so a seed always gives the same
    answer. Assumes sum(floors) ≤ total ≤ sum(caps).
    """
    shares = np.asarray(shares, dtype=float)
    caps = np.asarray(caps, dtype=np.int64)
    floors = (
        np.zeros(len(shares), dtype=np.int64)
        if floors is None
        else np.asarray(floors, dtype=np.int64)
    )
    base = np.clip(np.floor(shares + 1e-9).astype(np.int64), floors, caps)
    left = int(total - base.sum())
    tiebreak = np.random.default_rng(seed).permutation(len(shares))
    if left > 0:
        fraction = shares - base
        while left > 0:
            room = base < caps
            if not room.any():
                break
            order = np.lexsort((tiebreak, -np.where(room, fraction, -np.inf)))
            give = [i for i in order[: min(left, int(room.sum()))] if room[i]]
            for i in give:
                base[i] += 1
                fraction[i] -= 1
            left -= len(give)
    elif left < 0:
        fraction = shares - base
        while left < 0:
            room = base > floors
            if not room.any():
                break
            order = np.lexsort((tiebreak, np.where(room, fraction, np.inf)))
            take = [i for i in order[: min(-left, int(room.sum()))] if room[i]]
            for i in take:
                base[i] -= 1
                fraction[i] += 1
            left += len(take)
    return base

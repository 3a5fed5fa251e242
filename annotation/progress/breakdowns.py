"""Quality per evaluator dialect, item domain, task and code-switching, per language: one
bootstrap for every group of every breakdown of every language.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from annotation.labels import label_scores
from annotation.progress.loading import ProgressData, judgment_dialects
from annotation.progress.options import ci_pair, finite_or_none
from annotation.progress.stats import bootstrap_group_means, unique_inverse

BREAKDOWNS = ("dialect", "domain", "task", "code_switched")

# (dimension, language code, key code, score) of the rows of one breakdown.
_Part = tuple[str, np.ndarray, np.ndarray, np.ndarray]


def quality_breakdowns(
    data: ProgressData,
    quality: np.ndarray,
    head_item: np.ndarray,
    head_score: np.ndarray,
    focus: int,
    *,
    resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Quality per evaluator dialect, item domain, task and code-switching, per language.
    `quality` holds the quality items' positions, (`head_item`, `head_score`) the rows of
    the headline (for pairwise, the `focus` model's side)."""
    out: dict[str, dict[str, Any]] = {tag: {name: [] for name in BREAKDOWNS} for tag in data.tags}
    parts: list[_Part] = []
    names: dict[str, list[str]] = {}
    for name in ("domain", "task", "code_switched"):
        codes, names[name] = data.attributes[name]
        parts.append((name, data.language[head_item], codes[head_item], head_score))
    dialect_part, names["dialect"] = _dialect_part(data, quality, focus)
    parts.append(dialect_part)
    if not any(len(p[1]) for p in parts):
        return out
    _grouped_into(out, data.tags, parts, names, resamples=resamples, seed=seed)
    return out


def _dialect_part(data: ProgressData, quality: np.ndarray, focus: int) -> tuple[_Part, list[str]]:
    """The dialect breakdown's rows and its key names: each dialect's judgments of an item
    scored on their own by the label rule, with (item, dialect) as the unit; no final label
    speaks for a dialect."""
    in_quality = np.zeros(data.n_items, dtype=bool)
    in_quality[quality] = True
    chosen = np.flatnonzero(in_quality[data.j_item])
    dialect, dialects = judgment_dialects(data)
    if len(dialects) == 1:
        # No evaluator gave a dialect: the unit is the item, scored on its judgments alone.
        unit_item = quality
        unit_dialect = np.zeros(len(quality), dtype=np.int64)
        score = data.vote_score[quality]
    elif len(chosen):
        width = len(dialects)
        unit, unit_of = unique_inverse(data.j_item[chosen] * width + dialect[chosen])
        score = label_scores(
            rule=data.rule, item=unit_of, n_items=len(unit), **data.votes_of(chosen)
        )
        unit_item, unit_dialect = unit // width, unit % width
    else:
        unit_item = unit_dialect = np.zeros(0, dtype=np.int64)
        score = np.zeros(0)
    if focus >= 0:
        a = np.flatnonzero(data.model_a[unit_item] == focus)
        b = np.flatnonzero(data.model_b[unit_item] == focus)
        rows = np.concatenate([a, b])
        unit_score = np.concatenate([score[a], 1 - score[b]])
    else:
        rows, unit_score = np.arange(len(unit_item)), score
    return ("dialect", data.language[unit_item[rows]], unit_dialect[rows], unit_score), dialects


def _grouped_into(
    out: dict[str, dict[str, Any]],
    tags: list[str],
    parts: list[_Part],
    names: dict[str, list[str]],
    *,
    resamples: int,
    seed: int,
) -> None:
    """Mean with CI per (language, dimension, key) of every part's rows, into `out`: groups
    ordered by language, dimension and key name, so each list comes sorted."""
    dims = sorted(names)
    width = max(len(n) for n in names.values())
    group = np.concatenate(
        [(lang * len(dims) + dims.index(dim)) * width + key for dim, lang, key, _ in parts]
    )
    scores = np.concatenate([p[3] for p in parts])
    keep = (group >= 0) & np.isfinite(scores)
    # The groups that have rows, numbered in order (a count per possible group, not a sort).
    present = np.flatnonzero(np.bincount(group[keep], minlength=1))
    number = np.zeros(int(present[-1]) + 1 if len(present) else 0, dtype=np.int64)
    number[present] = np.arange(len(present))
    gm = bootstrap_group_means(
        number[group[keep]], scores[keep], n_groups=len(present), resamples=resamples, seed=seed
    )
    ci = gm.ci()
    for g, code in enumerate(present):
        lang, rest = divmod(int(code), len(dims) * width)
        dim, key = divmod(rest, width)
        out[tags[lang]][dims[dim]].append(
            {
                "key": names[dims[dim]][key],
                "items": int(gm.n[g]),
                "value": finite_or_none(gm.mean[g]),
                "ci": ci_pair(ci[g]),
            }
        )

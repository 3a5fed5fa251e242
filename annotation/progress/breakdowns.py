"""Quality per evaluator dialect, item domain, task and code-switching, per language: one
bootstrap for every group of every breakdown.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from annotation.agreement.parity import _quality_rows
from annotation.models import Project
from annotation.progress.loading import headline_rows, judgment_dialects
from annotation.progress.options import finite_or_none
from annotation.progress.stats import bootstrap_group_means


def _grouped(rows: pd.DataFrame, *, resamples: int, seed: int) -> pd.DataFrame:
    """Mean score with CI per (language, dimension, key) of `rows` — one bootstrap for
    every group of every breakdown of every language."""
    codes, groups = pd.factorize(
        pd.MultiIndex.from_frame(rows[["language", "dimension", "key"]]), sort=True
    )
    gm = bootstrap_group_means(
        codes,
        rows["score"].to_numpy(dtype=np.float64),
        n_groups=len(groups),
        resamples=resamples,
        seed=seed,
    )
    ci = gm.ci()
    out = pd.DataFrame(list(groups), columns=["language", "dimension", "key"])
    out["items"], out["value"], out["lo"], out["hi"] = gm.n, gm.mean, ci[:, 0], ci[:, 1]
    return out


BREAKDOWNS = ("dialect", "domain", "task", "code_switched")


def quality_breakdowns(
    project: Project,
    quality: pd.DataFrame,
    headline: pd.DataFrame,
    finals: dict[int, Any],
    focus: str | None,
    tags: list[str],
    *,
    resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Quality per evaluator dialect, item domain, task and code-switching, per language."""
    out: dict[str, dict[str, Any]] = {tag: {name: [] for name in BREAKDOWNS} for tag in tags}
    parts = (
        [
            headline[["language", name, "score"]]
            .rename(columns={name: "key"})
            .assign(dimension=name)
            for name in ("domain", "task", "code_switched")
        ]
        if len(headline)
        else []
    )
    if len(quality):
        # Dialect: each dialect's judgments scored per item on their own — one pass, with
        # (item, dialect) as the unit.
        dialect_codes, dialects = pd.factorize(judgment_dialects(quality), sort=True)
        pseudo = quality.assign(item=quality["item"].to_numpy() * len(dialects) + dialect_codes)
        rows = headline_rows(project, _quality_rows(pseudo, {}, project), focus)
        language = quality.drop_duplicates("item").set_index("item")["language"]
        items = rows["item"].to_numpy() // len(dialects)
        parts.append(
            pd.DataFrame(
                {
                    "language": language.loc[items].to_numpy(),
                    "key": dialects[rows["item"].to_numpy() % len(dialects)],
                    "score": rows["score"].to_numpy(),
                    "dimension": "dialect",
                }
            )
        )
    if not parts:
        return out
    table = _grouped(pd.concat(parts, ignore_index=True), resamples=resamples, seed=seed)
    for r in table.itertuples(index=False):
        if r.language in out:
            out[r.language][r.dimension].append(
                {
                    "key": str(r.key),
                    "items": int(r.items),
                    "value": finite_or_none(r.value),
                    "ci": [finite_or_none(r.lo), finite_or_none(r.hi)],
                }
            )
    return out

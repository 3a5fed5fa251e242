"""Each language before and after the latest active-learning round: as it stood when the
round ran (its judgments and final labels from before then) and as it stands now.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from annotation.audit import AL_ROUND_RUN
from annotation.models import AuditEvent, Language, Project
from annotation.progress.loading import ProgressData
from annotation.progress.options import ci_pair, finite_or_none
from annotation.progress.stats import GroupMeans, bootstrap_group_means

STATES = ("before", "after")


def last_round(project: Project) -> AuditEvent | None:
    """The project's latest active-learning round, as the audit event it left."""
    return (
        AuditEvent.objects.filter(project=project, verb=AL_ROUND_RUN)
        .order_by("-created_at", "-pk")
        .first()
    )


def since_round(
    data: ProgressData,
    event: AuditEvent,
    focus: int,
    languages: list[Language],
    *,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Each language as it stood when the round ran and as it stands now: items judged,
    and the headline quality with its interval and the interval's width. The round's
    picks that an uncertainty selector chose are judged items but, as everywhere in the
    report, not quality items."""
    when = event.created_at.timestamp()
    states = (data.scores_at(when), data.score)
    judged = [data.judged_at(when), np.ones(data.n_items, dtype=bool)]
    n_languages = len(data.tags)
    judged_count, groups, values = [], [], []
    for k, score in enumerate(states):
        item, value = _headline_at(data, score, judged[k], focus)
        mine = data.language[item] >= 0
        groups.append(data.language[item][mine] * 2 + k)
        values.append(value[mine])
        judged_languages = data.language[judged[k]]
        judged_count.append(
            np.bincount(judged_languages[judged_languages >= 0], minlength=n_languages)
        )
    gm = bootstrap_group_means(
        np.concatenate(groups),
        np.concatenate(values),
        n_groups=2 * n_languages,
        resamples=resamples,
        seed=seed,
    )
    ci = gm.ci()
    rows = [
        {
            "language": lang.tag,
            "name": lang.name,
            "direction": lang.direction,
            **_states(gm, ci, judged_count, li),
        }
        for li, lang in enumerate(languages)
    ]
    return {
        "round": event.object_id,
        "at": event.created_at.isoformat(),
        "strategy": event.data.get("strategy"),
        "selected": event.data.get("selected"),
        "languages": rows,
    }


def _headline_at(
    data: ProgressData, score: np.ndarray, judged: np.ndarray, focus: int
) -> tuple[np.ndarray, np.ndarray]:
    """The headline's (item, value) rows under these scores: the quality items judged by
    then; for pairwise, the focus model's side."""
    quality = np.flatnonzero(~data.uncertainty & np.isfinite(score) & judged)
    if focus < 0:
        return quality, score[quality]
    a = quality[data.model_a[quality] == focus]
    b = quality[data.model_b[quality] == focus]
    return np.concatenate([a, b]), np.concatenate([score[a], 1 - score[b]])


def _states(
    gm: GroupMeans, ci: np.ndarray, judged_count: list[np.ndarray], li: int
) -> dict[str, Any]:
    """One language's state before and after: items judged, and its quality items'
    mean with the interval and its width."""
    out = {}
    for k, name in enumerate(STATES):
        g = li * 2 + k
        lo, hi = ci_pair(ci[g])
        out[name] = {
            "items_judged": int(judged_count[k][li]),
            "items": int(gm.n[g]),
            "value": finite_or_none(gm.mean[g]),
            "ci": [lo, hi],
            "ci_width": hi - lo if lo is not None and hi is not None else None,
        }
    return out

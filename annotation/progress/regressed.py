"""The items that got worse from one model version or period to the next, and sending
judged items to adjudication.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.audit import audit_record
from annotation.models import Item, ItemStatus, Project, TaskType
from annotation.progress.loading import ProgressData, progress_data_load
from annotation.progress.options import REGRESSED_LIMIT, progress_args_clean
from annotation.types import Actor


def regressed_items(
    *, project: Project, language: str, by: str, key: str, previous: str, period: str = "week"
) -> list[dict[str, Any]]:
    """Items of `key` (a model version or period start) in `language` that did worse than
    under `previous`: where the same prompt (prompt_id) was judged under both, the items
    whose score fell; otherwise the items of `key` scoring below the mean of `previous`.
    Worst first."""
    args = progress_args_clean(by=by, period=period)
    data = progress_data_load(
        project=project, language=language, with_created=args["by"] == "period", with_prompt=True
    )
    if not data.n_items:
        return []
    scored = _scored(data, by=args["by"], period=args["period"])
    new, old = scored[scored["key"] == key], scored[scored["key"] == previous]
    if new.empty or old.empty:
        return []
    old_by_prompt = old[old["prompt_id"] != ""].groupby("prompt_id")["score"].mean()
    matched = new["prompt_id"].isin(old_by_prompt.index) & (new["prompt_id"] != "")
    if matched.any():
        worse = new[matched].assign(
            before=old_by_prompt.loc[new.loc[matched, "prompt_id"]].to_numpy()
        )
    else:
        worse = new.assign(before=float(old["score"].mean()))
    worse = worse[worse["score"] < worse["before"]].assign(drop=lambda f: f["before"] - f["score"])
    worse = worse.sort_values(["drop", "item"], ascending=[False, True]).drop_duplicates("item")[
        :REGRESSED_LIMIT
    ]
    items = Item.objects.in_bulk(worse["item"].tolist())
    return [
        {
            "item": items[int(r.item)],
            "score": float(r.score),
            "before": float(r.before),
            "matched_prompt": bool(matched.any()),
        }
        for r in worse.itertuples()
        if int(r.item) in items
    ]


def _scored(data: ProgressData, *, by: str, period: str) -> pd.DataFrame:
    """(item id, key, score, prompt_id) per scored item and model: for pairwise, each
    side's score (1 − the item's for side B)."""
    every = np.flatnonzero(np.isfinite(data.score))
    if data.project.task_type == TaskType.PAIRWISE:
        item = np.concatenate([every, every])
        model = np.concatenate([data.model_a[every], data.model_b[every]])
        score = np.concatenate([data.score[every], 1 - data.score[every]])
    else:
        item, model, score = every, data.model[every], data.score[every]
    if by == "period":
        item_period, period_names = data.item_periods(period)
        names = np.array(period_names, dtype=object)[item_period[item]]
    else:
        names = np.array(data.models, dtype=object)[model]
    assert data.prompt_id is not None
    return pd.DataFrame(
        {
            "item": data.item_id[item],
            "key": names,
            "score": score,
            "prompt_id": data.prompt_id[item],
        }
    )


def items_adjudication_send(*, project: Project, item_ids: Sequence[int], actor: Actor) -> int:
    """Send judged items (status done) of the project to the adjudication queue; returns
    how many moved. Items in any other status stay as they are."""
    with transaction.atomic():
        moved = Item.objects.filter(
            project=project, pk__in=list(item_ids), status=ItemStatus.DONE
        ).update(
            status=ItemStatus.ADJUDICATION,
            updated_at=timezone.now(),
            # Waiting for adjudication, an item has no line: the export retracts it.
            label_version=F("label_version") + 1,
        )
        audit_record(
            verb="items.adjudication_send",
            actor=actor,
            project=project,
            data={"requested": len(item_ids), "moved": moved},
        )
    return moved

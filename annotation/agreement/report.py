"""The agreement report: alpha with its CI, overall and by language, evaluator, model or round."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from django.core.exceptions import ValidationError

from annotation.agreement.alpha import CONFIDENCE, MAX_RESAMPLES
from annotation.agreement.evaluators import _evaluator_groups
from annotation.agreement.loading import (
    CALIBRATION_KINDS,
    METADATA_PREFIX,
    _alpha_summary,
    _by_resolve,
    _Judgments,
    _judgments_load,
    _language_resolve,
    _Scheme,
    level_resolve,
)
from annotation.agreement.types import AgreementReport
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    Project,
)

# =======================================================================================
# The agreement report
# =======================================================================================


def _group_key_column(data: _Judgments, by: str) -> pd.Series:
    frame = data.frame
    if by == "language":
        return frame["language"]
    if by == "model":
        single = frame["model"].fillna("")
        pair = [
            " vs ".join(sorted(p for p in (a, b) if p))
            for a, b in zip(frame["model_a"], frame["model_b"], strict=True)
        ]
        keyed = np.where(single != "", single, pair)
        return pd.Series(keyed, index=frame.index).replace("", "(none)")
    if by == "round":
        version = frame["guideline_version"].fillna("").replace("", "(none)")
        return frame["language"] + " · " + version
    key = by[len(METADATA_PREFIX) :]
    return frame["metadata"].map(
        lambda m: _metadata_label((m or {}).get(key) if isinstance(m, dict) else None)
    )


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
) -> AgreementReport:
    """Krippendorff's alpha with a bootstrap CI for the project (or one language), and
    optionally broken down `by` language, evaluator, model, round or metadata:<key>.

    Raises ValidationError (with a message naming the argument) for a bad level, language or by.
    """
    level = level_resolve(project=project, level=level)
    language = _language_resolve(project, language)
    by = _by_resolve(by)
    if (
        not isinstance(resamples, int)
        or isinstance(resamples, bool)
        or not 0 <= resamples <= MAX_RESAMPLES
    ):
        raise ValidationError(f"resamples must be a whole number from 0 to {MAX_RESAMPLES}")
    scheme = _Scheme.of(project, level)
    item_fields: tuple[str, ...] = ()
    if by == "model":
        item_fields = ("model", "model_a", "model_b")
    elif by and by.startswith(METADATA_PREFIX):
        item_fields = ("metadata",)
    data = _judgments_load(project, language=language, item_fields=item_fields)
    report: AgreementReport = {
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
        groups, kappas = _evaluator_groups(
            data, scheme, overall=report["alpha"], resamples=resamples, seed=seed
        )
        report["groups"] = groups
        report["kappa"] = kappas
        return report
    if by == "round":
        data = _round_judgments(project, language)
        report["round_kinds"] = list(CALIBRATION_KINDS)
    keys = _group_key_column(data, by) if len(data) else pd.Series(dtype=str)
    groups = []
    for key in sorted(keys.unique()):
        summary = _alpha_summary(
            data.subset((keys == key).to_numpy()), scheme, resamples=resamples, seed=seed
        )
        groups.append({"key": key, "label": key, **summary})
    report["groups"] = groups
    return report


def _round_judgments(project: Project, language: str | None) -> _Judgments:
    """Calibration rounds are measured on calibration judgments (a round is a language
    and a guideline version); one evaluator's retries keep only the latest judgment."""
    data = _judgments_load(project, language=language, kinds=CALIBRATION_KINDS, with_created=True)
    if not len(data):
        return data
    frame = data.frame.assign(_group=_group_key_column(data, "round"))
    frame = frame.sort_values("created_at").drop_duplicates(
        ["_group", "item", "rater"], keep="last"
    )
    return _Judgments(frame, data.rater_labels)

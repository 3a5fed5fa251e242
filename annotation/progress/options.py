"""A progress report's arguments, checked once for the API, the pages and the CLI, and the
constants its figures share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.core.exceptions import ValidationError

from annotation.agreement.alpha import MAX_RESAMPLES

BY_CHOICES = ("model", "period")


PERIODS = ("week", "month")


NONE_KEY = "(none)"


VERDICTS = {1: "better", -1: "worse", 0: "no_evidence"}


GAP_VERDICTS = {1: "widened", -1: "narrowed", 0: "no_evidence"}


# A change smaller than this share of the measure's range is not worth more items to call.
MIN_EFFECT_SHARE = 0.05


# The regressed-items list shows at most this many items.
REGRESSED_LIMIT = 200


SHARE_SALT = "annotation.progress.share"


SHARE_MAX_DAYS = 90


def finite_or_none(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def ci_pair(ci: np.ndarray) -> list[float | None]:
    return [finite_or_none(ci[0]), finite_or_none(ci[1])]


def progress_args_clean(
    *, by: Any, period: Any = None, resamples: Any = 1000, seed: Any = 0
) -> dict[str, Any]:
    """Check the report's arguments; ValidationError names the bad one (API and CLI)."""
    if by not in BY_CHOICES:
        raise ValidationError(f"by must be one of {', '.join(BY_CHOICES)}, not {by!r}")
    period = period or "week"
    if period not in PERIODS:
        raise ValidationError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    if (
        isinstance(resamples, bool)
        or not isinstance(resamples, int)
        or not 0 <= resamples <= MAX_RESAMPLES
    ):
        raise ValidationError(f"resamples must be a whole number from 0 to {MAX_RESAMPLES}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError("seed must be a whole number ≥ 0")
    return {"by": by, "period": period, "resamples": resamples, "seed": seed}

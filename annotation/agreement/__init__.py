"""Agreement, aggregation and the per-language parity report.

One subsystem per module: `alpha` (the numeric core, free of Django), `loading` (the
value scheme and the judgments as a frame), `evaluators` (kappa, each evaluator against
the others), `report` (the agreement report), `aggregation` (item labels, Dawid–Skene,
Bradley–Terry) and `parity` (the per-language parity report).

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

from annotation.agreement.aggregation import (
    AGGREGATION_METHODS,
    FittedChoices,
    bradley_terry,
    dawid_skene_choices,
    item_labels,
)
from annotation.agreement.alpha import (
    CONFIDENCE,
    LEVELS,
    AlphaResult,
    alpha_with_ci,
    bootstrap_mean,
    matrix_alpha,
)
from annotation.agreement.evaluators import kappa_matrix
from annotation.agreement.loading import BREAKDOWNS, METADATA_PREFIX, level_resolve
from annotation.agreement.parity import parity_report
from annotation.agreement.report import agreement_report

__all__ = [
    "AGGREGATION_METHODS",
    "BREAKDOWNS",
    "CONFIDENCE",
    "LEVELS",
    "METADATA_PREFIX",
    "AlphaResult",
    "FittedChoices",
    "agreement_report",
    "alpha_with_ci",
    "bootstrap_mean",
    "bradley_terry",
    "dawid_skene_choices",
    "item_labels",
    "kappa_matrix",
    "level_resolve",
    "matrix_alpha",
    "parity_report",
]

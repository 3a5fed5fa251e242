"""The parity report over time: per language, quality by model version or by period of
judgment with bootstrap CIs, the change from the previous version or period, the gap to
the best language and whether it narrowed; Bradley–Terry strengths for pairwise
projects; agreement per guideline version and calibration round; breakdowns by
evaluator dialect, item domain and task, and code-switching; each language before and
after the latest active-learning round; and what to do next.

Quality is measured as in the snapshot report (`annotation.agreement.parity_report`):
one score per item — its label under the project's one label rule, as a number
(`annotation.labels.label_score`; for pairwise, per model: how far the label favours that
model's side) — from items not picked by an uncertainty selector, with a final label in
place of its item's judgments. An item belongs to the period of its latest counted
judgment. The data are read as arrays (`loading`); the maths is in
`annotation.progress.stats` (no Django).

One subsystem per module: `options` (the arguments, checked once), `columns` (a query's
rows read in bulk as columns and codes), `loading` (the judgments and items as arrays,
each item's score under the label rule, periods, attributes and dialects), `report` (the
report), `breakdowns`, `since_round` (before and after an active-learning round),
`actions` (what to do next), `regressed` (items that got worse), `sharing` (CSV and
signed links), `stats` (the maths, free of Django) and `charts` (the report's SVG
charts).
"""

from annotation.progress.options import BY_CHOICES, PERIODS, SHARE_MAX_DAYS, progress_args_clean
from annotation.progress.regressed import items_adjudication_send, regressed_items
from annotation.progress.report import progress_report
from annotation.progress.sharing import progress_csv, share_link_create, share_link_open

__all__ = [
    "BY_CHOICES",
    "PERIODS",
    "SHARE_MAX_DAYS",
    "items_adjudication_send",
    "progress_args_clean",
    "progress_csv",
    "progress_report",
    "regressed_items",
    "share_link_create",
    "share_link_open",
]

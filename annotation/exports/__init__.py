"""Exports: preference data for training, raw judgments, and the data card.

One subsystem per module:
- `marks`: which items an export contains (settled items), the `since` cursor, and
  marking what changed since the last pull;
- `rows`: reading marked items, their votes gathered by the database, from a server-side
  cursor;
- `preferences`: a pull's options, its lines (pairs or unpaired, TRL's formats) and its
  retractions;
- `writers`: JSON Lines, CSV and Parquet, streamed with flat memory;
- `judgments`: the raw judgment export;
- `datacard`: what an export contains.

Incremental pulls: every change to an item's line (new, label flipped, tie decided,
agreement crossing a filter, a revision, an adjudication, made gold) marks the item past
the cursor. A pipeline pulls `preferences?since=C` (the current line of every item
changed since C that qualifies under the pull's filters), then `retractions?since=C` with
the same filters (the line keys of items changed since C that no longer qualify), applies
the retractions, upserts the lines by `item_id`, and keeps the preferences' cursor for the
next pull: over any sequence of pulls the result equals a full pull.
"""

from annotation.exports.datacard import datacard_build, datacard_markdown
from annotation.exports.judgments import JUDGMENT_FORMATS, judgment_export
from annotation.exports.marks import (
    export_cursor_decode,
    export_cursor_encode,
    export_marks_advance,
    export_marks_refresh,
)
from annotation.exports.preferences import (
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_TEST_FRACTION,
    MARGINS,
    METHODS,
    PAIR_COLUMNS,
    PAIR_SIGNAL_COLUMNS,
    PAIRINGS,
    PREFERENCE_FORMATS,
    SHAPES,
    SPLITS,
    STYLES,
    UNPAIRED_COLUMNS,
    UNPAIRED_SIGNAL_COLUMNS,
    PreferenceExport,
    PreferenceOptions,
    preference_export,
    preference_options,
    preference_retractions,
)
from annotation.exports.writers import JUDGMENT_COLUMNS, csv_stream, jsonl_stream, parquet_stream

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "DEFAULT_TEST_FRACTION",
    "JUDGMENT_COLUMNS",
    "JUDGMENT_FORMATS",
    "MARGINS",
    "METHODS",
    "PAIRINGS",
    "PAIR_COLUMNS",
    "PAIR_SIGNAL_COLUMNS",
    "PREFERENCE_FORMATS",
    "SHAPES",
    "SPLITS",
    "STYLES",
    "UNPAIRED_COLUMNS",
    "UNPAIRED_SIGNAL_COLUMNS",
    "PreferenceExport",
    "PreferenceOptions",
    "csv_stream",
    "datacard_build",
    "datacard_markdown",
    "export_cursor_decode",
    "export_cursor_encode",
    "export_marks_advance",
    "export_marks_refresh",
    "judgment_export",
    "jsonl_stream",
    "parquet_stream",
    "preference_export",
    "preference_options",
    "preference_retractions",
]

"""Validation and bulk import of items (the CLI and the REST API share this module).

A batch is atomic: every line is validated, every bad line is reported with its number,
field and reason, and if any line is bad nothing of the batch is stored. Import is
idempotent by `external_id`: the same content again is a no-op; changed content updates
an item that has no judgments yet and is refused (a conflict) for one that has.
Lines are read as a stream and written in chunks inside one transaction, so memory stays
flat however long the batch is.

One subsystem per module: `batch` (reading JSON Lines, line errors, the all-or-nothing
run), `item_lines` (what an item line may hold, its validation and content hash), `items`
(the item import: classify each chunk, then write it), `pg_copy` (new items by COPY on
PostgreSQL) and `judgments` (historical judgments by external raters).
"""

from annotation.imports.batch import ImportRejected, ImportResult, LineError, jsonl_records
from annotation.imports.items import items_import, items_statistics_refresh
from annotation.imports.judgments import judgments_import

__all__ = [
    "ImportRejected",
    "ImportResult",
    "LineError",
    "items_import",
    "items_statistics_refresh",
    "jsonl_records",
    "judgments_import",
]

"""Prometheus metrics (prometheus-client), served at /metrics.

Counters are incremented where the work happens. Under gunicorn with several worker
processes set PROMETHEUS_MULTIPROC_DIR to an empty folder (deploy/gunicorn.conf.py
clears it at start) so /metrics adds up every process's counts. Queue depth and the
oldest waiting item are read from the database when /metrics is scraped, so every web
process reports the same figures.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ENQUEUE_FAILURES = Counter(
    "parity_enqueue_failures_total", "Task messages the broker could not take (left pending for the sweep)", ["task"]
)
TASK_FAILURES = Counter("parity_task_failures_total", "Background tasks that raised", ["task"])
SWEEP_RESENT = Counter("parity_sweep_resent_total", "Pending background work the sweep sent again", ["kind"])
CLAIMS = Counter("parity_claims_total", "Items claimed from the queue", ["project", "language"])
JUDGMENTS = Counter("parity_judgments_total", "Judgments submitted", ["project", "language"])
LEASE_EXPIRIES = Counter("parity_lease_expiries_total", "Leases that expired and gave their slot back")
IMPORT_ROWS = Counter("parity_import_rows_total", "Rows imported", ["kind"])
IMPORT_SECONDS = Histogram("parity_import_seconds", "Duration of an import", ["kind"])
EXPORT_ROWS = Counter("parity_export_rows_total", "Rows exported", ["kind"])
EXPORT_SECONDS = Histogram("parity_export_seconds", "Duration of an export", ["kind"])

"""Prometheus metrics (prometheus-client), served at /metrics.

Counters are incremented where the work happens. Under gunicorn with several worker
processes set PROMETHEUS_MULTIPROC_DIR to an empty folder (deploy/gunicorn.conf.py
clears it at start) so /metrics adds up every process's counts. Queue depth and the
oldest waiting item are read from the database when /metrics is scraped, so every web
process reports the same figures.

Access: a bearer token (METRICS_TOKEN) or a client address in METRICS_ALLOWED_IPS
(addresses or networks; loopback by default). Anyone else gets a 404.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

ENQUEUE_FAILURES = Counter(
    "parity_enqueue_failures",
    "Task messages the broker could not take (left pending for the sweep)",
    ["task"],
)
TASK_FAILURES = Counter("parity_task_failures", "Background tasks that raised", ["task"])
SWEEP_RESENT = Counter(
    "parity_sweep_resent", "Pending background work the sweep sent again", ["kind"]
)
CLAIMS = Counter("parity_claims", "Items leased to evaluators", ["project"])
JUDGMENTS = Counter("parity_judgments", "Judgments submitted by evaluators", ["project"])
LEASE_EXPIRIES = Counter("parity_lease_expiries", "Leases that expired and gave their slot back")
IMPORT_ROWS = Counter(
    "parity_import_rows", "Lines imported (created, updated or unchanged)", ["kind"]
)
IMPORT_SECONDS = Histogram(
    "parity_import_seconds",
    "Duration of an import",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 180),
)
EXPORT_ROWS = Counter("parity_export_rows", "Lines streamed by exports (JSON Lines)", ["kind"])
EXPORT_SECONDS = Histogram(
    "parity_export_seconds",
    "Duration of a streamed export",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 180),
)


def import_observe(*, kind: str, rows: int, seconds: float) -> None:
    IMPORT_ROWS.labels(kind=kind).inc(rows)
    IMPORT_SECONDS.labels(kind=kind).observe(seconds)


def export_counted(chunks: Iterable[Any], *, kind: str, lines: bool) -> Iterator[Any]:
    """Pass a streamed export through, counting its lines and timing it to the last byte."""
    start = time.perf_counter()
    rows = 0
    try:
        for chunk in chunks:
            if lines and isinstance(chunk, bytes):
                rows += chunk.count(b"\n")
            elif lines and isinstance(chunk, str):
                rows += chunk.count("\n")
            yield chunk
    finally:
        EXPORT_ROWS.labels(kind=kind).inc(rows)
        EXPORT_SECONDS.labels(kind=kind).observe(time.perf_counter() - start)


class QueueCollector:
    """Per project and language: open slots waiting and the age of the oldest waiting item."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "parity_queue_depth", "Open judgment slots waiting", labels=["project", "language"]
        )
        oldest = GaugeMetricFamily(
            "parity_queue_oldest_seconds",
            "Age of the oldest item still waiting (since import)",
            labels=["project", "language"],
        )
        from annotation.models import Item, ItemStatus

        # Served by the partial index item_claimable (queued, open slots, not gold).
        rows = (
            Item.objects.filter(status=ItemStatus.QUEUED, open_slots__gt=0, is_gold=False)
            .order_by()
            .values_list("project__slug", "language__tag")
        )
        from django.db.models import Min, Sum

        now = time.time()
        for slug, tag, slots, first in rows.annotate(
            slots=Sum("open_slots"), first=Min("created_at")
        ):
            depth.add_metric([slug, tag], float(slots or 0))
            oldest.add_metric([slug, tag], max(0.0, now - first.timestamp()) if first else 0.0)
        yield depth
        yield oldest


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_IPS
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise Http404("No page here.")
    registry = _registry()
    body = generate_latest(registry)
    queue = CollectorRegistry()
    queue.register(QueueCollector())
    body += generate_latest(queue)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)

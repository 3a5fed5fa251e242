"""Handing work to a Celery worker without ever failing or delaying the request.

The work a message stands for is always committed first and recorded as pending in the
database (an item without a language check, a round `queued`), so a lost message loses
nothing: the sweep (`background_sweep`, on Celery beat or cron) finds pending work and
sends it again. A broker that is down therefore costs a log line, not a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_failure
from django.conf import settings
from django.db import transaction

from annotation import metrics

logger = logging.getLogger("parity.background")


@task_failure.connect(weak=False, dispatch_uid="parity.task_failure_count")
def _task_failed(sender: Any = None, **kwargs: Any) -> None:
    metrics.TASK_FAILURES.labels(task=getattr(sender, "name", "unknown")).inc()


def broker_configured() -> bool:
    return bool(settings.CELERY_BROKER_URL)


def task_send(task: Any, *args: Any, task_id: str | None = None) -> bool:
    """Send a task message now; False (logged) when the broker cannot take it.

    No publish retries and a bounded connect (settings: CELERY_BROKER_CONNECTION_TIMEOUT),
    so a broker that is down answers in about that long at worst."""
    try:
        task.apply_async(args=args, task_id=task_id, retry=False)
    except Exception as exc:  # any broker or network failure: the sweep re-sends
        logger.warning(
            "broker unavailable, %s left pending for the sweep: %s: %s",
            task.name,
            type(exc).__name__,
            exc,
        )
        metrics.ENQUEUE_FAILURES.labels(task=task.name).inc()
        return False
    return True


def task_send_on_commit(task: Any, *args: Any) -> None:
    """Send a task message once the current transaction commits (a worker must find the
    rows it names); a broker failure then is logged, never raised into the request."""
    transaction.on_commit(lambda: task_send(task, *args))

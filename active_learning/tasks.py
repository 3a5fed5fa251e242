"""Background work: rounds and committee retraining on Celery workers.

The tasks are thin: each calls the same plain function the management command calls.
`round_launch` is what the API and the lead page use. With a broker configured
(settings.CELERY_BROKER_URL) it records a waiting round and hands its id to a worker
after the request's transaction commits, so scoring and training never run inside a web
request. Without a broker (a laptop, the SQLite demo) there is no worker to hand it to,
and the round runs inline in the request — the same function, just in this process.

With a result backend too (settings.CELERY_RESULT_BACKEND), a worker scores the pool in
chunks as a chord: `round_run` trains or loads the models once and splits the pool into
chunks of settings.PARITY_AL_SCORE_CHUNK items; `round_score_chunk` scores one chunk on
any worker (features, LM rescoring, every scorer — a value depends only on its own item);
`round_finish` ranks within each language, allocates and selects once, and queues the
batch. Without a result backend a chord cannot gather, and one worker runs the whole round.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import chord, shared_task
from django.conf import settings

from active_learning.models import SelectionRound
from active_learning.round_runs import (
    round_chunk_score,
    round_create_queued,
    round_failure_recorded,
    round_finish_chunks,
    round_mark_failed,
    round_prepare_queued,
    round_run_queued,
    rounds_waiting,
)
from active_learning.rounds import RoundRequest, round_execute
from active_learning.training import committee_retrain
from annotation import metrics
from annotation.background import broker_configured, task_send, task_send_on_commit
from annotation.exports.marks import export_marks_refresh
from annotation.language_check import language_checks_resend
from annotation.models import Project
from annotation.types import Actor

logger = logging.getLogger("parity.background")


@shared_task(name="active_learning.round_run", bind=True)
def round_run(self: Any, round_id: int) -> dict[str, Any]:
    # Late ack (settings): a worker killed mid-round leaves the message unacknowledged, the
    # broker hands it out again with the same id, and round_run_queued lets that id retake it.
    if chunked_scoring_available():
        return round_dispatch_chunks(round_id)
    selection_round = round_run_queued(round_id=round_id, task_id=self.request.id or "")
    if selection_round is None:
        return {"round": round_id, "status": "already taken"}
    return {
        "round": selection_round.pk,
        "status": selection_round.status,
        "selected": selection_round.summary.get("selected"),
    }


def round_dispatch_chunks(round_id: int) -> dict[str, Any]:
    prepared = round_prepare_queued(round_id=round_id)
    if prepared is None:
        return {"round": round_id, "status": "already taken"}
    size = max(1, int(settings.PARITY_AL_SCORE_CHUNK))
    chunks = [
        prepared.pool_ids[start : start + size] for start in range(0, len(prepared.pool_ids), size)
    ]
    callback = round_finish.s(round_id).on_error(round_chunks_failed.s(round_id=round_id))
    # On workers a failing chunk reaches the errback; run eagerly, it raises right here.
    with round_failure_recorded(round_id=round_id):
        chord([round_score_chunk.s(round_id, chunk) for chunk in chunks])(callback)
    return {"round": round_id, "status": "scoring", "chunks": len(chunks)}


@shared_task(name="active_learning.round_score_chunk", acks_late=True)
def round_score_chunk(round_id: int, item_ids: list[int]) -> dict[str, Any]:
    return round_chunk_score(round_id=round_id, item_ids=item_ids).as_dict()


@shared_task(name="active_learning.round_finish", acks_late=True)
def round_finish(chunks: list[dict[str, Any]], round_id: int) -> dict[str, Any]:
    selection_round = round_finish_chunks(round_id=round_id, chunks=chunks)
    return {
        "round": selection_round.pk,
        "status": selection_round.status,
        "selected": selection_round.summary.get("selected"),
    }


@shared_task(name="active_learning.round_chunks_failed")
def round_chunks_failed(*args: Any, round_id: int) -> None:
    """A chunk (or the finishing step) failed: the round says so, the pool is untouched."""
    exc = next(
        (a for a in args if isinstance(a, BaseException)), RuntimeError("a scoring chunk failed")
    )
    round_mark_failed(round_id=round_id, exc=exc)


@shared_task(name="active_learning.committee_retrain")
def committee_retrain_task(
    project_id: int, parameters: dict[str, Any] | None = None, seed: int = 0
) -> dict[str, Any]:
    project = Project.objects.get(pk=project_id)
    version = committee_retrain(project=project, parameters=parameters, seed=seed)
    if version is None:
        return {"project": project.slug, "model_version": None}
    return {"project": project.slug, "model_version": version.number, "accuracy": version.accuracy}


@shared_task(name="active_learning.background_sweep")
def background_sweep_task() -> dict[str, int]:
    return background_sweep()


def chunked_scoring_available() -> bool:
    """A chord needs a broker to fan out and a result backend to gather."""
    return broker_configured() and bool(settings.CELERY_RESULT_BACKEND)


def round_launch(
    *, request: RoundRequest, actor: Actor = None, token: Any = None
) -> SelectionRound:
    """Run a checked round request: on a worker when a broker is configured (the round is
    returned waiting), inline otherwise (returned done). A broker that is down leaves the
    round waiting for the sweep; the request is answered all the same."""
    if not broker_configured():
        return round_execute(request=request, actor=actor, token=token)
    selection_round = round_create_queued(request=request, actor=actor, token=token)
    # Only after commit: a worker must find the round row when the message reaches it.
    task_send_on_commit(round_run, selection_round.pk)
    return selection_round


def committee_retrain_launch(
    *, project: Project, parameters: dict[str, Any] | None = None, seed: int = 0
) -> None:
    """Retrain on a worker when a broker is configured, inline otherwise."""
    if not broker_configured():
        committee_retrain(project=project, parameters=parameters, seed=seed)
        return
    task_send_on_commit(committee_retrain_task, project.pk, parameters, seed)


def background_sweep(*, older_than: timedelta | None = None) -> dict[str, int]:
    """Send again what a lost message left pending: language checks of imported items and
    rounds still waiting (or running past the stale limit); and mark what changed for the
    preference export (`export_marks_refresh`), so that a pull streams at once. Runs from
    Celery beat and from `manage.py background_sweep`; without a broker it does the work
    here. Every task it sends is idempotent, so sending one twice is harmless."""
    if older_than is None:
        older_than = timedelta(seconds=settings.PARITY_SWEEP_SECONDS)
    checks = language_checks_resend(older_than=older_than)
    rounds = 0
    for selection_round in rounds_waiting(older_than=older_than):
        rounds += 1
        if not broker_configured():
            try:
                round_run_queued(round_id=selection_round.pk, task_id=selection_round.task_id)
            except Exception:
                logger.exception("round %s failed", selection_round.pk)
            continue
        # A stale running round is resent under its own message id, which may retake it.
        if not task_send(round_run, selection_round.pk, task_id=selection_round.task_id or None):
            break
    if checks:
        metrics.SWEEP_RESENT.labels(kind="language_check").inc(checks)
    if rounds:
        metrics.SWEEP_RESENT.labels(kind="round").inc(rounds)
    return {"language_checks": checks, "rounds": rounds, "export_projects": export_marks_refresh()}

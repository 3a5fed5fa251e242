"""Background work: rounds and committee retraining on a Celery worker.

The tasks are thin: each calls the same plain function the management command calls.
`round_launch` is what the API and the lead page use. With a broker configured
(settings.CELERY_BROKER_URL) it records a waiting round and hands its id to a worker
after the request's transaction commits, so scoring and training never run inside a web
request. Without a broker (a laptop, the SQLite demo) there is no worker to hand it to,
and the round runs inline in the request — the same function, just in this process.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction

from active_learning.models import SelectionRound
from active_learning.rounds import (
    RoundRequest,
    committee_retrain,
    round_create_queued,
    round_execute,
    round_run_queued,
)
from annotation.models import Project


@shared_task(name="active_learning.round_run", acks_late=True)
def round_run(round_id: int) -> dict[str, Any]:
    selection_round = round_run_queued(round_id=round_id)
    if selection_round is None:
        return {"round": round_id, "status": "already taken"}
    return {"round": selection_round.pk, "status": selection_round.status, "selected": selection_round.summary.get("selected")}


@shared_task(name="active_learning.committee_retrain")
def committee_retrain_task(project_id: int, parameters: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    project = Project.objects.get(pk=project_id)
    version = committee_retrain(project=project, parameters=parameters, seed=seed)
    if version is None:
        return {"project": project.slug, "model_version": None}
    return {"project": project.slug, "model_version": version.number, "accuracy": version.accuracy}


def broker_configured() -> bool:
    return bool(settings.CELERY_BROKER_URL)


def round_launch(*, request: RoundRequest, actor: Any = None, token: Any = None) -> SelectionRound:
    """Run a checked round request: on a worker when a broker is configured (the round is
    returned waiting), inline otherwise (returned done)."""
    if not broker_configured():
        return round_execute(request=request, actor=actor, token=token)
    selection_round = round_create_queued(request=request, actor=actor, token=token)
    # Only after commit: a worker must find the round row when the message reaches it.
    transaction.on_commit(lambda: round_run.delay(selection_round.pk))
    return selection_round


def committee_retrain_launch(*, project: Project, parameters: dict[str, Any] | None = None, seed: int = 0) -> None:
    """Retrain on a worker when a broker is configured, inline otherwise."""
    if not broker_configured():
        committee_retrain(project=project, parameters=parameters, seed=seed)
        return
    transaction.on_commit(lambda: committee_retrain_task.delay(project.pk, parameters, seed))

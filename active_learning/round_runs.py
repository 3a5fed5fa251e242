"""Running rounds on workers: a round queued for a worker is taken at least once, retaken
after a dead worker, and its pool may be scored in chunks by any number of workers (a Celery
chord, `active_learning.tasks.round_run`); the round itself is `active_learning.rounds`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from active_learning.models import ModelVersion, RoundStatus, SelectionRound
from active_learning.parameters import pool_queryset, round_parameters_clean
from active_learning.rounds import (
    ChunkScores,
    RoundRequest,
    _causal_lm,
    pool_load,
    pool_score,
    round_execute,
    round_preview,
    round_request_clean,
)
from active_learning.training import FeatureSource, RoundModels, models_retrain_if_stale
from annotation.audit import actor_user
from annotation.types import Actor


def _stored_request(selection_round: SelectionRound) -> RoundRequest:
    """The request a queued round was recorded with, checked again as the worker takes it
    (the project or its pool may have changed since)."""
    return round_request_clean(
        project=selection_round.project,
        budget=selection_round.budget,
        strategy=selection_round.strategy,
        seed=selection_round.seed,
        parameters=selection_round.parameters,
    )


@dataclass
class PreparedRound:
    request: RoundRequest
    models: RoundModels
    pool_ids: list[int]


def round_prepare_queued(*, round_id: int) -> PreparedRound | None:
    """Take a waiting round (None when another worker has it), check it, train or load its
    models once — before the chunks, so every chunk scores with the same version — and
    list the pool the chunks split."""
    if not SelectionRound.objects.filter(pk=round_id, status=RoundStatus.QUEUED).update(
        status=RoundStatus.RUNNING, started_at=timezone.now()
    ):
        return None
    selection_round = SelectionRound.objects.select_related("project").get(pk=round_id)
    with round_failure_recorded(round_id=round_id):
        request = _stored_request(selection_round)
        source = FeatureSource(
            kind=request.parameters["features"], encoder_path=request.parameters["encoder_path"]
        )
        models = models_retrain_if_stale(
            project=request.project, parameters=request.parameters, seed=request.seed, source=source
        )
        SelectionRound.objects.filter(pk=round_id).update(model_version=models.version)
        ids = list(
            pool_queryset(project=request.project).order_by("id").values_list("pk", flat=True)
        )
        return PreparedRound(request=request, models=models, pool_ids=ids)
    raise AssertionError("unreachable: a failure is recorded and raised")


def _round_models(selection_round: SelectionRound) -> RoundModels:
    version = (
        ModelVersion.objects.filter(pk=selection_round.model_version_id).first()
        if selection_round.model_version_id
        else None
    )
    return RoundModels.of(version)


def round_chunk_score(*, round_id: int, item_ids: Sequence[int]) -> ChunkScores:
    """Score one chunk of a round's pool with the round's models (a worker's part)."""
    selection_round = SelectionRound.objects.select_related("project").get(pk=round_id)
    p = round_parameters_clean(selection_round.parameters)
    pool = pool_load(project=selection_round.project, item_ids=item_ids)
    source = FeatureSource(kind=p["features"], encoder_path=p["encoder_path"])
    features = source.matrix(item_ids=pool.ids, texts=pool.texts)
    lm = _causal_lm(p) if any(lp is None for lp in pool.inputs.token_logprobs) else None
    scores = pool_score(
        pool=pool, features=features, models=_round_models(selection_round), parameters=p, lm=lm
    )
    return ChunkScores(
        ids=pool.ids.tolist(),
        raw={
            name: [None if not np.isfinite(v) else float(v) for v in values]
            for name, values in scores.raw.items()
        },
        rescored=scores.rescored,
        available=scores.available,
    )


def round_finish_chunks(
    *, round_id: int, chunks: Sequence[ChunkScores | dict[str, Any]]
) -> SelectionRound:
    """Rank, allocate, select and queue once, from every chunk's scores."""
    selection_round = SelectionRound.objects.select_related("project", "created_by", "token").get(
        pk=round_id
    )
    with round_failure_recorded(round_id=round_id):
        request = _stored_request(selection_round)
        return round_execute(
            request=request,
            actor=selection_round.created_by,
            token=selection_round.token,
            round_id=round_id,
            chunks=[ChunkScores.of(c) for c in chunks],
            models=_round_models(selection_round),
        )
    raise AssertionError("unreachable")


@contextmanager
def round_failure_recorded(*, round_id: int, task_id: str = "") -> Iterator[None]:
    """A round that fails is marked failed with the reason (and the error raised on)."""
    try:
        yield
    except Exception as exc:
        round_mark_failed(round_id=round_id, exc=exc, task_id=task_id)
        raise


def round_mark_failed(*, round_id: int, exc: BaseException, task_id: str = "") -> None:
    if isinstance(exc, ValidationError):
        message = "; ".join(
            f"{name}: {text}" if name else text for name, text in validation_messages(exc)
        )
    else:
        message = f"{type(exc).__name__}: {exc}"
    rounds = SelectionRound.objects.filter(pk=round_id)
    if task_id:
        # Only this run's claim: a round another worker took over meanwhile is its business.
        rounds = rounds.filter(status=RoundStatus.RUNNING, task_id=task_id)
    rounds.update(status=RoundStatus.FAILED, error=message[:2000], finished_at=timezone.now())


def round_create_queued(
    *, request: RoundRequest, actor: Actor = None, token: Any = None
) -> SelectionRound:
    """Record a round for a worker to run (the broker path)."""
    return SelectionRound.objects.create(
        project=request.project,
        strategy=request.strategy,
        budget=request.budget,
        seed=request.seed,
        parameters=request.parameters,
        allocation={a.tag: a.as_dict() for a in round_preview(request=request)},
        status=RoundStatus.QUEUED,
        created_by=actor_user(actor),
        token=token,
    )


def round_take_filter(*, task_id: str = "") -> Q:
    """Which rounds a worker may take: a waiting one; a running one whose message this is
    again (brokers redeliver a message whose worker died); a running one past
    PARITY_ROUND_STALE_SECONDS (its worker is gone or wedged)."""
    stale = timezone.now() - timedelta(seconds=settings.PARITY_ROUND_STALE_SECONDS)
    take = Q(status=RoundStatus.QUEUED) | Q(status=RoundStatus.RUNNING, started_at__lt=stale)
    if task_id:
        take |= Q(status=RoundStatus.RUNNING, task_id=task_id)
    return take


def round_run_queued(*, round_id: int, task_id: str = "") -> SelectionRound | None:
    """Run a waiting round on a worker. A round another worker is running or has finished
    is left alone (brokers deliver at least once); a round that fails is marked failed
    with the reason and the pool is untouched. A worker killed mid-round leaves nothing
    written (the round's writes are one transaction at the end), and the redelivered
    message runs it again."""
    taken = SelectionRound.objects.filter(round_take_filter(task_id=task_id), pk=round_id).update(
        status=RoundStatus.RUNNING, started_at=timezone.now(), task_id=task_id
    )
    if not taken:
        return None
    selection_round = SelectionRound.objects.select_related("project", "created_by", "token").get(
        pk=round_id
    )
    with round_failure_recorded(round_id=round_id, task_id=task_id):
        request = _stored_request(selection_round)
        return round_execute(
            request=request,
            actor=selection_round.created_by,
            token=selection_round.token,
            round_id=round_id,
        )
    raise AssertionError("unreachable")


def rounds_waiting(*, older_than: timedelta) -> QuerySet[SelectionRound]:
    """Rounds a worker should have finished by now: waiting since before `older_than`
    ago (their message was lost), or running past the stale limit."""
    stale = timezone.now() - timedelta(seconds=settings.PARITY_ROUND_STALE_SECONDS)
    return SelectionRound.objects.filter(
        Q(status=RoundStatus.QUEUED, created_at__lt=timezone.now() - older_than)
        | Q(status=RoundStatus.RUNNING, started_at__lt=stale)
    ).order_by("pk")


def validation_messages(exc: ValidationError) -> list[tuple[str | None, str]]:
    """(field, message) pairs of a ValidationError, for the CLI, the API and the page."""
    if hasattr(exc, "error_dict"):
        return [
            (None if name == "__all__" else name, str(message))
            for name, messages in exc.message_dict.items()
            for message in messages
        ]
    return [(None, str(message)) for message in exc.messages]

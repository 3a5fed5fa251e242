"""Active-learning rounds: validate, split the budget, score the pool, pick per language,
queue — all or nothing — and the committee model versions they use.

`round_execute` is the one plain function that does a round; the management command
calls it directly, the Celery task calls it on a worker (`tasks.py`), and without a
broker the API and the lead page call it inline. It reads and computes first and writes
at the very end in one transaction: the round, its selected items with their score
components, and the items' move from the pool to the queue. Anything that goes wrong
before or during that transaction leaves the pool exactly as it was.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from active_learning import qe
from active_learning.allocation import (
    STRATEGIES,
    AllocationError,
    LanguageAllocation,
    LanguageSupply,
    allocation_compute,
)
from active_learning.features import (
    item_feature_text,
)
from active_learning.models import ItemRescore, RoundItem, RoundStatus, SelectionRound
from active_learning.parameters import (
    NEUTRAL_SCORE,
    _fail,
    _model_paths_check,
    _scale,
    _whole,
    pool_queryset,
    round_parameters_clean,
)
from active_learning.scorers import (
    ScoringInputs,
    causal_lm_load,
    group_indices,
    inputs_fill_from_lm,
    scorers_usable,
    scores_combine,
    scores_compute,
)
from active_learning.selection import batch_select, representative_select, text_keys
from active_learning.training import FeatureSource, RoundModels, models_retrain_if_stale
from annotation.agreement import parity_report
from annotation.audit import AL_ROUND_RUN, actor_user, audit_record
from annotation.models import (
    Item,
    ItemStatus,
    Project,
    Qualification,
    QualificationStatus,
    Selection,
    TaskType,
)
from annotation.queue import items_enqueue
from annotation.types import Actor

# ---------------------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------------------


def language_quality(*, project: Project) -> dict[str, float | None]:
    """Estimated model quality per language in [0, 1] (the parity report's figure, on the
    items not picked for being uncertain), or None where nothing is judged yet."""
    # Point estimates only: the confidence intervals are the parity page's business.
    report = parity_report(project=project, resamples=0)
    out: dict[str, float | None] = {}
    lo, hi = _scale(project)
    for row in report.get("languages", []):
        value = (row.get("quality") or {}).get("value")
        if value is None:
            out[row["language"]] = None
        elif project.task_type == TaskType.RATING:
            out[row["language"]] = (float(value) - lo) / (hi - lo)
        else:
            out[row["language"]] = float(value)
    return out


def language_supplies(*, project: Project, parameters: dict[str, Any]) -> list[LanguageSupply]:
    """Per language: pool size, what its qualified evaluators can still take, quality."""
    pools = dict(
        pool_queryset(project=project)
        .order_by()
        .values_list("language__tag")
        .annotate(n=Count("id"))
    )
    evaluators = dict(
        Qualification.objects.filter(project=project, status=QualificationStatus.QUALIFIED)
        .order_by()
        .values_list("language__tag")
        .annotate(n=Count("evaluator", distinct=True))
    )
    # Slots already waiting in the queue use up part of the evaluators' capacity.
    backlog = dict(
        Item.objects.filter(project=project, status=ItemStatus.QUEUED, is_gold=False)
        .order_by()
        .values_list("language__tag")
        .annotate(n=Sum("open_slots"))
    )
    quality = language_quality(project=project)
    per_evaluator = parameters.get("evaluator_capacity")
    supplies = []
    for lang in project.languages.order_by("tag"):
        n_eval = int(evaluators.get(lang.tag, 0))
        capacity = None
        if per_evaluator is not None:
            capacity = (
                max(0, n_eval * int(per_evaluator) - int(backlog.get(lang.tag) or 0))
                // project.overlap
            )
        supplies.append(
            LanguageSupply(
                tag=lang.tag,
                pool=int(pools.get(lang.tag, 0)),
                capacity=capacity,
                quality=quality.get(lang.tag),
                evaluators=n_eval,
            )
        )
    return supplies


def rounds_for_project(*, project: Project) -> QuerySet[SelectionRound]:
    # Never the committee's pickled weights: a list of rounds does not need megabytes each.
    return (
        SelectionRound.objects.filter(project=project)
        .select_related("model_version", "created_by")
        .defer("model_version__blob")
    )


def round_selected(*, selection_round: SelectionRound) -> QuerySet[RoundItem]:
    return selection_round.selections.select_related("item", "language").order_by(
        "language__tag", "selection", "rank"
    )


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundRequest:
    project: Project
    budget: int
    strategy: str
    seed: int
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "strategy": self.strategy,
            "seed": self.seed,
            "parameters": self.parameters,
        }


def round_request_clean(
    *,
    project: Project,
    budget: Any,
    strategy: Any,
    seed: Any = 0,
    parameters: dict[str, Any] | None = None,
) -> RoundRequest:
    """A checked round request, or ValidationError({field: [reason]}); nothing is written."""
    if strategy not in STRATEGIES:
        raise _fail(
            "strategy", f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}"
        )
    budget = _whole(budget, name="budget", low=1)
    seed = _whole(seed if seed is not None else 0, name="seed", low=0, high=2**63 - 1)
    clean = round_parameters_clean(parameters)
    total = Item.objects.filter(project=project, is_gold=False).count()
    if total == 0:
        raise _fail("project", f"project {project.slug} has no items; import items first")
    pool = pool_queryset(project=project).count()
    if pool == 0:
        raise _fail(
            "budget",
            f"no items wait in the pool of project {project.slug} (all {total} items are queued, judged or "
            "labelled); import new items with queue_on_import off",
        )
    if budget > pool:
        raise _fail(
            "budget",
            f"the budget {budget} is above the pool: {pool} items wait in the pool of project {project.slug}",
        )
    _model_paths_check(parameters=clean)
    request = RoundRequest(
        project=project, budget=budget, strategy=strategy, seed=seed, parameters=clean
    )
    round_preview(request=request)  # the allocation must be possible
    return request


def round_preview(*, request: RoundRequest) -> list[LanguageAllocation]:
    """The allocation the round would use, without scoring or writing anything."""
    p = request.parameters
    try:
        return allocation_compute(
            languages=language_supplies(project=request.project, parameters=p),
            budget=request.budget,
            strategy=request.strategy,
            seed=request.seed,
            floor=p["floor"],
            audit_min_share=p["audit_min_share"],
            audit_max_share=p["audit_max_share"],
            audit_ci_halfwidth=p["audit_ci_halfwidth"],
        )
    except AllocationError as exc:
        raise _fail("budget", str(exc)) from None


# ---------------------------------------------------------------------------------------
# The pool
# ---------------------------------------------------------------------------------------


def _top_logprobs(metadata: Any) -> list[np.ndarray] | None:
    """metadata["top_logprobs"]: per token, a list of log-probs, a {token: log-prob} map,
    or a list of {"token", "logprob"} objects (OpenAI style). Anything else is ignored."""
    top = metadata.get("top_logprobs") if isinstance(metadata, dict) else None
    if not isinstance(top, list) or not top:
        return None
    out = []
    for entry in top:
        if isinstance(entry, dict):
            values = list(entry.values())
        elif isinstance(entry, list):
            values = [e.get("logprob") if isinstance(e, dict) else e for e in entry]
        else:
            return None
        if not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            return None
        out.append(np.asarray(values, dtype=float))
    return out


@dataclass
class Pool:
    ids: np.ndarray
    languages: np.ndarray
    prompts: list[str]
    texts: list[str]
    inputs: ScoringInputs


def pool_load(*, project: Project, item_ids: Sequence[int] | None = None) -> Pool:
    """The pool (or the part of it with these ids: a chunk a worker scores), in id order."""
    ids, languages, prompts, texts, logprobs, tops = [], [], [], [], [], []
    entropy, reward_a, reward_b = [], [], []
    queryset = pool_queryset(project=project)
    if item_ids is not None:
        queryset = queryset.filter(pk__in=list(item_ids))
    rows = queryset.order_by("id").values_list(
        "id",
        "language__tag",
        "prompt",
        "response",
        "response_a",
        "response_b",
        "token_logprobs",
        "token_entropy",
        "reward_a",
        "reward_b",
        "metadata",
    )
    for pk, tag, prompt, response, a, b, lp, ent, ra, rb, metadata in rows.iterator(
        chunk_size=5000
    ):
        ids.append(pk)
        languages.append(tag)
        prompts.append(prompt)
        texts.append(item_feature_text(response=response, response_a=a, response_b=b))
        logprobs.append(np.asarray(lp, dtype=float) if lp else None)
        tops.append(_top_logprobs(metadata))
        entropy.append(np.nan if ent is None else ent)
        reward_a.append(np.nan if ra is None else ra)
        reward_b.append(np.nan if rb is None else rb)
    langs = np.array(languages, dtype=object)
    return Pool(
        ids=np.array(ids, dtype=np.int64),
        languages=langs,
        prompts=prompts,
        texts=texts,
        inputs=ScoringInputs(
            languages=langs,
            token_logprobs=logprobs,
            top_logprobs=tops,
            token_entropy=np.array(entropy, dtype=float),
            reward_a=np.array(reward_a, dtype=float),
            reward_b=np.array(reward_b, dtype=float),
        ),
    )


# ---------------------------------------------------------------------------------------
# The round
# ---------------------------------------------------------------------------------------


@dataclass
class Pick:
    index: int  # into the pool arrays
    selection: str
    rank: int


def _language_seed(seed: int, tag: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(tag.encode("utf-8"))])


def picks_for_language(
    *,
    allocation: LanguageAllocation,
    idx: np.ndarray,
    combined: np.ndarray,
    features: Any,
    keys: np.ndarray,
    parameters: dict[str, Any],
    seed: int,
) -> tuple[list[Pick], bool]:
    """Audit picks (random) and uncertainty picks of one language; True when it was a cold start."""
    rng = _language_seed(seed, allocation.tag)
    audit = (
        idx[rng.choice(len(idx), size=allocation.audit, replace=False)]
        if allocation.audit
        else idx[:0]
    )
    rest = np.setdiff1d(idx, audit, assume_unique=True)
    picks = [Pick(int(i), Selection.AUDIT, r) for r, i in enumerate(audit, start=1)]
    if not allocation.uncertainty:
        return picks, False
    scores = combined[rest]
    cold = not np.isfinite(scores).any()
    if cold:
        chosen = representative_select(
            features=features[rest], keys=keys[rest], k=allocation.uncertainty, seed=seed
        )
    else:
        chosen = batch_select(
            scores=np.where(np.isfinite(scores), scores, NEUTRAL_SCORE),
            features=features[rest],
            keys=keys[rest],
            k=allocation.uncertainty,
            candidate_factor=parameters["candidate_factor"],
            mix=parameters["mix"],
            seed=seed,
        )
    picks += [Pick(int(rest[c]), Selection.UNCERTAINTY, r) for r, c in enumerate(chosen, start=1)]
    return picks, cold


def _components(
    index: int, raw: dict[str, np.ndarray], pct: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    return {
        name: {"raw": round(float(raw[name][index]), 6), "pct": round(float(pct[name][index]), 6)}
        for name in raw
        if np.isfinite(raw[name][index]) and np.isfinite(pct[name][index])
    }


class StageClock:
    """Seconds per stage of a round (`with clock.stage("scoring"): …`), reported in the
    round's summary; `progress` hears each stage's name as it ends."""

    def __init__(self, progress: Callable[[str], None] | None = None) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - began, 3)
            if self.progress:
                self.progress(name)

    def summary(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.perf_counter() - self.started, 3)}


@dataclass
class RoundInputs:
    allocation: list[LanguageAllocation]
    pool: Pool
    source: FeatureSource
    features: Any
    keys: np.ndarray


@dataclass
class PoolScores:
    """Raw scorer values of a pool or of one chunk of it, row for row."""

    raw: dict[str, np.ndarray]
    rescored: int
    available: list[str]


@dataclass
class RoundScores:
    raw: dict[str, np.ndarray]
    combined: np.ndarray
    pct: dict[str, np.ndarray]
    rescored: int
    available: list[str]

    @property
    def priority(self) -> np.ndarray:
        return np.where(np.isfinite(self.combined), self.combined, NEUTRAL_SCORE)


@dataclass
class RoundPicks:
    picks: list[Pick]
    cold_start: list[str]


def round_inputs_load(*, request: RoundRequest, clock: StageClock) -> RoundInputs:
    p = request.parameters
    _model_paths_check(parameters=p)
    with clock.stage("pool"):
        allocation = round_preview(request=request)
        pool = pool_load(project=request.project)
    with clock.stage("features"):
        source = FeatureSource(kind=p["features"], encoder_path=p["encoder_path"])
        features = source.matrix(item_ids=pool.ids, texts=pool.texts)
        keys = text_keys(pool.texts)
    return RoundInputs(
        allocation=allocation, pool=pool, source=source, features=features, keys=keys
    )


def _causal_lm(parameters: dict[str, Any]) -> Any:
    lm_path = parameters["causal_lm_path"] or settings.PARITY_CAUSAL_LM_PATH
    if not lm_path:
        return None
    try:
        return causal_lm_load(lm_path)
    except ValidationError:
        raise
    except Exception as exc:
        raise _fail("causal_lm_path", f"could not load the causal LM: {exc}") from exc


def _f32(values: np.ndarray | Sequence[float] | None) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def lm_rescore_cached(*, pool: Pool, lm: Any, batch_size: int = 8) -> int:
    """Fill in the log-probs (and entropies) of pool items that came without, from the
    cache (`ItemRescore`) or by rescoring with the LM and caching; returns how many were
    rescored now."""
    inputs = pool.inputs
    missing = [i for i, lp in enumerate(inputs.token_logprobs) if lp is None or not len(lp)]
    if not missing:
        return 0
    cached: dict[int, tuple[bytes, bytes]] = {}
    ids = [int(pool.ids[i]) for i in missing]
    for start in range(0, len(ids), 5000):
        for item_id, lps, ents in ItemRescore.objects.filter(
            lm=lm.id, item_id__in=ids[start : start + 5000]
        ).values_list("item_id", "token_logprobs", "token_entropies"):
            cached[item_id] = (bytes(lps), bytes(ents))
    inputs._ragged_logprobs = None
    for i in missing:
        hit = cached.get(int(pool.ids[i]))
        if hit is not None:
            inputs.token_logprobs[i] = np.frombuffer(hit[0], dtype="<f4").astype(float)
            if inputs.token_entropies[i] is None and inputs.top_logprobs[i] is None:
                inputs.token_entropies[i] = np.frombuffer(hit[1], dtype="<f4").astype(float)
    still = [i for i in missing if int(pool.ids[i]) not in cached]
    rescored = inputs_fill_from_lm(
        inputs=inputs, lm=lm, responses=pool.texts, prompts=pool.prompts, batch_size=batch_size
    )
    if still:
        entropies = {i: inputs.token_entropies[i] for i in still}
        ItemRescore.objects.bulk_create(
            [
                ItemRescore(
                    item_id=int(pool.ids[i]),
                    lm=lm.id,
                    token_logprobs=_f32(inputs.token_logprobs[i]),
                    token_entropies=_f32(entropies[i] if entropies[i] is not None else []),
                )
                for i in still
            ],
            batch_size=1000,
            ignore_conflicts=True,  # two workers rescoring the same item store equal values
        )
    return rescored


def pool_score(
    *, pool: Pool, features: Any, models: RoundModels, parameters: dict[str, Any], lm: Any = None
) -> PoolScores:
    """Every usable scorer's raw value for each item of `pool` — the whole pool inline, or
    one chunk on a worker. A value depends only on its own item (percentiles come later,
    over the whole pool), so chunks scored anywhere give the same values."""
    rescored = lm_rescore_cached(pool=pool, lm=lm) if lm is not None else 0
    inputs = pool.inputs
    inputs.features, inputs.committee = features, models.committee
    if models.quality is not None:
        inputs.qe_raw = qe.qe_features(
            prompts=pool.prompts, responses=pool.texts, token_logprobs=inputs.token_logprobs
        )
        inputs.qe_model = models.quality
    names = parameters["scorers"] or None
    raw = scores_compute(inputs=inputs, names=names)
    return PoolScores(
        raw=raw,
        rescored=rescored,
        available=[s.name for s in scorers_usable(inputs=inputs, names=names)],
    )


def round_scores_combine(
    *, pool: Pool, scores: PoolScores, parameters: dict[str, Any]
) -> RoundScores:
    """Percentiles within each language over the whole pool, then the weighted combination."""
    combined, pct = scores_combine(
        raw=scores.raw, groups=pool.languages, weights=parameters["weights"]
    )
    return RoundScores(
        raw=scores.raw,
        combined=combined,
        pct=pct,
        rescored=scores.rescored,
        available=scores.available,
    )


def round_picks_choose(
    *, request: RoundRequest, inputs: RoundInputs, scores: RoundScores
) -> RoundPicks:
    picks: list[Pick] = []
    cold_start: list[str] = []
    by_language = group_indices(inputs.pool.languages)
    for alloc in inputs.allocation:
        if not alloc.total:
            continue
        idx = by_language.get(alloc.tag, np.zeros(0, dtype=np.int64))
        if len(idx) < alloc.total:
            raise _fail(
                "budget", f"the pool of {alloc.tag} changed while the round ran; run it again"
            )
        lang_picks, cold = picks_for_language(
            allocation=alloc,
            idx=idx,
            combined=scores.combined,
            features=inputs.features,
            keys=inputs.keys,
            parameters=request.parameters,
            seed=request.seed,
        )
        picks += lang_picks
        if cold:
            cold_start.append(alloc.tag)
    return RoundPicks(picks=picks, cold_start=cold_start)


def round_record_write(
    *,
    request: RoundRequest,
    inputs: RoundInputs,
    models: RoundModels,
    scores: RoundScores,
    chosen: RoundPicks,
    actor: Actor = None,
    token: Any = None,
    round_id: int | None = None,
) -> SelectionRound:
    """The round, its selected items with their score components and the items' move to
    the queue, in one transaction."""
    project, pool, picks = request.project, inputs.pool, chosen.picks
    with transaction.atomic():
        if round_id is None:
            selection_round = SelectionRound(
                project=project,
                created_by=actor_user(actor),
                token=token,
            )
        else:
            selection_round = SelectionRound.objects.select_for_update().get(pk=round_id)
            if selection_round.status == RoundStatus.DONE:
                # Another delivery of the same round finished first: nothing is applied twice.
                return selection_round
        selection_round.strategy = request.strategy
        selection_round.budget = request.budget
        selection_round.seed = request.seed
        selection_round.parameters = request.parameters
        selection_round.allocation = {a.tag: a.as_dict() for a in inputs.allocation}
        selection_round.model_version = models.version
        selection_round.status = RoundStatus.DONE
        selection_round.error = ""
        selection_round.finished_at = timezone.now()
        selection_round.summary = _round_summary(inputs, models, scores, chosen)
        selection_round.save()
        _round_items_create(selection_round, project, inputs, scores, picks)
        for selection in (Selection.AUDIT, Selection.UNCERTAINTY):
            chosen_idx = [pick.index for pick in picks if pick.selection == selection]
            items_enqueue(
                project=project,
                item_ids=pool.ids[chosen_idx].tolist(),
                priorities=scores.priority[chosen_idx].tolist(),
                selection=selection,
            )
        audit_record(
            verb=AL_ROUND_RUN,
            actor=actor,
            token=token,
            project=project,
            obj=selection_round,
            data={
                "strategy": request.strategy,
                "budget": request.budget,
                "seed": request.seed,
                "selected": len(picks),
                "model_version": models.version.number if models.version else None,
            },
        )
    return selection_round


def _round_summary(
    inputs: RoundInputs, models: RoundModels, scores: RoundScores, chosen: RoundPicks
) -> dict[str, Any]:
    return {
        "pool": len(inputs.pool.ids),
        "selected": len(chosen.picks),
        "scorers": sorted(scores.raw),
        "scorers_available": scores.available,
        "rescored_with_lm": scores.rescored,
        "cold_start_languages": chosen.cold_start,
        "labels": models.version.n_labels if models.version else 0,
        "quality_model": models.quality is not None,
        "features": inputs.source.key,
    }


def _round_items_create(
    selection_round: SelectionRound,
    project: Project,
    inputs: RoundInputs,
    scores: RoundScores,
    picks: list[Pick],
) -> None:
    """The selected items with their rank, score and score components."""
    pool = inputs.pool
    language_ids = dict(project.languages.values_list("tag", "id"))
    RoundItem.objects.bulk_create(
        [
            RoundItem(
                round=selection_round,
                item_id=int(pool.ids[pick.index]),
                language_id=language_ids[pool.languages[pick.index]],
                selection=pick.selection,
                rank=pick.rank,
                score=float(scores.priority[pick.index]),
                components=_components(pick.index, scores.raw, scores.pct),
            )
            for pick in picks
        ],
        batch_size=2000,
    )


def round_execute(
    *,
    request: RoundRequest,
    actor: Actor = None,
    token: Any = None,
    round_id: int | None = None,
    progress: Callable[[str], None] | None = None,
    chunks: Sequence[ChunkScores] | None = None,
    models: RoundModels | None = None,
) -> SelectionRound:
    """Run a round and queue its items, all or nothing. With `round_id`, completes that
    waiting round (the worker path); otherwise records a new one. With `chunks` (a chord's
    scored chunks, and the `models` they were scored with), the scoring is already done:
    what is left is to rank within each language, allocate and select, once."""
    clock = StageClock(progress)
    inputs = round_inputs_load(request=request, clock=clock)
    p = request.parameters
    with clock.stage("committee"):
        if models is None:
            models = models_retrain_if_stale(
                project=request.project, parameters=p, seed=request.seed, source=inputs.source
            )
    with clock.stage("scoring"):
        if chunks is None:
            lm = (
                _causal_lm(p)
                if any(lp is None for lp in inputs.pool.inputs.token_logprobs)
                else None
            )
            pool_scores = pool_score(
                pool=inputs.pool, features=inputs.features, models=models, parameters=p, lm=lm
            )
        else:
            pool_scores = chunks_gather(chunks=chunks, ids=inputs.pool.ids)
        scores = round_scores_combine(pool=inputs.pool, scores=pool_scores, parameters=p)
    with clock.stage("selection"):
        chosen = round_picks_choose(request=request, inputs=inputs, scores=scores)
    with clock.stage("write"):
        selection_round = round_record_write(
            request=request,
            inputs=inputs,
            models=models,
            scores=scores,
            chosen=chosen,
            actor=actor,
            token=token,
            round_id=round_id,
        )
    selection_round.summary["seconds"] = clock.summary()
    SelectionRound.objects.filter(pk=selection_round.pk).update(summary=selection_round.summary)
    return selection_round


# ---------------------------------------------------------------------------------------
# Scoring in chunks on workers (a Celery chord, `tasks.round_run`)
# ---------------------------------------------------------------------------------------


@dataclass
class ChunkScores:
    """What a worker sends back for one chunk: plain lists, JSON-safe (NaN → None)."""

    ids: list[int]
    raw: dict[str, list[float | None]]
    rescored: int
    available: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ids": self.ids,
            "raw": self.raw,
            "rescored": self.rescored,
            "available": self.available,
        }

    @classmethod
    def of(cls, value: dict[str, Any] | ChunkScores) -> ChunkScores:
        return value if isinstance(value, ChunkScores) else cls(**value)


def chunks_gather(*, chunks: Sequence[ChunkScores | dict[str, Any]], ids: np.ndarray) -> PoolScores:
    """The chunks' raw values row for row with `ids` (the pool as the finishing step loaded
    it); an item no chunk scored has no value (it joined the pool meanwhile)."""
    parts = [ChunkScores.of(c) for c in chunks]
    position = {int(i): n for n, i in enumerate(ids.tolist())}
    names = sorted({name for part in parts for name in part.raw})
    raw = {name: np.full(len(ids), np.nan) for name in names}
    for part in parts:
        rows = np.array([position.get(int(i), -1) for i in part.ids], dtype=np.int64)
        keep = rows >= 0
        for name, values in part.raw.items():
            column = np.array([np.nan if v is None else v for v in values], dtype=float)
            raw[name][rows[keep]] = column[keep]
    available = sorted({name for part in parts for name in part.available})
    return PoolScores(raw=raw, rescored=sum(p.rescored for p in parts), available=available)

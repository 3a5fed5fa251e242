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
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from active_learning import committee as committee_mod
from active_learning import qe
from active_learning.allocation import (
    AUDIT_CI_HALFWIDTH,
    STRATEGIES,
    AllocationError,
    LanguageAllocation,
    LanguageSupply,
    allocation_compute,
)
from active_learning.features import (
    Encoder,
    embeddings_for_items,
    encoder_load,
    features_describe,
    hashing_features,
    item_feature_text,
    model_id,
    model_path_check,
)
from active_learning.models import ItemRescore, ModelVersion, RoundItem, RoundStatus, SelectionRound
from active_learning.scorers import (
    SCORERS,
    ScoringInputs,
    causal_lm_load,
    group_indices,
    inputs_fill_from_lm,
    scorers_usable,
    scores_combine,
    scores_compute,
)
from active_learning.selection import batch_select, representative_select, text_keys
from annotation.agreement import item_labels, parity_report
from annotation.audit import audit_record
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Project,
    Qualification,
    QualificationStatus,
    Selection,
    TaskType,
)
from annotation.queue import items_enqueue

# Judgments that are human labels (never honeypot, calibration or adjudication).
NEUTRAL_SCORE = 0.5

DEFAULT_PARAMETERS: dict[str, Any] = {
    "features": "hashing",  # or "encoder" (settings.PARITY_ENCODER_PATH or encoder_path)
    "encoder_path": "",
    "causal_lm_path": "",  # rescore items without log-probs (settings.PARITY_CAUSAL_LM_PATH)
    "scorers": [],  # empty: every scorer the pool can feed
    "weights": {},  # scorer name -> weight in the combination (default 1)
    "floor": 0,  # at least this many items per language (within its caps)
    "evaluator_capacity": 200,  # judgments one qualified evaluator can take per round; None: no cap
    "audit_min_share": None,  # None: 10% for parity, 0 otherwise
    "audit_max_share": None,  # None: 15% for parity, 0 otherwise
    "audit_ci_halfwidth": AUDIT_CI_HALFWIDTH,
    "mix": 0.5,  # k-center: weight of uncertainty against spread
    "candidate_factor": 3.0,  # top-uncertainty candidates per batch slot
    "bad_below": None,  # rating projects: a label below this is "bad" (default: the scale's midpoint)
    "n_learners": 5,
    "min_labels": 10,
}


def _fail(field_name: str, message: str) -> ValidationError:
    return ValidationError({field_name: [message]})


# ---------------------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------------------


def _labelled() -> Exists:
    return Exists(Judgment.objects.filter(item=OuterRef("pk"), is_current=True, kind__in=COUNTED_JUDGMENT_KINDS))


def pool_queryset(*, project: Project) -> QuerySet[Item]:
    """Items a round may pick: in the pool, not gold, not labelled by a human already."""
    return Item.objects.filter(project=project, status=ItemStatus.POOL, is_gold=False).filter(~_labelled())


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


def _scale(project: Project) -> tuple[float, float]:
    scale = (project.schema or {}).get("scale") or {}
    return float(scale.get("min", 1)), float(scale.get("max", 5))


def language_supplies(*, project: Project, parameters: dict[str, Any]) -> list[LanguageSupply]:
    """Per language: pool size, what its qualified evaluators can still take, quality."""
    pools = dict(
        pool_queryset(project=project).order_by().values_list("language__tag").annotate(n=Count("id"))
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
            capacity = max(0, n_eval * int(per_evaluator) - int(backlog.get(lang.tag) or 0)) // project.overlap
        supplies.append(
            LanguageSupply(
                tag=lang.tag, pool=int(pools.get(lang.tag, 0)), capacity=capacity,
                quality=quality.get(lang.tag), evaluators=n_eval,
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
    return selection_round.selections.select_related("item", "language").order_by("language__tag", "selection", "rank")


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
        return {"budget": self.budget, "strategy": self.strategy, "seed": self.seed, "parameters": self.parameters}


def _whole(value: Any, *, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float) and not value.is_integer()):
        raise _fail(name, f"{name} must be a whole number")
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise _fail(name, f"{name} must be {bounds}, not {value}")
    return value


def _fraction(value: Any, *, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(name, f"{name} must be a number")
    if not low <= value <= high:
        raise _fail(name, f"{name} must be between {low} and {high}, not {value}")
    return float(value)


def round_parameters_clean(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The round's parameters with defaults filled in; ValidationError names the bad one."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail("parameters", "parameters must be a JSON object")
    unknown = sorted(set(raw) - set(DEFAULT_PARAMETERS))
    if unknown:
        raise _fail(unknown[0], f"unknown parameter {unknown[0]!r}; known: {', '.join(DEFAULT_PARAMETERS)}")
    p = {**DEFAULT_PARAMETERS, **raw}
    if p["features"] not in ("hashing", "encoder"):
        raise _fail("features", f"features must be 'hashing' or 'encoder', not {p['features']!r}")
    for name in ("encoder_path", "causal_lm_path"):
        if p[name] is None:
            p[name] = ""
        if not isinstance(p[name], str):
            raise _fail(name, f"{name} must be a folder path")
    if not isinstance(p["scorers"], list) or not all(isinstance(s, str) for s in p["scorers"]):
        raise _fail("scorers", "scorers must be a list of scorer names")
    for name in p["scorers"]:
        if name not in SCORERS:
            raise _fail("scorers", f"unknown scorer {name!r}; known: {', '.join(SCORERS)}")
    if not isinstance(p["weights"], dict):
        raise _fail("weights", "weights must map scorer names to numbers")
    for name, weight in p["weights"].items():
        if name not in SCORERS:
            raise _fail("weights", f"unknown scorer {name!r}; known: {', '.join(SCORERS)}")
        _fraction(weight, name="weights", low=0.0, high=100.0)
    p["floor"] = _whole(p["floor"], name="floor", low=0)
    if p["evaluator_capacity"] is not None:
        p["evaluator_capacity"] = _whole(p["evaluator_capacity"], name="evaluator_capacity", low=1)
    for name in ("audit_min_share", "audit_max_share"):
        if p[name] is not None:
            p[name] = _fraction(p[name], name=name, low=0.0, high=0.5)
    if p["audit_min_share"] is not None and p["audit_max_share"] is not None and p["audit_min_share"] > p["audit_max_share"]:
        raise _fail("audit_min_share", "audit_min_share must not be above audit_max_share")
    p["audit_ci_halfwidth"] = _fraction(p["audit_ci_halfwidth"], name="audit_ci_halfwidth", low=0.01, high=0.5)
    p["mix"] = _fraction(p["mix"], name="mix", low=0.0, high=1.0)
    p["candidate_factor"] = _fraction(p["candidate_factor"], name="candidate_factor", low=1.0, high=100.0)
    if p["bad_below"] is not None:
        p["bad_below"] = _fraction(p["bad_below"], name="bad_below", low=-1e9, high=1e9)
    p["n_learners"] = _whole(p["n_learners"], name="n_learners", low=2, high=25)
    p["min_labels"] = _whole(p["min_labels"], name="min_labels", low=4)
    return p


def _model_paths_check(*, parameters: dict[str, Any]) -> None:
    if parameters["features"] == "encoder":
        model_path_check(parameters["encoder_path"] or settings.PARITY_ENCODER_PATH, field="encoder_path", what="encoder")
    lm_path = parameters["causal_lm_path"] or settings.PARITY_CAUSAL_LM_PATH
    if lm_path:
        model_path_check(lm_path, field="causal_lm_path", what="causal LM")


def round_request_clean(
    *, project: Project, budget: Any, strategy: Any, seed: Any = 0, parameters: dict[str, Any] | None = None
) -> RoundRequest:
    """A checked round request, or ValidationError({field: [reason]}); nothing is written."""
    if strategy not in STRATEGIES:
        raise _fail("strategy", f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
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
        raise _fail("budget", f"the budget {budget} is above the pool: {pool} items wait in the pool of project {project.slug}")
    _model_paths_check(parameters=clean)
    request = RoundRequest(project=project, budget=budget, strategy=strategy, seed=seed, parameters=clean)
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
# Labels and the committee
# ---------------------------------------------------------------------------------------


@dataclass
class Labels:
    item_ids: list[int]
    classes: list[str]  # class index -> name
    y: np.ndarray  # class index per item
    rule: dict[str, Any]


def _bad_below(project: Project, parameters: dict[str, Any]) -> float:
    if parameters.get("bad_below") is not None:
        return float(parameters["bad_below"])
    lo, hi = _scale(project)
    return lo + (hi - lo) / 2


def _label_class(project: Project, value: dict[str, Any], mean: float | None, bad_below: float) -> str | None:
    if project.task_type == TaskType.RATING:
        score = mean if mean is not None else value.get("score")
        if not isinstance(score, int | float):
            return None
        return "bad" if score < bad_below else "ok"
    if project.task_type == TaskType.PAIRWISE:
        choice = value.get("choice")
        return str(choice) if choice else None
    labels = value.get("labels")
    return "|".join(sorted(labels)) if isinstance(labels, list) else None


def labels_collect(*, project: Project, parameters: dict[str, Any]) -> Labels:
    """One class per human-labelled item: "bad"/"ok" for ratings (aggregated score below
    the threshold), the choice for pairwise items, the label set for labels projects."""
    bad_below = _bad_below(project, parameters)
    rule: dict[str, Any] = {"task_type": project.task_type}
    if project.task_type == TaskType.RATING:
        rule["bad_below"] = bad_below
    # The agreement module's labels: a final (adjudicated) label wins, ratings are
    # aggregated over production and historical judgments, never honeypots or calibration.
    raw = {i: (lab.value, lab.mean) for i, lab in item_labels(project=project).items()}
    pairs = [(i, _label_class(project, value, mean, bad_below)) for i, (value, mean) in sorted(raw.items())]
    pairs = [(i, c) for i, c in pairs if c is not None]
    classes = sorted({c for _, c in pairs})
    index = {c: k for k, c in enumerate(classes)}
    return Labels(
        item_ids=[i for i, _ in pairs],
        classes=classes,
        y=np.array([index[c] for _, c in pairs], dtype=np.int64),
        rule=rule,
    )


def label_watermark(*, project: Project) -> str:
    """Changes whenever a label could have changed: a new or revised judgment, a final label."""
    judged = Judgment.objects.filter(item__project=project, kind__in=COUNTED_JUDGMENT_KINDS).aggregate(m=Max("id"), n=Count("id"))
    finals = FinalLabel.objects.filter(item__project=project).aggregate(m=Max("id"), n=Count("id"))
    return f"j{judged['m'] or 0}.{judged['n']}:f{finals['m'] or 0}.{finals['n']}"


class FeatureSource:
    """Features of items by id and text: hashing, or the cached embeddings of an encoder."""

    def __init__(self, *, kind: str, encoder_path: str = "", batch_size: int = 32) -> None:
        self.kind = kind
        self.encoder: Encoder | None = None
        self.batch_size = batch_size
        if kind == "encoder":
            try:
                self.encoder = encoder_load(encoder_path or settings.PARITY_ENCODER_PATH)
            except ValidationError:
                raise
            except Exception as exc:  # a corrupt or incompatible folder
                raise _fail("encoder_path", f"could not load the encoder: {exc}") from exc
        self.key = features_describe(kind=kind, encoder=self.encoder)

    def matrix(self, *, item_ids: Sequence[int], texts: Sequence[str]) -> Any:
        if self.encoder is None:
            return hashing_features(texts)
        return embeddings_for_items(encoder=self.encoder, item_ids=item_ids, texts=texts, batch_size=self.batch_size)


@dataclass
class LabelledItems:
    """What the models learn from about the labelled items, in `Labels.item_ids` order."""

    texts: list[str]
    prompts: list[str]
    token_logprobs: list[Any]
    languages: np.ndarray
    lm_id: str | None = None


def labelled_items_load(item_ids: Sequence[int], *, lm_id: str | None = None) -> LabelledItems:
    """Texts, prompts and log-probs of these items; an item without log-probs gets the
    ones `lm_id` rescored it with, when cached (as the pool's were when it was scored)."""
    rows = {}
    for start in range(0, len(item_ids), 5000):
        for pk, tag, prompt, response, a, b, lp in Item.objects.filter(pk__in=item_ids[start : start + 5000]).values_list(
            "pk", "language__tag", "prompt", "response", "response_a", "response_b", "token_logprobs"
        ):
            rows[pk] = (tag, prompt, item_feature_text(response=response, response_a=a, response_b=b), lp)
    if lm_id:
        missing = [i for i in item_ids if not rows[i][3]]
        for start in range(0, len(missing), 5000):
            for pk, lps in ItemRescore.objects.filter(lm=lm_id, item_id__in=missing[start : start + 5000]).values_list(
                "item_id", "token_logprobs"
            ):
                tag, prompt, text, _ = rows[pk]
                rows[pk] = (tag, prompt, text, np.frombuffer(bytes(lps), dtype="<f4").astype(float).tolist())
    ordered = [rows[i] for i in item_ids]
    return LabelledItems(
        texts=[r[2] for r in ordered], prompts=[r[1] for r in ordered],
        token_logprobs=[np.asarray(r[3], dtype=float) if r[3] else None for r in ordered],
        languages=np.array([r[0] for r in ordered], dtype=object), lm_id=lm_id,
    )


def label_weights(*, project: Project, item_ids: Sequence[int]) -> np.ndarray:
    """Horvitz–Thompson weight of each labelled item (`qe.selection_weights`): an audit item
    stands for the part of its language's pool its round did not pick for uncertainty
    ((pool − uncertainty) ÷ audit of that round's allocation); an uncertainty pick, and an
    item that came to humans any other way, for itself."""
    weight_of: dict[int, float] = {}
    for start in range(0, len(item_ids), 5000):
        rows = RoundItem.objects.filter(
            round__project=project, item_id__in=item_ids[start : start + 5000], selection=Selection.AUDIT
        ).values_list("item_id", "language__tag", "round__allocation")
        for item_id, tag, allocation in rows:
            share = (allocation or {}).get(tag) or {}
            audit = int(share.get("audit") or 0)
            if audit > 0:
                weight_of[item_id] = max(1.0, (int(share.get("pool") or 0) - int(share.get("uncertainty") or 0)) / audit)
    return np.array([weight_of.get(int(i), 1.0) for i in item_ids], dtype=float)


QUALITY_REFERENCE_SAMPLE = 5000


def quality_model_train(
    *, project: Project, labels: Labels, labelled: LabelledItems, weights: np.ndarray
) -> qe.BadnessModel | None:
    """The quality model of a rating project: P(bad) from glass-box and source–output
    features, per language with shrinkage, Horvitz–Thompson weighted; None when the labels
    cannot train it. Percentiles are taken against the labelled items and a sample of the
    pool, so the scale is the pool's."""
    if project.task_type != TaskType.RATING or "bad" not in labels.classes:
        return None
    bad = labels.y == labels.classes.index("bad")
    if qe.badness_trainable(bad) is not None:
        return None
    # Evenly spaced over the pool by id: reproducible, and no ORDER BY random() over a large pool.
    pool_ids = np.fromiter(pool_queryset(project=project).order_by("id").values_list("pk", flat=True), dtype=np.int64)
    if len(pool_ids) > QUALITY_REFERENCE_SAMPLE:
        pool_ids = pool_ids[np.linspace(0, len(pool_ids) - 1, QUALITY_REFERENCE_SAMPLE).round().astype(np.int64)]
    sample_ids = pool_ids.tolist()
    sample = labelled_items_load(sample_ids, lm_id=labelled.lm_id)
    raw = qe.qe_features(prompts=labelled.prompts + sample.prompts, responses=labelled.texts + sample.texts,
                         token_logprobs=labelled.token_logprobs + sample.token_logprobs)
    languages = np.concatenate([labelled.languages, sample.languages])
    return qe.badness_fit(raw=raw, languages=languages, labelled=np.arange(len(labels.y)), bad=bad, weights=weights)


def committee_retrain(
    *, project: Project, parameters: dict[str, Any] | None = None, seed: int = 0, source: FeatureSource | None = None
) -> ModelVersion | None:
    """Train a committee (and, for rating projects, the quality model) on the labels so far,
    Horvitz–Thompson weighted, and store them as a new model version with the committee's
    per-language cross-validated accuracy; None when the labels cannot train one yet."""
    p = round_parameters_clean(parameters)
    source = source or FeatureSource(kind=p["features"], encoder_path=p["encoder_path"])
    watermark = label_watermark(project=project)
    labels = labels_collect(project=project, parameters=p)
    if committee_mod.labels_trainable(labels.y, min_labels=p["min_labels"]) is not None:
        return None
    lm_path = p["causal_lm_path"] or settings.PARITY_CAUSAL_LM_PATH
    lm_id = model_id(Path(lm_path)) if lm_path and Path(lm_path, "config.json").is_file() else None
    labelled = labelled_items_load(labels.item_ids, lm_id=lm_id)
    X = source.matrix(item_ids=labels.item_ids, texts=labelled.texts)
    weights = label_weights(project=project, item_ids=labels.item_ids)
    # Equal weights are no weights: the committee then balances its classes as before.
    sample_weight = weights if np.ptp(weights) > 0 else None
    fitted = committee_mod.committee_fit(X, labels.y, n_learners=p["n_learners"], seed=seed, sample_weight=sample_weight)
    accuracy = committee_mod.cross_validated_accuracy(X, labels.y, labelled.languages, seed=seed)
    quality = quality_model_train(project=project, labels=labels, labelled=labelled, weights=weights)
    blob = fitted.dumps()
    for _attempt in range(5):
        number = (ModelVersion.objects.filter(project=project).aggregate(m=Max("number"))["m"] or 0) + 1
        try:
            with transaction.atomic():
                return ModelVersion.objects.create(
                    project=project, number=number, features=source.key, label_rule=labels.rule,
                    classes=labels.classes, n_labels=len(labels.y), label_watermark=watermark,
                    accuracy=accuracy, parameters={**fitted.parameters, "min_labels": p["min_labels"]}, blob=blob,
                    quality_blob=None if quality is None else quality.dumps(),
                    quality={} if quality is None else {"n_labels": quality.n_labels, "n_bad": quality.n_bad,
                                                        **quality.parameters},
                )
        except IntegrityError:
            continue  # another worker took this number at the same moment
    raise RuntimeError("could not number the model version after five tries")


@dataclass
class RoundModels:
    """What the labels so far taught: the stored version, its committee and quality model."""

    version: ModelVersion | None = None
    committee: committee_mod.FittedCommittee | None = None
    quality: qe.BadnessModel | None = None

    @classmethod
    def of(cls, version: ModelVersion | None) -> RoundModels:
        if version is None:
            return cls()
        quality = qe.BadnessModel.loads(version.quality_blob) if version.quality_blob else None
        return cls(version=version, committee=committee_mod.FittedCommittee.loads(version.blob), quality=quality)


def models_retrain_if_stale(
    *, project: Project, parameters: dict[str, Any], seed: int, source: FeatureSource
) -> RoundModels:
    """The newest model version for these features and label rule; when labels changed
    since it was trained, trains and stores a new one first (a write)."""
    rule = {"task_type": project.task_type}
    if project.task_type == TaskType.RATING:
        rule["bad_below"] = _bad_below(project, parameters)
    latest = (
        ModelVersion.objects.filter(project=project, features=source.key, label_rule=rule).order_by("-number").first()
    )
    if latest is None or latest.label_watermark != label_watermark(project=project):
        # When the new labels cannot train a committee, the last one that could still scores.
        latest = committee_retrain(project=project, parameters=parameters, seed=seed, source=source) or latest
    return RoundModels.of(latest)


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
        if not values or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
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
    rows = (
        queryset
        .order_by("id")
        .values_list(
            "id", "language__tag", "prompt", "response", "response_a", "response_b",
            "token_logprobs", "token_entropy", "reward_a", "reward_b", "metadata",
        )
    )
    for pk, tag, prompt, response, a, b, lp, ent, ra, rb, metadata in rows.iterator(chunk_size=5000):
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
            languages=langs, token_logprobs=logprobs, top_logprobs=tops,
            token_entropy=np.array(entropy, dtype=float), reward_a=np.array(reward_a, dtype=float),
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
    *, allocation: LanguageAllocation, idx: np.ndarray, combined: np.ndarray, features: Any, keys: np.ndarray,
    parameters: dict[str, Any], seed: int,
) -> tuple[list[Pick], bool]:
    """Audit picks (random) and uncertainty picks of one language; True when it was a cold start."""
    rng = _language_seed(seed, allocation.tag)
    audit = idx[rng.choice(len(idx), size=allocation.audit, replace=False)] if allocation.audit else idx[:0]
    rest = np.setdiff1d(idx, audit, assume_unique=True)
    picks = [Pick(int(i), Selection.AUDIT, r) for r, i in enumerate(audit, start=1)]
    if not allocation.uncertainty:
        return picks, False
    scores = combined[rest]
    cold = not np.isfinite(scores).any()
    if cold:
        chosen = representative_select(features=features[rest], keys=keys[rest], k=allocation.uncertainty, seed=seed)
    else:
        chosen = batch_select(
            scores=np.where(np.isfinite(scores), scores, NEUTRAL_SCORE), features=features[rest], keys=keys[rest],
            k=allocation.uncertainty, candidate_factor=parameters["candidate_factor"], mix=parameters["mix"], seed=seed,
        )
    picks += [Pick(int(rest[c]), Selection.UNCERTAINTY, r) for r, c in enumerate(chosen, start=1)]
    return picks, cold


def _components(index: int, raw: dict[str, np.ndarray], pct: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
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
    return RoundInputs(allocation=allocation, pool=pool, source=source, features=features, keys=keys)


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


def _f32(values: np.ndarray) -> bytes:
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
        for item_id, lps, ents in ItemRescore.objects.filter(lm=lm.id, item_id__in=ids[start : start + 5000]).values_list(
            "item_id", "token_logprobs", "token_entropies"
        ):
            cached[item_id] = (bytes(lps), bytes(ents))
    inputs._ragged_logprobs = None
    for i in missing:
        hit = cached.get(int(pool.ids[i]))
        if hit is not None:
            inputs.token_logprobs[i] = np.frombuffer(hit[0], dtype="<f4").astype(float)
            if inputs.token_entropies[i] is None and inputs.top_logprobs[i] is None:
                inputs.token_entropies[i] = np.frombuffer(hit[1], dtype="<f4").astype(float)
    still = [i for i in missing if int(pool.ids[i]) not in cached]
    rescored = inputs_fill_from_lm(inputs=inputs, lm=lm, responses=pool.texts, prompts=pool.prompts,
                                   batch_size=batch_size)
    if still:
        entropies = {i: inputs.token_entropies[i] for i in still}
        ItemRescore.objects.bulk_create(
            [ItemRescore(item_id=int(pool.ids[i]), lm=lm.id, token_logprobs=_f32(inputs.token_logprobs[i]),
                         token_entropies=_f32(entropies[i] if entropies[i] is not None else []))
             for i in still],
            batch_size=1000,
            ignore_conflicts=True,  # two workers rescoring the same item store equal values
        )
    return rescored


def pool_score(*, pool: Pool, features: Any, models: RoundModels, parameters: dict[str, Any], lm: Any = None) -> PoolScores:
    """Every usable scorer's raw value for each item of `pool` — the whole pool inline, or
    one chunk on a worker. A value depends only on its own item (percentiles come later,
    over the whole pool), so chunks scored anywhere give the same values."""
    rescored = lm_rescore_cached(pool=pool, lm=lm) if lm is not None else 0
    inputs = pool.inputs
    inputs.features, inputs.committee = features, models.committee
    if models.quality is not None:
        inputs.qe_raw = qe.qe_features(prompts=pool.prompts, responses=pool.texts,
                                       token_logprobs=inputs.token_logprobs)
        inputs.qe_model = models.quality
    names = parameters["scorers"] or None
    raw = scores_compute(inputs=inputs, names=names)
    return PoolScores(raw=raw, rescored=rescored, available=[s.name for s in scorers_usable(inputs=inputs, names=names)])


def round_scores_combine(*, pool: Pool, scores: PoolScores, parameters: dict[str, Any]) -> RoundScores:
    """Percentiles within each language over the whole pool, then the weighted combination."""
    combined, pct = scores_combine(raw=scores.raw, groups=pool.languages, weights=parameters["weights"])
    return RoundScores(raw=scores.raw, combined=combined, pct=pct, rescored=scores.rescored, available=scores.available)


def round_picks_choose(*, request: RoundRequest, inputs: RoundInputs, scores: RoundScores) -> RoundPicks:
    picks: list[Pick] = []
    cold_start: list[str] = []
    by_language = group_indices(inputs.pool.languages)
    for alloc in inputs.allocation:
        if not alloc.total:
            continue
        idx = by_language.get(alloc.tag, np.zeros(0, dtype=np.int64))
        if len(idx) < alloc.total:
            raise _fail("budget", f"the pool of {alloc.tag} changed while the round ran; run it again")
        lang_picks, cold = picks_for_language(
            allocation=alloc, idx=idx, combined=scores.combined, features=inputs.features, keys=inputs.keys,
            parameters=request.parameters, seed=request.seed,
        )
        picks += lang_picks
        if cold:
            cold_start.append(alloc.tag)
    return RoundPicks(picks=picks, cold_start=cold_start)


def round_record_write(
    *, request: RoundRequest, inputs: RoundInputs, models: RoundModels, scores: RoundScores, chosen: RoundPicks,
    actor: Any = None, token: Any = None, round_id: int | None = None,
) -> SelectionRound:
    """The round, its selected items with their score components and the items' move to
    the queue, in one transaction."""
    project, pool, picks = request.project, inputs.pool, chosen.picks
    priority = scores.priority
    language_ids = dict(project.languages.values_list("tag", "id"))
    summary: dict[str, Any] = {
        "pool": len(pool.ids),
        "selected": len(picks),
        "scorers": sorted(scores.raw),
        "scorers_available": scores.available,
        "rescored_with_lm": scores.rescored,
        "cold_start_languages": chosen.cold_start,
        "labels": models.version.n_labels if models.version else 0,
        "quality_model": models.quality is not None,
        "features": inputs.source.key,
    }
    with transaction.atomic():
        if round_id is None:
            selection_round = SelectionRound(
                project=project, created_by=actor if getattr(actor, "is_authenticated", False) else None, token=token
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
        selection_round.summary = summary
        selection_round.save()
        RoundItem.objects.bulk_create(
            [
                RoundItem(
                    round=selection_round, item_id=int(pool.ids[pick.index]),
                    language_id=language_ids[pool.languages[pick.index]], selection=pick.selection, rank=pick.rank,
                    score=float(priority[pick.index]), components=_components(pick.index, scores.raw, scores.pct),
                )
                for pick in picks
            ],
            batch_size=2000,
        )
        for selection in (Selection.AUDIT, Selection.UNCERTAINTY):
            chosen_idx = [pick.index for pick in picks if pick.selection == selection]
            items_enqueue(
                project=project, item_ids=pool.ids[chosen_idx].tolist(), priorities=priority[chosen_idx].tolist(),
                selection=selection,
            )
        audit_record(
            verb="al_round.run", actor=actor, token=token, project=project, obj=selection_round,
            data={"strategy": request.strategy, "budget": request.budget, "seed": request.seed, "selected": len(picks),
                  "model_version": models.version.number if models.version else None},
        )
    return selection_round


def round_execute(
    *, request: RoundRequest, actor: Any = None, token: Any = None, round_id: int | None = None,
    progress: Callable[[str], None] | None = None, chunks: Sequence[ChunkScores] | None = None,
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
            models = models_retrain_if_stale(project=request.project, parameters=p, seed=request.seed,
                                             source=inputs.source)
    with clock.stage("scoring"):
        if chunks is None:
            lm = _causal_lm(p) if any(lp is None for lp in inputs.pool.inputs.token_logprobs) else None
            pool_scores = pool_score(pool=inputs.pool, features=inputs.features, models=models, parameters=p, lm=lm)
        else:
            pool_scores = chunks_gather(chunks=chunks, ids=inputs.pool.ids)
        scores = round_scores_combine(pool=inputs.pool, scores=pool_scores, parameters=p)
    with clock.stage("selection"):
        chosen = round_picks_choose(request=request, inputs=inputs, scores=scores)
    with clock.stage("write"):
        selection_round = round_record_write(request=request, inputs=inputs, models=models, scores=scores,
                                             chosen=chosen, actor=actor, token=token, round_id=round_id)
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
        return {"ids": self.ids, "raw": self.raw, "rescored": self.rescored, "available": self.available}

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
        request = round_request_clean(
            project=selection_round.project, budget=selection_round.budget, strategy=selection_round.strategy,
            seed=selection_round.seed, parameters=selection_round.parameters,
        )
        source = FeatureSource(kind=request.parameters["features"], encoder_path=request.parameters["encoder_path"])
        models = models_retrain_if_stale(project=request.project, parameters=request.parameters, seed=request.seed,
                                         source=source)
        SelectionRound.objects.filter(pk=round_id).update(model_version=models.version)
        ids = list(pool_queryset(project=request.project).order_by("id").values_list("pk", flat=True))
        return PreparedRound(request=request, models=models, pool_ids=ids)
    raise AssertionError("unreachable: a failure is recorded and raised")


def _round_models(selection_round: SelectionRound) -> RoundModels:
    version = (
        ModelVersion.objects.filter(pk=selection_round.model_version_id).first()
        if selection_round.model_version_id else None
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
    scores = pool_score(pool=pool, features=features, models=_round_models(selection_round), parameters=p, lm=lm)
    return ChunkScores(
        ids=pool.ids.tolist(),
        raw={name: [None if not np.isfinite(v) else float(v) for v in values] for name, values in scores.raw.items()},
        rescored=scores.rescored, available=scores.available,
    )


def round_finish_chunks(*, round_id: int, chunks: Sequence[ChunkScores | dict[str, Any]]) -> SelectionRound:
    """Rank, allocate, select and queue once, from every chunk's scores."""
    selection_round = SelectionRound.objects.select_related("project", "created_by", "token").get(pk=round_id)
    with round_failure_recorded(round_id=round_id):
        request = round_request_clean(
            project=selection_round.project, budget=selection_round.budget, strategy=selection_round.strategy,
            seed=selection_round.seed, parameters=selection_round.parameters,
        )
        return round_execute(
            request=request, actor=selection_round.created_by, token=selection_round.token, round_id=round_id,
            chunks=[ChunkScores.of(c) for c in chunks], models=_round_models(selection_round),
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
        message = "; ".join(f"{name}: {text}" if name else text for name, text in validation_messages(exc))
    else:
        message = f"{type(exc).__name__}: {exc}"
    rounds = SelectionRound.objects.filter(pk=round_id)
    if task_id:
        # Only this run's claim: a round another worker took over meanwhile is its business.
        rounds = rounds.filter(status=RoundStatus.RUNNING, task_id=task_id)
    rounds.update(status=RoundStatus.FAILED, error=message[:2000], finished_at=timezone.now())


def round_create_queued(*, request: RoundRequest, actor: Any = None, token: Any = None) -> SelectionRound:
    """Record a round for a worker to run (the broker path)."""
    return SelectionRound.objects.create(
        project=request.project, strategy=request.strategy, budget=request.budget, seed=request.seed,
        parameters=request.parameters, allocation={a.tag: a.as_dict() for a in round_preview(request=request)},
        status=RoundStatus.QUEUED, created_by=actor if getattr(actor, "is_authenticated", False) else None,
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
    selection_round = SelectionRound.objects.select_related("project", "created_by", "token").get(pk=round_id)
    with round_failure_recorded(round_id=round_id, task_id=task_id):
        request = round_request_clean(
            project=selection_round.project, budget=selection_round.budget, strategy=selection_round.strategy,
            seed=selection_round.seed, parameters=selection_round.parameters,
        )
        return round_execute(
            request=request, actor=selection_round.created_by, token=selection_round.token, round_id=round_id
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
        return [(None if name == "__all__" else name, str(message))
                for name, messages in exc.message_dict.items() for message in messages]
    return [(None, str(message)) for message in exc.messages]

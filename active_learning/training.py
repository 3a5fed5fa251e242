"""Training what a round scores with: the human labels it learns from (the label rule of
annotation.labels), their audit weights, the features, the quality model and the committee,
retrained when the labels moved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max

from active_learning import committee as committee_mod
from active_learning import qe
from active_learning.features import (
    Encoder,
    embeddings_for_items,
    encoder_load,
    features_describe,
    hashing_features,
    item_feature_text,
    model_id,
)
from active_learning.models import ItemRescore, ModelVersion, RoundItem
from active_learning.parameters import _fail, _scale, pool_queryset, round_parameters_clean
from annotation.agreement import item_labels
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    FinalLabel,
    Item,
    Judgment,
    Project,
    Selection,
    TaskType,
)

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


def _label_class(
    project: Project, value: dict[str, Any], mean: float | None, bad_below: float
) -> str | None:
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
    pairs = [
        (i, _label_class(project, value, mean, bad_below))
        for i, (value, mean) in sorted(raw.items())
    ]
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
    judged = Judgment.objects.filter(
        item__project=project, kind__in=COUNTED_JUDGMENT_KINDS
    ).aggregate(m=Max("id"), n=Count("id"))
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

    def matrix(self, *, item_ids: Sequence[int] | np.ndarray, texts: Sequence[str]) -> Any:
        if self.encoder is None:
            return hashing_features(texts)
        return embeddings_for_items(
            encoder=self.encoder, item_ids=item_ids, texts=texts, batch_size=self.batch_size
        )


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
        for pk, tag, prompt, response, a, b, lp in Item.objects.filter(
            pk__in=item_ids[start : start + 5000]
        ).values_list(
            "pk",
            "language__tag",
            "prompt",
            "response",
            "response_a",
            "response_b",
            "token_logprobs",
        ):
            rows[pk] = (
                tag,
                prompt,
                item_feature_text(response=response, response_a=a, response_b=b),
                lp,
            )
    if lm_id:
        missing = [i for i in item_ids if not rows[i][3]]
        for start in range(0, len(missing), 5000):
            for pk, lps in ItemRescore.objects.filter(
                lm=lm_id, item_id__in=missing[start : start + 5000]
            ).values_list("item_id", "token_logprobs"):
                tag, prompt, text, _ = rows[pk]
                rows[pk] = (
                    tag,
                    prompt,
                    text,
                    np.frombuffer(bytes(lps), dtype="<f4").astype(float).tolist(),
                )
    ordered = [rows[i] for i in item_ids]
    return LabelledItems(
        texts=[r[2] for r in ordered],
        prompts=[r[1] for r in ordered],
        token_logprobs=[np.asarray(r[3], dtype=float) if r[3] else None for r in ordered],
        languages=np.array([r[0] for r in ordered], dtype=object),
        lm_id=lm_id,
    )


def label_weights(*, project: Project, item_ids: Sequence[int]) -> np.ndarray:
    """Horvitz–Thompson weight of each labelled item (`qe.selection_weights`, the audit
    weights `estimation.mean_estimate` takes): an audit item stands for the part of its
    language's pool its round did not pick for uncertainty ((pool − uncertainty) ÷ audit
    of that round's allocation); an uncertainty pick, and an item that came to humans any
    other way, for itself. Unequal weights say the labels were selected by rounds."""
    weight_of: dict[int, float] = {}
    for start in range(0, len(item_ids), 5000):
        rows = RoundItem.objects.filter(
            round__project=project,
            item_id__in=item_ids[start : start + 5000],
            selection=Selection.AUDIT,
        ).values_list("item_id", "language__tag", "round__allocation")
        for item_id, tag, allocation in rows:
            share = (allocation or {}).get(tag) or {}
            audit = int(share.get("audit") or 0)
            if audit > 0:
                weight_of[item_id] = max(
                    1.0, (int(share.get("pool") or 0) - int(share.get("uncertainty") or 0)) / audit
                )
    return np.array([weight_of.get(int(i), 1.0) for i in item_ids], dtype=float)


QUALITY_REFERENCE_SAMPLE = 5000


@dataclass
class QualityInputs:
    """`qe.qe_features` of the labelled items (first, in `Labels.item_ids` order) and of a
    sample of the pool: what the quality model and the committee's weights are fitted on."""

    raw: np.ndarray
    languages: np.ndarray
    n_labelled: int


def quality_inputs_load(*, project: Project, labelled: LabelledItems) -> QualityInputs:
    """The labelled items' quality features beside those of up to QUALITY_REFERENCE_SAMPLE
    pool items, evenly spaced by id (reproducible, and no ORDER BY random() over a large
    pool)."""
    pool_ids = np.fromiter(
        pool_queryset(project=project).order_by("id").values_list("pk", flat=True), dtype=np.int64
    )
    if len(pool_ids) > QUALITY_REFERENCE_SAMPLE:
        pool_ids = pool_ids[
            np.linspace(0, len(pool_ids) - 1, QUALITY_REFERENCE_SAMPLE).round().astype(np.int64)
        ]
    sample = labelled_items_load(pool_ids.tolist(), lm_id=labelled.lm_id)
    raw = qe.qe_features(
        prompts=labelled.prompts + sample.prompts,
        responses=labelled.texts + sample.texts,
        token_logprobs=labelled.token_logprobs + sample.token_logprobs,
    )
    return QualityInputs(
        raw=raw,
        languages=np.concatenate([labelled.languages, sample.languages]),
        n_labelled=len(labelled.texts),
    )


def quality_model_train(
    *, project: Project, labels: Labels, inputs: QualityInputs
) -> qe.BadnessModel | None:
    """The quality model of a rating project: P(bad) from glass-box and source–output
    features, per language with shrinkage, every label weighing the same (uncertainty
    picks were chosen by these features: a covariate shift the model needs no weights
    for, see `qe`); None when the labels cannot train it. Percentiles are taken against
    the labelled items and the pool sample, so the scale is the pool's."""
    if project.task_type != TaskType.RATING or "bad" not in labels.classes:
        return None
    bad = labels.y == labels.classes.index("bad")
    if qe.badness_trainable(bad) is not None:
        return None
    return qe.badness_fit(
        raw=inputs.raw, languages=inputs.languages, labelled=np.arange(inputs.n_labelled), bad=bad
    )


def committee_retrain(
    *,
    project: Project,
    parameters: dict[str, Any] | None = None,
    seed: int = 0,
    source: FeatureSource | None = None,
) -> ModelVersion | None:
    """Train a committee (weighted towards the pool once rounds picked its labels) and, for
    rating projects, the quality model on the labels so far, and store them as a new model version with the committee's
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
    # Labels from rounds with an audit slice are a biased sample of the pool (the picks
    # looked bad): the committee is weighted towards the pool it will score
    # (`qe.pool_weights`). Without audit items (historical labels, no round yet) it
    # balances its classes as before.
    selected = np.ptp(label_weights(project=project, item_ids=labels.item_ids)) > 0
    rating = project.task_type == TaskType.RATING and "bad" in labels.classes
    inputs = quality_inputs_load(project=project, labelled=labelled) if selected or rating else None
    sample_weight = None
    if selected and inputs is not None:
        sample_weight = qe.pool_weights(
            raw=inputs.raw, languages=inputs.languages, labelled=np.arange(inputs.n_labelled)
        )
    fitted = committee_mod.committee_fit(
        X, labels.y, n_learners=p["n_learners"], seed=seed, sample_weight=sample_weight
    )
    accuracy = committee_mod.cross_validated_accuracy(X, labels.y, labelled.languages, seed=seed)
    quality = (
        None
        if inputs is None
        else quality_model_train(project=project, labels=labels, inputs=inputs)
    )
    blob = fitted.dumps()
    for _attempt in range(5):
        number = (
            ModelVersion.objects.filter(project=project).aggregate(m=Max("number"))["m"] or 0
        ) + 1
        try:
            with transaction.atomic():
                return ModelVersion.objects.create(
                    project=project,
                    number=number,
                    features=source.key,
                    label_rule=labels.rule,
                    classes=labels.classes,
                    n_labels=len(labels.y),
                    label_watermark=watermark,
                    accuracy=accuracy,
                    parameters={**fitted.parameters, "min_labels": p["min_labels"]},
                    blob=blob,
                    quality_blob=None if quality is None else quality.dumps(),
                    quality={}
                    if quality is None
                    else {
                        "n_labels": quality.n_labels,
                        "n_bad": quality.n_bad,
                        **quality.parameters,
                    },
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
        return cls(
            version=version,
            committee=committee_mod.FittedCommittee.loads(version.blob),
            quality=quality,
        )


def models_retrain_if_stale(
    *, project: Project, parameters: dict[str, Any], seed: int, source: FeatureSource
) -> RoundModels:
    """The newest model version for these features and label rule; when labels changed
    since it was trained, trains and stores a new one first (a write)."""
    rule = {"task_type": project.task_type}
    if project.task_type == TaskType.RATING:
        rule["bad_below"] = _bad_below(project, parameters)
    latest = (
        ModelVersion.objects.filter(project=project, features=source.key, label_rule=rule)
        .order_by("-number")
        .first()
    )
    if latest is None or latest.label_watermark != label_watermark(project=project):
        # When the new labels cannot train a committee, the last one that could still scores.
        latest = (
            committee_retrain(project=project, parameters=parameters, seed=seed, source=source)
            or latest
        )
    return RoundModels.of(latest)

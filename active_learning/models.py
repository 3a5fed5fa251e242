"""Active-learning records: cached embeddings, committee model versions, selection rounds.

A round is an audit trail: what was asked (strategy, parameters, seed), what the model
knew (model version), how the budget was split (allocation) and why each item was
picked (its score components). Items themselves are queued through an `annotation`
service; this app never writes annotation tables directly.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annotation.models import ApiToken, Item, Language, Project


class Strategy(models.TextChoices):
    UNIFORM = "uniform", _("uniform: the same share for every language")
    PROPORTIONAL = "proportional", _("proportional to each language's pool")
    PARITY = "parity", _("parity: audit slice, then more for languages that lag")


class RoundStatus(models.TextChoices):
    QUEUED = "queued", _("waiting for a worker")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


class ItemEmbedding(models.Model):
    """A mean-pooled encoder embedding of an item's text, cached per encoder."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    # Encoder id: the folder name and a digest of its configuration and weights, so a
    # retrained encoder at the same path never reuses stale vectors.
    encoder = models.CharField(max_length=120)
    dims = models.PositiveIntegerField()
    vector = models.BinaryField()  # float32, little-endian
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "encoder"], name="item_embedding_unique"),
            models.CheckConstraint(condition=Q(dims__gte=1), name="item_embedding_dims_positive"),
        ]

    def __str__(self) -> str:
        return f"embedding of {self.item_id} by {self.encoder}"


class ModelVersion(models.Model):
    """A committee trained on the human labels of a project, with its cross-validated accuracy."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="al_model_versions")
    number = models.PositiveIntegerField()
    features = models.CharField(max_length=140)  # "hashing" or "encoder:<encoder id>"
    label_rule = models.JSONField(default=dict)
    classes = models.JSONField(default=list)
    n_labels = models.PositiveIntegerField()
    # Highest judgment / final-label id the labels were read up to: a newer one makes it stale.
    label_watermark = models.CharField(max_length=60)
    # {"overall": 0.71, "folds": 5, "languages": {"de": {"accuracy": 0.8, "n": 40}, …}}
    accuracy = models.JSONField(default=dict)
    parameters = models.JSONField(default=dict)
    # zlib-compressed pickle of the fitted learners. Only this app's own worker writes it;
    # it is never loaded from anywhere else.
    blob = models.BinaryField()
    # The quality model (`qe.BadnessModel`, rating projects) trained on the same labels,
    # pickled the same way; empty when the labels could not train one.
    quality_blob = models.BinaryField(null=True, blank=True)
    # {"n_labels": …, "n_bad": …, "C": …, "features": […], "weighting": "none"}
    quality = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "number"], name="al_model_version_number_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug} model v{self.number}"


class ItemRescore(models.Model):
    """Token log-probs and entropies of an item's output, rescored by a local causal LM,
    cached per item and LM id: a pool rescored once is not rescored by the next round."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    # The LM id (`features.model_id`): folder name plus a digest of its configuration and
    # weights, so a retrained LM at the same path never reuses stale log-probs.
    lm = models.CharField(max_length=120)
    # float32, little-endian, one per output token
    token_logprobs = models.BinaryField()
    token_entropies = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "lm"], name="item_rescore_unique")]

    def __str__(self) -> str:
        return f"rescore of {self.item_id} by {self.lm}"


class SelectionRound(models.Model):
    """One active-learning round: which pool items went to humans, and why."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="al_rounds")
    strategy = models.CharField(max_length=12, choices=Strategy.choices)
    budget = models.PositiveIntegerField()
    seed = models.BigIntegerField(default=0)
    parameters = models.JSONField(default=dict)
    # {"de": {"audit": 12, "uncertainty": 88, "total": 100, "pool": …, "capacity": …, "quality": …, "lag": …}, …}
    allocation = models.JSONField(default=dict)
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="rounds"
    )
    status = models.CharField(max_length=8, choices=RoundStatus.choices, default=RoundStatus.QUEUED)
    # What the round saw and did: pool size, scorers used, items rescored, cold-start languages, seconds.
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token = models.ForeignKey(
        ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Which worker message runs it, and since when: a redelivery of the same message (its
    # worker died) or a run older than PARITY_ROUND_STALE_SECONDS may take the round over.
    started_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(budget__gte=1), name="al_round_budget_positive"),
            models.CheckConstraint(
                condition=Q(strategy__in=[c.value for c in Strategy]),
                name="al_round_strategy_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[c.value for c in RoundStatus]), name="al_round_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug} round {self.pk} ({self.strategy}, {self.budget})"


class RoundItem(models.Model):
    """An item a round sent to humans, with the score components that picked it."""

    round = models.ForeignKey(SelectionRound, on_delete=models.CASCADE, related_name="selections")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    selection = models.CharField(max_length=12)  # annotation Selection: audit or uncertainty
    rank = models.PositiveIntegerField()  # order of picking within the language
    score = models.FloatField()  # the combined score, which became the item's queue priority
    # {"nll": {"raw": 1.3, "pct": 0.93}, …}; percentiles are within the item's language.
    components = models.JSONField(default=dict)

    class Meta:
        ordering = ["round", "language", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["round", "item"], name="al_round_item_unique"),
            models.CheckConstraint(
                condition=Q(selection__in=["audit", "uncertainty"]),
                name="al_round_item_selection_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"round {self.round_id}: item {self.item_id} ({self.selection})"

"""Guidelines and calibration: the shared understanding behind the judgments.

A project has one guideline document with semantic versions (major.minor.patch), each a
Markdown body in the guideline's source language, a changelog, and translations into the
project's languages. Calibration rounds (per project, language and guideline version)
are made of gold items; evaluators take them in attempts, each in its own shuffled order.

The core (`annotation`) never imports this app: the current version and an evaluator's
acknowledgement and verdicts are recorded in its plain fields through its services.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annotation.models import Item, Language, Project


class Guideline(models.Model):
    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="guideline")
    # The language the lead writes in; translations fall back to it.
    source_language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"guideline of {self.project.slug}"


class GuidelineVersion(models.Model):
    guideline = models.ForeignKey(Guideline, on_delete=models.CASCADE, related_name="versions")
    major = models.PositiveIntegerField()
    minor = models.PositiveIntegerField()
    patch = models.PositiveIntegerField()
    body = models.TextField(_("body (Markdown)"))
    changelog = models.TextField(_("what changed"), blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-major", "-minor", "-patch"]
        constraints = [
            models.UniqueConstraint(
                fields=["guideline", "major", "minor", "patch"], name="guideline_version_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.version

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


class GuidelineTranslation(models.Model):
    version = models.ForeignKey(
        GuidelineVersion, on_delete=models.CASCADE, related_name="translations"
    )
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(_("body (Markdown)"))
    translated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "language"], name="guideline_translation_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} in {self.language.tag}"


class WorkedExample(models.Model):
    """An item, the judgment the guideline expects for it, and why."""

    guideline = models.ForeignKey(Guideline, on_delete=models.CASCADE, related_name="examples")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    value = models.JSONField(_("the right judgment"))
    explanation = models.TextField(_("why"))
    position = models.PositiveSmallIntegerField(default=0)
    added_in = models.CharField(_("added in version"), max_length=20, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["guideline", "item"], name="worked_example_item_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"example {self.item}"


class GuidelineAcknowledgement(models.Model):
    """An evaluator read this version (the history behind Qualification.acknowledged_version)."""

    version = models.ForeignKey(
        GuidelineVersion, on_delete=models.CASCADE, related_name="acknowledgements"
    )
    evaluator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "evaluator"], name="guideline_acknowledgement_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator} read {self.version}"


class CalibrationRoundStatus(models.TextChoices):
    DRAFT = "draft", _("draft")
    OPEN = "open", _("open")
    CLOSED = "closed", _("closed")


class CalibrationRound(models.Model):
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="calibration_rounds"
    )
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    # The guideline version the round tests; evaluators are routed to an open round of the
    # project's current major version.
    guideline_version = models.CharField(_("guideline version"), max_length=20, blank=True)
    name = models.CharField(_("name"), max_length=200, blank=True)
    pass_mark = models.FloatField(_("pass mark (share correct, 0–1)"))
    cooldown_seconds = models.PositiveIntegerField(_("retry cool-down (seconds)"), default=3600)
    status = models.CharField(
        max_length=6, choices=CalibrationRoundStatus.choices, default=CalibrationRoundStatus.DRAFT
    )
    gold_items = models.ManyToManyField(Item, related_name="calibration_rounds", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(pass_mark__gte=0) & Q(pass_mark__lte=1),
                name="calibration_round_pass_mark_0_1",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[c.value for c in CalibrationRoundStatus]),
                name="calibration_round_status_valid",
            ),
            # Routing an evaluator to "the" round of their language needs at most one open.
            models.UniqueConstraint(
                fields=["project", "language"],
                condition=Q(status="open"),
                name="calibration_round_one_open_per_language",
            ),
        ]

    def __str__(self) -> str:
        return (
            self.name
            or f"{self.project.slug} · {self.language.tag} · {self.guideline_version or '—'}"
        )


class AttemptVerdict(models.TextChoices):
    IN_PROGRESS = "in_progress", _("in progress")
    PASSED = "passed", _("passed")
    FAILED = "failed", _("failed")


class CalibrationAttempt(models.Model):
    round = models.ForeignKey(CalibrationRound, on_delete=models.CASCADE, related_name="attempts")
    evaluator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calibration_attempts"
    )
    number = models.PositiveSmallIntegerField(default=1)
    # The order is a seeded shuffle of the round's gold items, fixed when the attempt starts
    # (a reload shows the same next item; a retry gets another seed and another order).
    seed = models.BigIntegerField()
    order = models.JSONField(default=list)
    verdict = models.CharField(
        max_length=11, choices=AttemptVerdict.choices, default=AttemptVerdict.IN_PROGRESS
    )
    correct = models.PositiveSmallIntegerField(default=0)
    total = models.PositiveSmallIntegerField(default=0)
    score = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["round", "evaluator", "number"], name="calibration_attempt_number_unique"
            ),
            # Two tabs starting at once get one attempt, not two.
            models.UniqueConstraint(
                fields=["round", "evaluator"],
                condition=Q(verdict="in_progress"),
                name="calibration_attempt_one_in_progress",
            ),
            models.CheckConstraint(
                condition=Q(verdict__in=[c.value for c in AttemptVerdict]),
                name="calibration_attempt_verdict_valid",
            ),
            models.CheckConstraint(
                condition=Q(verdict="in_progress")
                | Q(finished_at__isnull=False, score__isnull=False),
                name="calibration_attempt_finished_has_score",
            ),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | (Q(score__gte=0) & Q(score__lte=1)),
                name="calibration_attempt_score_0_1",
            ),
        ]
        indexes = [
            # calibration_state: an evaluator's latest attempt in a round.
            models.Index(
                fields=["evaluator", "round", "-started_at"], name="calibration_attempt_latest"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator} · {self.round} · #{self.number} ({self.verdict})"

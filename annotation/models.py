"""The core data model of Parity.

Rules that must always hold are database constraints, not checks in `save()`:
an item never has negative open slots, an evaluator holds at most one assignment per
item, an assignment has at most one current judgment, and so on. State changes happen
in the service modules (`queue/`, `qualification.py`, `imports/`, …), never in
`save()` or signals.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Direction(models.TextChoices):
    LTR = "ltr", _("left to right")
    RTL = "rtl", _("right to left")


class Language(models.Model):
    """A language as a BCP 47 tag (normalised with `langcodes`), with its script."""

    tag = models.CharField(_("BCP 47 tag"), max_length=35, unique=True)
    name = models.CharField(_("name"), max_length=100)
    script = models.CharField(_("script (ISO 15924)"), max_length=4, blank=True)
    direction = models.CharField(
        _("direction"), max_length=3, choices=Direction.choices, default=Direction.LTR
    )

    class Meta:
        ordering = ["tag"]

    def __str__(self) -> str:
        return f"{self.name} ({self.tag})"


class TaskType(models.TextChoices):
    RATING = "rating", _("rating")
    PAIRWISE = "pairwise", _("pairwise preference")
    LABELS = "labels", _("labels")


class AgreementLevel(models.TextChoices):
    NOMINAL = "nominal", _("nominal")
    ORDINAL = "ordinal", _("ordinal")
    INTERVAL = "interval", _("interval")
    RATIO = "ratio", _("ratio")


class Project(models.Model):
    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    task_type = models.CharField(_("task type"), max_length=10, choices=TaskType.choices)
    # Validated by annotation.schema.schema_validate: scale bounds, labels, issues, level.
    schema = models.JSONField(_("judgment schema"), default=dict, blank=True)
    languages = models.ManyToManyField(Language, related_name="projects", blank=True)
    overlap = models.PositiveSmallIntegerField(_("judgments per item (k)"), default=3)
    lease_seconds = models.PositiveIntegerField(_("lease length (seconds)"), default=600)
    agreement_threshold = models.FloatField(_("agreement threshold (alpha)"), default=0.667)
    honeypot_rate = models.FloatField(_("honeypot rate"), default=0.0)
    honeypot_window = models.PositiveSmallIntegerField(_("honeypot window (last N)"), default=20)
    honeypot_threshold = models.FloatField(_("honeypot accuracy threshold"), default=0.7)
    honeypot_min_judged = models.PositiveSmallIntegerField(
        _("honeypots judged before suspension can apply"), default=5
    )
    # Reading-speed floor: a judgment that implies reading faster than this many characters
    # of shown text per second is flagged as too fast (long Thai and short English items are
    # treated alike). 0 disables the check.
    max_chars_per_second = models.FloatField(_("reading-speed floor (max chars/s)"), default=0.0)
    # Imported items go straight to the queue, or wait in the pool for an active-learning round.
    queue_on_import = models.BooleanField(_("queue imported items at once"), default=True)
    # Adjudication rule for ratings: spread (max - min) above this sends an item to adjudication.
    adjudication_rating_spread = models.FloatField(
        _("rating spread for adjudication"), null=True, blank=True
    )
    # Set by the guidelines app through annotation services; "" means no guideline yet.
    guideline_version = models.CharField(_("current guideline version"), max_length=20, blank=True)
    # When a pull last started handing out preference lines: a judgment submitted before
    # then, on an item with a mark, may be in a consumer's hands (undo is refused). The
    # background sweep marks ahead of any pull and hands out nothing.
    export_handed_at = models.DateTimeField(null=True, blank=True, editable=False)
    leads = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="led_projects", blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=Q(honeypot_rate__gte=0) & Q(honeypot_rate__lte=1),
                name="project_honeypot_rate_0_1",
            ),
            models.CheckConstraint(
                condition=Q(honeypot_threshold__gte=0) & Q(honeypot_threshold__lte=1),
                name="project_honeypot_threshold_0_1",
            ),
            models.CheckConstraint(
                condition=Q(lease_seconds__gte=10), name="project_lease_at_least_10s"
            ),
            models.CheckConstraint(
                condition=Q(task_type__in=[c.value for c in TaskType]),
                name="project_task_type_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def agreement_level(self) -> str:
        level = (self.schema or {}).get("level")
        if level:
            return level
        return (
            AgreementLevel.ORDINAL if self.task_type == TaskType.RATING else AgreementLevel.NOMINAL
        )


class Proficiency(models.TextChoices):
    NATIVE = "native", _("native")
    FLUENT = "fluent", _("fluent")


class EvaluatorProfile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="evaluator_profile"
    )
    # A stable pseudonym for raw exports; never the username.
    pseudonym = models.CharField(max_length=32, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return str(self.user)


class EvaluatorLanguage(models.Model):
    profile = models.ForeignKey(
        EvaluatorProfile, on_delete=models.CASCADE, related_name="languages"
    )
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    proficiency = models.CharField(
        max_length=6, choices=Proficiency.choices, default=Proficiency.NATIVE
    )
    dialect = models.CharField(_("dialect or region"), max_length=100, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "language"], name="evaluator_language_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.language.tag} ({self.proficiency})"


class QualificationStatus(models.TextChoices):
    PENDING = "pending", _("pending calibration")
    QUALIFIED = "qualified", _("qualified")
    SUSPENDED = "suspended", _("suspended")
    REQUALIFY = "requalify", _("must requalify")


class Qualification(models.Model):
    """May this evaluator work this project in this language?"""

    evaluator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="qualifications"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="qualifications")
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=10, choices=QualificationStatus.choices, default=QualificationStatus.PENDING
    )
    # Senior evaluators adjudicate disagreements in their language.
    is_senior = models.BooleanField(_("senior (may adjudicate)"), default=False)
    guideline_version = models.CharField(_("guideline version passed"), max_length=20, blank=True)
    # Set by the guidelines app: the guideline version this evaluator acknowledged.
    acknowledged_version = models.CharField(max_length=20, blank=True)
    reason = models.TextField(_("reason for the current status"), blank=True)
    honeypot_accuracy = models.FloatField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["evaluator", "project", "language"], name="qualification_unique"
            ),
        ]
        indexes = [
            # item_claim_next: the languages an evaluator may work in a project.
            models.Index(fields=["evaluator", "project", "status"], name="qualification_lookup"),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator} · {self.project.slug} · {self.language.tag}: {self.status}"


class ExternalRater(models.Model):
    """A rater whose judgments were imported (no login): historical data a team already has."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="external_raters")
    external_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="external_rater_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id


class ItemStatus(models.TextChoices):
    POOL = "pool", _("in the pool")
    QUEUED = "queued", _("queued")
    DONE = "done", _("done")
    ADJUDICATION = "adjudication", _("needs adjudication")
    FINAL = "final", _("final")


class ItemSource(models.TextChoices):
    IMPORT = "import", _("import")
    USER_REPORT = "user_report", _("user report")


class Selection(models.TextChoices):
    """How an item came to be queued; the parity report estimates quality only from
    items that were not picked for being uncertain."""

    DIRECT = "direct", _("queued directly (all imported items)")
    RANDOM = "random", _("random sample")
    AUDIT = "audit", _("random audit slice of an active-learning round")
    UNCERTAINTY = "uncertainty", _("picked by an uncertainty selector")


class Item(models.Model):
    # No index of its own: the unique (project, external_id) and the composite indexes below
    # lead with the project, and an index whose million entries share one key costs an import
    # about a quarter of its time.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="items")
    external_id = models.CharField(max_length=200)
    prompt = models.TextField(blank=True)
    response = models.TextField(blank=True)
    response_a = models.TextField(blank=True)
    response_b = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    model_a = models.CharField(max_length=200, blank=True)
    model_b = models.CharField(max_length=200, blank=True)
    # Groups several responses to one prompt (rating projects export best-vs-worst pairs).
    prompt_id = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Uncertainty inputs sent by the pipeline.
    token_logprobs = models.JSONField(null=True, blank=True)
    token_entropy = models.FloatField(null=True, blank=True)
    reward = models.FloatField(null=True, blank=True)
    reward_a = models.FloatField(null=True, blank=True)
    reward_b = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=12, choices=ItemSource.choices, default=ItemSource.IMPORT)
    # Language check on import: {"detected": "de", "confidence": .., "mixed": [{"language", "start", "end"}]}
    language_check = models.JSONField(null=True, blank=True)
    language_flagged = models.BooleanField(default=False)
    is_gold = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=ItemStatus.choices, default=ItemStatus.QUEUED)
    selection = models.CharField(max_length=12, choices=Selection.choices, default=Selection.DIRECT)
    priority = models.FloatField(default=0.0)
    open_slots = models.PositiveSmallIntegerField(default=0)
    # Bumped by every write that can change the item's exported line (a judgment revised or
    # imported, a vote on a settled item, the item done, sent to adjudication, adjudicated, made gold): the
    # preference export re-marks an item whose version moved, so `since` pulls see it again.
    # A database trigger records every move in ExportPending (below), which an incremental
    # pull reads instead of the project's items.
    label_version = models.PositiveIntegerField(default=0, db_default=0)
    # sha256 of the content fields: re-import of the same content is a no-op.
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="item_external_id_unique"
            ),
            models.CheckConstraint(
                condition=Q(open_slots__gte=0), name="item_open_slots_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(status__in=[c.value for c in ItemStatus]), name="item_status_valid"
            ),
            # Gold items are served as honeypots or in calibration, never as production slots.
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(open_slots=0), name="item_gold_has_no_slots"
            ),
        ]
        indexes = [
            # item_claim_next: highest-priority queued item with an open slot, per project and language.
            models.Index(
                F("project"),
                F("language"),
                F("priority").desc(),
                F("id"),
                name="item_claimable",
                condition=Q(status="queued", open_slots__gt=0, is_gold=False),
            ),
            models.Index(fields=["project", "status"], name="item_project_status"),
            models.Index(
                fields=["project", "language", "is_gold"], name="item_project_language_gold"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}:{self.external_id}"

    @property
    def shown_text(self) -> str:
        """The text an evaluator reads, for the reading-speed floor."""
        return "".join([self.prompt, self.response, self.response_a, self.response_b])


class GoldAnswer(models.Model):
    """The expected judgment of a gold item, used in calibration and as honeypot."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="gold")
    value = models.JSONField()
    # rating: {"points": 1}; pairwise: {"tie_ok": true}; labels: {"jaccard": 0.8} (absent = exact set)
    tolerance = models.JSONField(default=dict, blank=True)
    explanation = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"gold for {self.item}"


class AssignmentKind(models.TextChoices):
    PRODUCTION = "production", _("production")
    CALIBRATION = "calibration", _("calibration")
    HONEYPOT = "honeypot", _("honeypot")
    ADJUDICATION = "adjudication", _("adjudication")


class JudgmentKind(models.TextChoices):
    """Where a judgment came from: an assignment's kind, or an import of historical data."""

    PRODUCTION = "production", _("production")
    CALIBRATION = "calibration", _("calibration")
    HONEYPOT = "honeypot", _("honeypot")
    ADJUDICATION = "adjudication", _("adjudication")
    HISTORICAL = "historical", _("historical")


# The judgments that are production data: what labels, agreement, exports, adjudication and
# active learning count (never honeypot, calibration or an adjudicator's record).
COUNTED_JUDGMENT_KINDS: tuple[str, ...] = (
    JudgmentKind.PRODUCTION.value,
    JudgmentKind.HISTORICAL.value,
)


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", _("leased")
    SUBMITTED = "submitted", _("submitted")
    SKIPPED = "skipped", _("skipped")
    EXPIRED = "expired", _("lease expired")


class SkipReason(models.TextChoices):
    NOT_MY_DIALECT = "not_my_dialect", _("not my dialect")
    CANNOT_JUDGE = "cannot_judge", _("cannot judge")
    OFFENSIVE = "offensive", _("offensive")


class Assignment(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    evaluator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(
        max_length=12, choices=AssignmentKind.choices, default=AssignmentKind.PRODUCTION
    )
    status = models.CharField(
        max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED
    )
    # Calibration attempts (guidelines app) may show the same gold item again on a retry.
    calibration_attempt_id = models.BigIntegerField(null=True, blank=True)
    leased_at = models.DateTimeField(default=timezone.now)
    lease_expires_at = models.DateTimeField()
    skip_reason = models.CharField(max_length=20, choices=SkipReason.choices, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # An evaluator never sees the same item twice outside calibration.
            models.UniqueConstraint(
                fields=["item", "evaluator"],
                condition=~Q(kind="calibration"),
                name="assignment_item_evaluator_unique",
            ),
            models.UniqueConstraint(
                fields=["item", "evaluator", "calibration_attempt_id"],
                condition=Q(kind="calibration"),
                name="assignment_calibration_unique",
            ),
            models.CheckConstraint(
                condition=Q(kind="calibration") | Q(calibration_attempt_id__isnull=True),
                name="assignment_attempt_only_for_calibration",
            ),
            models.CheckConstraint(
                condition=~Q(status="skipped") | ~Q(skip_reason=""),
                name="assignment_skip_has_reason",
            ),
        ]
        indexes = [
            # Leases past their expiry: the claim's probe (_qualified_and_due) and the sweep.
            models.Index(
                fields=["lease_expires_at"],
                name="assignment_open_leases",
                condition=Q(status="leased"),
            ),
            # item_claim_next: "does this evaluator hold a lease in this project already?";
            # the item card: "how many did they submit today?" (a range of submitted_at, not
            # every judgment they ever submitted in the project).
            models.Index(
                fields=["evaluator", "project", "status", "submitted_at"],
                name="assignment_evaluator_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator} → {self.item} ({self.kind}, {self.status})"


class Judgment(models.Model):
    """One judgment revision. An edit adds a revision; nothing is overwritten."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judgments")
    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, null=True, blank=True, related_name="judgments"
    )
    evaluator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="judgments",
    )
    external_rater = models.ForeignKey(
        ExternalRater, on_delete=models.CASCADE, null=True, blank=True, related_name="judgments"
    )
    # The assignment's kind, or historical for an imported judgment.
    kind = models.CharField(max_length=12, choices=JudgmentKind.choices)
    value = models.JSONField()
    seconds = models.FloatField(null=True, blank=True)
    guideline_version = models.CharField(max_length=20, blank=True)
    revision = models.PositiveSmallIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    too_fast = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(
                        evaluator__isnull=False,
                        assignment__isnull=False,
                        external_rater__isnull=True,
                    )
                )
                | (
                    Q(evaluator__isnull=True, assignment__isnull=True, external_rater__isnull=False)
                ),
                name="judgment_by_evaluator_or_external_rater",
            ),
            models.UniqueConstraint(
                fields=["assignment", "revision"], name="judgment_revision_unique"
            ),
            models.UniqueConstraint(
                fields=["assignment"],
                condition=Q(is_current=True),
                name="judgment_one_per_assignment",
            ),
            models.UniqueConstraint(
                fields=["item", "external_rater"],
                condition=Q(is_current=True),
                name="judgment_one_per_external_rater",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=JudgmentKind.values),
                name="judgment_kind_valid",
            ),
        ]
        indexes = [
            # Agreement and export read the current production judgments of a project's items.
            models.Index(
                fields=["item", "kind"], name="judgment_current", condition=Q(is_current=True)
            ),
            models.Index(fields=["evaluator", "-created_at"], name="judgment_evaluator_history"),
        ]

    def __str__(self) -> str:
        return f"judgment r{self.revision} on {self.item_id}"


class FinalLabel(models.Model):
    """The label an item's exports use, decided by adjudication (or promoted gold)."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="final_label")
    value = models.JSONField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"final label of {self.item_id}"


class TokenScope(models.TextChoices):
    IMPORT = "import", _("import")
    EXPORT = "export", _("export")
    READ = "read", _("read")
    # Creates projects; belongs to no project. Made only by an operator
    # (`create_token --scope projects --user NAME`), never offered on a lead's token page.
    PROJECTS = "projects", _("projects")


# The scopes a project's lead may give out on the project's token page.
PROJECT_TOKEN_SCOPES = (TokenScope.IMPORT, TokenScope.EXPORT, TokenScope.READ)


class ApiToken(models.Model):
    """A pipeline's bearer token. Only a hash is stored; the token is shown once.

    A token of the scope `projects` belongs to no project (it creates them); every other
    token belongs to exactly one. For a `projects` token, `created_by` is the user it acts
    for: the projects it creates are led by that user."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="api_tokens", null=True, blank=True
    )
    name = models.CharField(max_length=100, blank=True)
    scope = models.CharField(max_length=8, choices=TokenScope.choices)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Optional: after this moment the token is refused with a message saying so (401).
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(scope=TokenScope.PROJECTS) & Q(project__isnull=True))
                | (~Q(scope=TokenScope.PROJECTS) & Q(project__isnull=False)),
                name="api_token_project_unless_projects_scope",
                violation_error_message="a token of the scope 'projects' belongs to no project; "
                "every other token belongs to one",
            ),
        ]

    def __str__(self) -> str:
        where = self.project.slug if self.project is not None else "all projects"
        return f"{self.prefix}… ({where}, {self.scope})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class AuditEvent(models.Model):
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token = models.ForeignKey(
        ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, null=True, blank=True, related_name="audit_events"
    )
    verb = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=60, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.verb} {self.object_type}:{self.object_id}"


class ExportMark(models.Model):
    """The last moment an item's exported line changed, as a number: the preference
    export's `since` cursor counts these ids. An item is marked when it first becomes
    exportable and marked again (the old mark deleted, a new id taken) whenever its label
    version moves, so a pull after cursor C sees every item changed since C.

    Marks are assigned only by the exporter, under a per-project lock, so within a project
    ids grow in commit order: a pull sees every mark up to its cursor, and a later pull's
    marks are all above it — no pair skipped, none repeated (judgment ids or timestamps
    would not do: concurrent transactions commit out of id order).
    """

    # No database foreign keys: marks are written a million at a time by INSERT … SELECT
    # from existing items, and each foreign-key check would lock its item row (FOR KEY
    # SHARE) and double the cost. A deleted item keeps its mark: a trigger
    # (`item_export_gone`, migration 0012) records it as pending, and the next marking
    # turns the mark into a tombstone (status MARK_DELETED, a new id), which a pull
    # carries as the retraction of the item's line. Deleting the project deletes its marks.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    item = models.OneToOneField(
        Item, on_delete=models.DO_NOTHING, related_name="export_mark", db_constraint=False
    )
    # The item's label_version when it was marked: when the item's moves on, the next
    # export marks it again (a new id past every cursor handed out).
    label_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    # What decides the item's label and whether it has a line, read when it was marked (at
    # `label_version`; a later move marks it again): a pull reads these from the narrow marks
    # instead of the item row, its judgments and its final label. Retractions then read the
    # marks alone, and the lines only the items' texts. Nothing here is a label: the one
    # label rule (annotation.labels) still runs on every pull.
    external_id = models.CharField(max_length=200, blank=True)
    language = models.ForeignKey(
        Language,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
        null=True,
    )
    prompt_id = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=12, blank=True)
    is_gold = models.BooleanField(default=False)
    # The counted judgments' votes, "vote:strength" joined by commas (rows.votes_sql), and the
    # guideline version of the latest; the final label's value. Null when there is none: the
    # marking writes the database's aggregates (string_agg of no rows) as they come.
    votes = models.TextField(null=True)  # noqa: DJ001
    version = models.CharField(max_length=40, null=True)  # noqa: DJ001
    final = models.JSONField(null=True)

    # No index on the project, alone or with the id: a pull reads the id range above its
    # cursor through the primary key, and without that index marking 300,000 items takes
    # 0.6 s instead of 1.6 s.

    def __str__(self) -> str:
        return f"export mark {self.pk} of item {self.item_id}"


class ExportPending(models.Model):
    """An item whose exported line may have changed since the preference export last
    looked: one row per item, written by the database itself whenever the item's
    `label_version` moves (trigger `item_export_pending`, migration 0008: no write path can
    forget it), and taken (deleted) by the export's marking (annotation.exports.marks).

    A narrow table of its own, so that an incremental pull finds and clears what changed
    without reading or rewriting the wide item rows: updating a column of the items for
    each marked item cost most of a `since` pull (bench/README.md).

    The trigger upserts (ON CONFLICT … DO UPDATE), so a writer holds the row's lock until it
    commits: the marking's delete waits for it, and the versions it reads afterwards
    include that write.
    """

    # On SQLite, a migration that rebuilds the item table (most AlterFields do) drops its
    # triggers: such a migration must create item_export_pending (migration 0008 has the
    # SQL) and item_export_gone (0012) again; tests/annotation/test_export_pending.py fails
    # without them.
    # No database foreign keys: the row is written by a trigger on the item's own update,
    # and a foreign-key check would lock the item again. Deleting through Django cascades.
    item = models.OneToOneField(
        Item, on_delete=models.CASCADE, primary_key=True, related_name="+", db_constraint=False
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    # The item's label_version at the latest move (for inspection; the marking reads the item's).
    version = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"export pending: item {self.item_id}"


class ModelVersion(models.Model):
    """A model (or model version) whose outputs a project's items carry, by the name the
    import gives in `model`, `model_a` or `model_b`.

    Registered on import when unknown (`annotation.model_versions.model_versions_register`);
    the lead adds the version label, the release date and notes. The progress report orders
    versions by release date (undated ones last, by name).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    name = models.CharField(_("name"), max_length=200)
    version = models.CharField(_("version"), max_length=100, blank=True)
    released_on = models.DateField(_("release date"), null=True, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", F("released_on").asc(nulls_last=True), "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="model_version_unique_name"),
            models.CheckConstraint(condition=~Q(name=""), name="model_version_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()

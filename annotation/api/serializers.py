"""Small input and output serializers around the services (input parsing, output shape,
and the OpenAPI schema). DRF's CharField already refuses NUL and lone surrogates."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import Item, ItemSource, ItemStatus, Project, TaskType
from annotation.schema import PAIRWISE_CHOICES

# ---------------------------------------------------------------------------------------
# Errors (documented on every endpoint)
# ---------------------------------------------------------------------------------------


class ErrorEntrySerializer(serializers.Serializer):
    line = serializers.IntegerField(
        required=False, help_text="Line (or array element) of an import, 1-based."
    )
    field = serializers.CharField(required=False)
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    # `errors`, `source`, `label` and `style` are attributes of DRF's Field and Serializer in
    # its type stubs; these fields keep the public names of the API (the ignores below).
    errors = ErrorEntrySerializer(many=True)  # type: ignore[assignment]
    truncated = serializers.BooleanField(
        required=False, help_text="More bad lines than were listed."
    )


# ---------------------------------------------------------------------------------------
# Projects
# ---------------------------------------------------------------------------------------


class ProjectOutSerializer(serializers.ModelSerializer):
    languages = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "description",
            "task_type",
            "schema",
            "languages",
            "overlap",
            "agreement_threshold",
            "honeypot_rate",
            "lease_seconds",
            "queue_on_import",
            "guideline_version",
            "created_at",
        ]

    def get_languages(self, project: Project) -> list[str]:
        return [lang.tag for lang in project.languages.all()]


class ProjectCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=60)
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    task_type = serializers.ChoiceField(choices=TaskType.choices)
    languages = serializers.ListField(
        child=serializers.CharField(max_length=35), min_length=1, max_length=200
    )
    schema = serializers.JSONField(
        required=False,
        help_text="scale, labels, multi, issues, level (README.md, 'Project schema'); default for rating: a 1–5 scale; for labels: acceptable / unacceptable.",
    )
    overlap = serializers.IntegerField(required=False, min_value=1, max_value=50)
    queue_on_import = serializers.BooleanField(required=False)
    honeypot_rate = serializers.FloatField(required=False, min_value=0, max_value=1)
    lease_seconds = serializers.IntegerField(required=False, min_value=10, max_value=7 * 24 * 3600)
    agreement_threshold = serializers.FloatField(required=False, min_value=-1, max_value=1)


# ---------------------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------------------


class ImportLineSerializer(serializers.Serializer):
    """One import line (documentation of the body; validation is per line in the service)."""

    external_id = serializers.CharField(max_length=200)
    language = serializers.CharField(help_text="BCP 47 tag enabled for the project")
    prompt = serializers.CharField(required=False, allow_blank=True)
    response = serializers.CharField(required=False, help_text="rating and labels projects")
    response_a = serializers.CharField(required=False, help_text="pairwise projects")
    response_b = serializers.CharField(required=False, help_text="pairwise projects")
    model = serializers.CharField(required=False)
    model_a = serializers.CharField(required=False)
    model_b = serializers.CharField(required=False)
    prompt_id = serializers.CharField(required=False, help_text="groups responses to one prompt")
    token_logprobs = serializers.ListField(
        child=serializers.FloatField(max_value=0), required=False
    )
    token_entropy = serializers.FloatField(required=False)
    reward = serializers.FloatField(required=False)
    reward_a = serializers.FloatField(required=False)
    reward_b = serializers.FloatField(required=False)
    metadata = serializers.DictField(required=False)


class ImportResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    updated = serializers.IntegerField()
    language_check = serializers.ChoiceField(
        choices=["queued", "after_response", "off"],
        help_text="How the language check of the new and changed items runs (after the import commits).",
    )


class HistoricalLineSerializer(serializers.Serializer):
    item_external_id = serializers.CharField()
    rater = serializers.CharField()
    value = serializers.DictField()
    created = serializers.DateTimeField(required=False)


class ItemListQuerySerializer(serializers.Serializer):
    language = serializers.CharField(required=False, max_length=35)
    status = serializers.ChoiceField(choices=ItemStatus.choices, required=False)
    source = serializers.ChoiceField(choices=ItemSource.choices, required=False)  # type: ignore[assignment]
    flagged = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="only items the language check flagged (true) or passed (false)",
    )


class ItemOutSerializer(serializers.ModelSerializer):
    language = serializers.CharField(source="language.tag")

    class Meta:
        model = Item
        fields = [
            "id",
            "external_id",
            "language",
            "status",
            "source",
            "selection",
            "priority",
            "open_slots",
            "prompt",
            "response",
            "response_a",
            "response_b",
            "model",
            "model_a",
            "model_b",
            "prompt_id",
            "metadata",
            "language_check",
            "language_flagged",
            "created_at",
            "updated_at",
        ]


class ItemPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="the next page, or null at the end")
    previous = serializers.URLField(allow_null=True)
    results = ItemOutSerializer(many=True)


# ---------------------------------------------------------------------------------------
# Queue (evaluators)
# ---------------------------------------------------------------------------------------


class ClaimInSerializer(serializers.Serializer):
    language = serializers.CharField(
        required=False, max_length=35, help_text="work only this language"
    )


class ClaimedItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    language = serializers.CharField()
    direction = serializers.ChoiceField(choices=["ltr", "rtl"])
    prompt = serializers.CharField(allow_blank=True)
    response = serializers.CharField(allow_blank=True)
    response_a = serializers.CharField(allow_blank=True)
    response_b = serializers.CharField(allow_blank=True)


class AssignmentOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    lease_expires_at = serializers.DateTimeField()
    item = ClaimedItemSerializer()


class JudgmentValueSerializer(serializers.Serializer):
    """rating {"score"}; pairwise {"choice", "strength"}; labels {"labels"}; optional issues, comment."""

    score = serializers.IntegerField(required=False)
    choice = serializers.ChoiceField(choices=PAIRWISE_CHOICES, required=False)
    strength = serializers.ChoiceField(choices=[1, 2], required=False)
    labels = serializers.ListField(child=serializers.CharField(), required=False)
    issues = serializers.ListField(child=serializers.CharField(), required=False)
    comment = serializers.CharField(required=False, allow_blank=True)


class JudgmentInSerializer(serializers.Serializer):
    value = serializers.JSONField(help_text="The judgment value; see JudgmentValue for its shape.")
    seconds = serializers.FloatField(required=False, min_value=0, max_value=86_400)


class JudgmentOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField()
    item = serializers.IntegerField()
    value = JudgmentValueSerializer()
    revision = serializers.IntegerField()
    too_fast = serializers.BooleanField()
    created_at = serializers.DateTimeField()


# ---------------------------------------------------------------------------------------
# Reports and exports
# ---------------------------------------------------------------------------------------


class AgreementQuerySerializer(serializers.Serializer):
    language = serializers.CharField(required=False, max_length=35)
    by = serializers.CharField(
        required=False,
        max_length=100,
        help_text="language, evaluator, model, round, or metadata:<key>",
    )
    level = serializers.ChoiceField(
        choices=["nominal", "ordinal", "interval", "ratio"], required=False
    )
    resamples = serializers.IntegerField(required=False, min_value=0, max_value=2000, default=1000)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1, default=0)


class AlphaGroupSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    alpha = serializers.FloatField(allow_null=True)
    ci = serializers.ListField(child=serializers.FloatField(allow_null=True), allow_null=True)
    units = serializers.IntegerField()
    judgments = serializers.IntegerField()


class AgreementOutSerializer(serializers.Serializer):
    """Krippendorff's alpha with its bootstrap CI; more keys (per label, kappa) may follow."""

    alpha = serializers.FloatField(allow_null=True)
    level = serializers.CharField()
    ci = serializers.ListField(child=serializers.FloatField(allow_null=True), allow_null=True)
    units = serializers.IntegerField()
    judgments = serializers.IntegerField()
    excluded_units = serializers.IntegerField()
    groups = AlphaGroupSerializer(many=True, required=False)


class ParityQuerySerializer(serializers.Serializer):
    by = serializers.ChoiceField(
        choices=["model", "period"],
        required=False,
        help_text="progress by model version (release order) or by period of judgment",
    )
    period = serializers.ChoiceField(choices=["week", "month"], default="week", required=False)
    resamples = serializers.IntegerField(
        min_value=0, max_value=100_000, default=1000, required=False
    )
    seed = serializers.IntegerField(min_value=0, default=0, required=False)
    format = serializers.ChoiceField(choices=["json", "csv"], required=False)


class ParityOutSerializer(serializers.Serializer):
    """The per-language report (one row per language, gap to the best language, flags)."""

    languages = serializers.ListField(child=serializers.DictField())


class PreferenceFilterSerializer(serializers.Serializer):
    """What a pull contains (the same for its lines and its retractions)."""

    style = serializers.ChoiceField(  # type: ignore[assignment]
        choices=["standard", "conversational"], default="standard", required=False
    )
    shape = serializers.ChoiceField(
        choices=["pairs", "unpaired"],
        default="pairs",
        required=False,
        help_text="pairs: {prompt, chosen, rejected, …} (TRL's preference format); unpaired (rating projects): "
        "{prompt, completion, label, …} (TRL's unpaired preference format), label true when the aggregated "
        "score is at least `threshold`",
    )
    pairs = serializers.ChoiceField(
        choices=["best_worst", "all"],
        default="best_worst",
        required=False,
        help_text="rating projects: pair each prompt's best response against its worst, or every two of its "
        "responses whose scores differ by at least min_gap",
    )
    method = serializers.ChoiceField(
        choices=["majority", "dawid_skene"],
        default="majority",
        required=False,
        help_text="majority: each item's own votes (the label rule); dawid_skene (pairwise only, full pulls "
        "only): weighs each rater by their reliability over the whole project, fitted before the first "
        "line; an item judged after the fit began is labelled by majority (label_source says which)",
    )
    language = serializers.CharField(
        required=False,
        max_length=35,
        help_text="only this language (the output's language, a BCP 47 tag)",
    )
    min_agreement = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="skip lines whose label has less agreement (final labels pass)",
    )
    include_ties = serializers.BooleanField(
        required=False,
        default=False,
        help_text="include ties (gap 0): pairwise ties and equal rating scores",
    )
    min_gap = serializers.FloatField(
        required=False,
        min_value=0,
        help_text="rating pairs: the smallest score difference that makes a pair",
    )
    threshold = serializers.FloatField(
        required=False,
        help_text="shape=unpaired: a score at or above it is a good completion "
        "(default: the middle of the project's scale)",
    )
    split = serializers.ChoiceField(
        choices=["train", "test"],
        required=False,
        help_text="only the train or the test side of a split by a hash of the prompt, "
        "so no prompt is on both sides; the same split on every pull",
    )
    test_fraction = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="with split: the share of prompts on the test side (default 0.1)",
    )
    margin = serializers.ChoiceField(
        choices=["scaled"],
        required=False,
        help_text="add a `margin` column in [0, 1] (TRL's RewardTrainer applies it "
        "as-is): pairwise strength / 2, rating gap / scale width",
    )
    signals = serializers.BooleanField(
        required=False,
        default=False,
        help_text="add the imported reward and mean token log-prob of each side",
    )
    prompt_template = serializers.CharField(
        required=False,
        max_length=1000,
        trim_whitespace=False,
        help_text="style=standard: how the prompt is written before the response, with {prompt} once; default "
        '"{prompt}\\n" (TRL joins prompt and completion as they are)',
    )
    since = serializers.CharField(
        required=False,
        max_length=100,
        help_text="the X-Parity-Cursor of an earlier pull: only items whose line changed since (new, label "
        "flipped, tie decided, agreement crossing min_agreement, revised, adjudicated, made gold)",
    )


class PreferenceQuerySerializer(PreferenceFilterSerializer):
    format = serializers.ChoiceField(choices=["jsonl", "parquet"], default="jsonl", required=False)


_MESSAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant"]},
        "content": {"type": "string"},
    },
    "required": ["role", "content"],
}


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": _MESSAGE_SCHEMA}]})
class LineTextField(serializers.JSONField):
    """A line's text: a string (style=standard) or role/content messages (style=conversational)."""


class PreferenceLineSerializer(serializers.Serializer):
    """One preference pair (shape=pairs): TRL's preference format."""

    prompt = LineTextField(
        help_text="standard: the prompt through prompt_template; conversational: the user "
        "turn, or the turns of metadata.conversation"
    )
    chosen = LineTextField(
        help_text="standard: the preferred response; conversational: one assistant message"
    )
    rejected = LineTextField()
    language = serializers.CharField(help_text="the language of the responses (BCP 47)")
    item_id = serializers.CharField(
        help_text="the line's key, unique in the project (upsert by it): the item's external_id (pairwise), "
        "<language>/<prompt_id> (rating best_worst), <language>/<prompt_id>/<id>/<id> (rating all)"
    )
    n_judgments = serializers.IntegerField()
    agreement = serializers.FloatField(
        allow_null=True, help_text="how far the judgments agree with the label, 0–1"
    )
    guideline_version = serializers.CharField(allow_blank=True)
    model_chosen = serializers.CharField(allow_blank=True)
    model_rejected = serializers.CharField(allow_blank=True)
    gap = serializers.FloatField(
        help_text="pairwise: the judged strength (1 or 2, 0 for a tie); ratings: the "
        "difference of the two aggregated scores"
    )
    tie = serializers.BooleanField()
    label_source = serializers.CharField(help_text="final, majority, dawid_skene or mixed")
    chosen_item_id = serializers.CharField()
    rejected_item_id = serializers.CharField()
    margin = serializers.FloatField(required=False, help_text="only with margin=scaled: in [0, 1]")
    reward_chosen = serializers.FloatField(
        required=False, allow_null=True, help_text="only with signals=1"
    )
    reward_rejected = serializers.FloatField(
        required=False, allow_null=True, help_text="only with signals=1"
    )
    mean_logprob_chosen = serializers.FloatField(
        required=False, allow_null=True, help_text="only with signals=1"
    )
    mean_logprob_rejected = serializers.FloatField(
        required=False, allow_null=True, help_text="only with signals=1"
    )


class UnpairedLineSerializer(serializers.Serializer):
    """One unpaired line (shape=unpaired, rating projects): TRL's unpaired preference format."""

    prompt = LineTextField()
    completion = LineTextField(help_text="the rated response")
    label = serializers.BooleanField(help_text="score >= threshold")  # type: ignore[assignment]
    language = serializers.CharField(help_text="the language of the response (BCP 47)")
    item_id = serializers.CharField(help_text="the item's external_id")
    n_judgments = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True)
    guideline_version = serializers.CharField(allow_blank=True)
    model = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(
        help_text="the aggregated score: the final label's, else the judgments' mean"
    )
    label_source = serializers.CharField()
    reward = serializers.FloatField(
        required=False, allow_null=True, help_text="only with signals=1"
    )
    mean_logprob = serializers.FloatField(
        required=False, allow_null=True, help_text="only with signals=1"
    )


class RetractionLineSerializer(serializers.Serializer):
    item_id = serializers.CharField(help_text="the key of a line to delete, if the consumer has it")


class JudgmentExportQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["jsonl", "csv"], default="jsonl", required=False)
    language = serializers.CharField(required=False, max_length=35)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField(max_length=100_000, allow_blank=True)


class ReportInSerializer(serializers.Serializer):
    language = serializers.CharField(max_length=35, help_text="BCP 47 tag of the conversation")
    # many=True makes a ListSerializer, which takes max_length; the stubs do not know it.
    conversation = MessageSerializer(  # type: ignore[call-arg]
        many=True,
        allow_empty=False,
        max_length=200,
        help_text="the conversation; its last message is the model output the report is about",
    )
    what_went_wrong = serializers.CharField(max_length=10_000)
    model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    external_id = serializers.CharField(
        max_length=200,
        required=False,
        help_text="the report's id in your feedback channel (repeats are no-ops)",
    )
    metadata = serializers.DictField(required=False)

    def validate_conversation(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if value[-1]["role"] != "assistant" or not value[-1]["content"].strip():
            raise serializers.ValidationError(
                "the last message must be the model's (role assistant) answer"
            )
        return value


class ReportOutSerializer(serializers.Serializer):
    item_id = serializers.IntegerField()
    external_id = serializers.CharField()
    status = serializers.CharField()
    created = serializers.BooleanField()


class DatacardQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["json", "md"], required=False)


class DatacardSerializer(serializers.Serializer):
    project = serializers.DictField()
    generated_at = serializers.DateTimeField()
    items = serializers.IntegerField()
    judgments = serializers.IntegerField()
    languages = serializers.ListField(child=serializers.DictField())
    guideline_versions = serializers.ListField(child=serializers.DictField())
    sources = serializers.ListField(child=serializers.DictField())
    export = serializers.DictField()

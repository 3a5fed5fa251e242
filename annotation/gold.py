"""Gold answers: does a judgment match one, within its tolerance; creating gold from
scratch, promoting an adjudicated item to gold, correcting a gold answer.

A gold answer is an ordinary judgment value (validated against the project's schema),
an explanation shown as feedback in calibration, and a tolerance:
rating `{"points": 1}` (within ± points), pairwise `{"tie_ok": true}` (a tie is accepted
where the gold prefers a side), labels `{"jaccard": 0.8}` (absent: the exact set).
What a lead gives is validated by `annotation.schema` (gold_value_validate,
gold_tolerance_validate), which the item import uses too.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.audit import actor_user, audit_record
from annotation.imports import ImportRejected, items_import
from annotation.languages import language_tag_normalize
from annotation.models import FinalLabel, GoldAnswer, Item, Project, TaskType
from annotation.schema import MAX_EXPLANATION_CHARS, gold_tolerance_validate, gold_value_validate
from annotation.types import Actor
from annotation.validation import text_clean


def gold_matches(
    *, task_type: str, gold_value: dict[str, Any], tolerance: dict[str, Any], value: dict[str, Any]
) -> bool:
    if task_type == TaskType.RATING:
        points = float(tolerance.get("points", 0))
        return abs(float(value["score"]) - float(gold_value["score"])) <= points
    if task_type == TaskType.PAIRWISE:
        if value["choice"] == gold_value["choice"]:
            return True
        # "ties configurable": a lead may accept a tie where the gold prefers one side.
        return (
            bool(tolerance.get("tie_ok"))
            and value["choice"] == "tie"
            and gold_value["choice"] in ("a", "b")
        )
    if task_type == TaskType.LABELS:
        got, want = set(value["labels"]), set(gold_value["labels"])
        threshold = tolerance.get("jaccard")
        if threshold is None:
            return got == want
        union = got | want
        return (len(got & want) / len(union) if union else 1.0) >= float(threshold)
    raise ValueError(f"unknown task type {task_type!r}")


def gold_answer_matches(*, gold: GoldAnswer, value: dict[str, Any]) -> bool:
    return gold_matches(
        task_type=gold.item.project.task_type,
        gold_value=gold.value,
        tolerance=gold.tolerance,
        value=value,
    )


# ---------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------


def gold_create(
    *,
    project: Project,
    external_id: str,
    language: str,
    value: Any,
    explanation: str = "",
    tolerance: Any = None,
    prompt: str = "",
    response: str = "",
    response_a: str = "",
    response_b: str = "",
    prompt_language: str = "",
    actor: Actor = None,
) -> GoldAnswer:
    """Create a gold item from scratch: a new item of the project with its gold answer.

    The item goes through the same validation as an imported line (language enabled for
    the project, text clean and NFC, the fields the task type needs). `prompt_language`
    is the prompt's language when it differs from the item's (a translation source); the
    pages show the prompt in that language's direction.
    """
    clean_value = gold_value_validate(project=project, value=value)
    clean_tolerance = gold_tolerance_validate(
        task_type=project.task_type, schema=project.schema, tolerance=tolerance
    )
    clean_explanation = text_clean(
        explanation, field="explanation", max_chars=MAX_EXPLANATION_CHARS
    )
    external_id = (external_id or "").strip()
    if not external_id:
        raise ValidationError("external_id: is required")
    if Item.objects.filter(project=project, external_id=external_id).exists():
        raise ValidationError(
            f"external_id: an item {external_id!r} already exists in this project"
        )
    answer = {"value": clean_value, "tolerance": clean_tolerance, "explanation": clean_explanation}
    record = _gold_line(
        project,
        external_id=external_id,
        language=language,
        prompt=prompt,
        gold=answer,
        texts={"response": response, "response_a": response_a, "response_b": response_b},
        prompt_language=prompt_language,
    )
    try:
        with transaction.atomic():
            result = items_import(project=project, records=[(1, record)], actor=actor)
            gold = GoldAnswer.objects.select_related("item").get(item_id=result.item_ids[0])
            GoldAnswer.objects.filter(pk=gold.pk).update(created_by=actor_user(actor))
            audit_record(
                verb="gold.create",
                actor=actor,
                project=project,
                obj=gold.item,
                data={"external_id": external_id, "value": clean_value},
            )
    except ImportRejected as exc:
        first = exc.errors[0]
        raise ValidationError(
            f"{first.field}: {first.message}" if first.field else first.message
        ) from None
    except IntegrityError:
        raise ValidationError(
            f"external_id: an item {external_id!r} already exists in this project"
        ) from None
    return gold


def _gold_line(
    project: Project,
    *,
    external_id: str,
    language: str,
    prompt: str,
    gold: dict[str, Any],
    texts: dict[str, str],
    prompt_language: str,
) -> dict[str, Any]:
    """The import line of a new gold item: the texts its task type takes, and the prompt's
    own language (a translation source) in its metadata."""
    record: dict[str, Any] = {
        "external_id": external_id,
        "language": language,
        "prompt": prompt,
        "gold": gold,
    }
    if prompt_language:
        try:
            record["metadata"] = {"prompt_language": language_tag_normalize(prompt_language)}
        except ValidationError as exc:
            raise ValidationError(f"prompt_language: {exc.messages[0]}") from None
    if project.task_type == TaskType.PAIRWISE:
        record.update(response_a=texts["response_a"], response_b=texts["response_b"])
    else:
        record["response"] = texts["response"]
    return record


def gold_promote(
    *, item: Item, explanation: str, tolerance: Any = None, actor: Actor = None
) -> GoldAnswer:
    """Make an adjudicated item gold: its final label becomes the gold answer.

    From then on it can be picked for calibration rounds and served as a honeypot to
    evaluators who have not seen it; its production judgments stay production data.
    """
    project = item.project
    clean_tolerance = gold_tolerance_validate(
        task_type=project.task_type, schema=project.schema, tolerance=tolerance
    )
    clean_explanation = text_clean(
        explanation, field="explanation", max_chars=MAX_EXPLANATION_CHARS
    )
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        if locked.is_gold:
            raise ValidationError("This item is gold already.")
        final = FinalLabel.objects.filter(item=locked).first()
        if final is None:
            raise ValidationError(
                "Only an adjudicated item can be promoted to gold: this one has no final label yet."
            )
        clean_value = gold_value_validate(project=project, value=final.value)
        # A gold item is never exported: its line, if a pipeline has one, is retracted.
        Item.objects.filter(pk=locked.pk).update(
            is_gold=True,
            open_slots=0,
            updated_at=timezone.now(),
            label_version=F("label_version") + 1,
        )
        gold = GoldAnswer.objects.create(
            item=locked,
            value=clean_value,
            tolerance=clean_tolerance,
            explanation=clean_explanation,
            created_by=actor_user(actor),
        )
        audit_record(
            verb="gold.promote",
            actor=actor,
            project=project,
            obj=locked,
            data={"value": clean_value, "final_label": final.pk},
        )
    item.is_gold, item.open_slots = True, 0
    return gold


def gold_update(
    *, gold: GoldAnswer, value: Any, explanation: str, tolerance: Any = None, actor: Actor = None
) -> GoldAnswer:
    """Correct a gold answer. Finished calibration attempts keep the score they were given."""
    project = gold.item.project
    gold.value = gold_value_validate(project=project, value=value)
    gold.tolerance = gold_tolerance_validate(
        task_type=project.task_type, schema=project.schema, tolerance=tolerance
    )
    gold.explanation = text_clean(explanation, field="explanation", max_chars=MAX_EXPLANATION_CHARS)
    gold.save(update_fields=["value", "tolerance", "explanation"])
    audit_record(
        verb="gold.update", actor=actor, project=project, obj=gold.item, data={"value": gold.value}
    )
    return gold

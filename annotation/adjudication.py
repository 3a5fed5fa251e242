"""Adjudication: items whose judgments disagree beyond the project rule wait for a lead
or a senior evaluator of their language, who sees every judgment and comment and records
the final label with who decided and why. Final labels are what exports use
(annotation.labels.item_label lets a FinalLabel win over any aggregate).

The rule is the label rule's (annotation.labels): labels and pairwise choices with no
strict majority; ratings whose spread (max − min) is above the project's
`adjudication_rating_spread` (no rating rule when unset).
Production evaluators never see other evaluators' judgments; only adjudicators do.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation.audit import audit_record
from annotation.labels import LabelRule, item_label, votes_of
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Project,
    Qualification,
    QualificationStatus,
)
from annotation.projects import project_is_lead
from annotation.schema import MAX_COMMENT_CHARS, judgment_value_validate
from annotation.types import Actor, RequestUser, User
from annotation.validation import TextInvalid, text_clean


def adjudication_needed(*, project: Project, values: list[dict[str, Any]]) -> bool:
    """Do these judgment values disagree beyond the project's rule? (The label rule's
    `decided`: see annotation.labels.)"""
    rule = LabelRule.of(project)
    label = item_label(rule=rule, votes=votes_of(rule.task_type, values))
    return label is not None and not label.decided


def _current_values(item_id: int) -> list[dict[str, Any]]:
    return list(
        Judgment.objects.filter(
            item_id=item_id, is_current=True, kind__in=COUNTED_JUDGMENT_KINDS
        ).values_list("value", flat=True)
    )


def adjudication_route(*, item_id: int, project: Project) -> bool:
    """Move a done item to adjudication when its judgments disagree; True when it moved.

    Called by the queue when an item's k production judgments are in.
    """
    if not adjudication_needed(project=project, values=_current_values(item_id)):
        return False
    moved = Item.objects.filter(pk=item_id, status=ItemStatus.DONE).update(
        status=ItemStatus.ADJUDICATION,
        updated_at=timezone.now(),
        label_version=F("label_version") + 1,
    )
    if moved:
        audit_record(verb="item.adjudication", project=project, data={"item": item_id})
    return bool(moved)


def adjudication_sweep(*, project: Project, actor: Actor = None) -> int:
    """Route every done item of the project by the current rule (after the lead changes the
    rule, or after importing historical judgments). Returns how many items moved."""
    moved = 0
    done = Item.objects.filter(project=project, status=ItemStatus.DONE).values_list("pk", flat=True)
    for item_id in done.iterator(chunk_size=2000):
        moved += adjudication_route(item_id=item_id, project=project)
    audit_record(verb="adjudication.sweep", actor=actor, project=project, data={"moved": moved})
    return moved


# ---------------------------------------------------------------------------------------
# Who adjudicates what
# ---------------------------------------------------------------------------------------


def adjudicator_language_ids(*, project: Project, user: RequestUser) -> list[int]:
    """Languages this user adjudicates: all of the project's for a lead, else those where
    they are a qualified senior evaluator."""
    if not user.is_authenticated:
        return []
    if project_is_lead(project=project, user=user):
        return list(project.languages.values_list("pk", flat=True))
    return list(
        Qualification.objects.filter(
            evaluator=user, project=project, is_senior=True, status=QualificationStatus.QUALIFIED
        ).values_list("language_id", flat=True)
    )


def adjudication_queue(*, project: Project, user: User) -> QuerySet[Item]:
    """Items waiting for adjudication in the user's languages, oldest first."""
    return (
        Item.objects.filter(
            project=project,
            status=ItemStatus.ADJUDICATION,
            language_id__in=adjudicator_language_ids(project=project, user=user),
        )
        .select_related("language")
        .order_by("updated_at", "id")
    )


def adjudication_item_get(*, project: Project, user: User, item_id: int) -> Item:
    """The item, if this user may adjudicate it; PermissionDenied otherwise."""
    item = (
        Item.objects.select_related("language", "project")
        .filter(pk=item_id, project=project)
        .first()
    )
    if item is None or item.language_id not in adjudicator_language_ids(project=project, user=user):
        raise PermissionDenied(
            _("Only the project's leads and senior evaluators of this language adjudicate.")
        )
    return item


def adjudication_judgments(*, item: Item) -> QuerySet[Judgment]:
    """Every current production and historical judgment of the item, with its comment
    (for adjudicators only)."""
    return (
        Judgment.objects.filter(item=item, is_current=True, kind__in=COUNTED_JUDGMENT_KINDS)
        .select_related("evaluator__evaluator_profile", "external_rater")
        .order_by("created_at", "id")
    )


def adjudication_decide(*, item: Item, user: User, value: Any, reason: str) -> FinalLabel:
    """Record the final label of an item in adjudication: who decided, and why."""
    project = item.project
    if item.language_id not in adjudicator_language_ids(project=project, user=user):
        raise PermissionDenied(
            _("Only the project's leads and senior evaluators of this language adjudicate.")
        )
    clean = judgment_value_validate(task_type=project.task_type, schema=project.schema, value=value)
    try:
        reason = text_clean(reason, field="reason", max_chars=MAX_COMMENT_CHARS, required=True)
    except TextInvalid as exc:
        if exc.code in ("required", "type"):
            raise ValidationError(_("reason: say why this is the final label.")) from None
        raise ValidationError(
            _("reason: at most %(n)d characters of text.") % {"n": MAX_COMMENT_CHARS}
        ) from None
    try:
        with transaction.atomic():
            locked = Item.objects.select_for_update().get(pk=item.pk)
            if locked.status != ItemStatus.ADJUDICATION:
                raise ValidationError(
                    _("This item is not waiting for adjudication (it is %(status)s).")
                    % {"status": locked.get_status_display()}
                )
            final = FinalLabel.objects.create(
                item=locked, value=clean, decided_by=user, reason=reason
            )
            Item.objects.filter(pk=locked.pk).update(
                status=ItemStatus.FINAL,
                updated_at=timezone.now(),
                label_version=F("label_version") + 1,
            )
            audit_record(
                verb="item.adjudicate",
                actor=user,
                project=project,
                obj=locked,
                data={"value": clean, "reason": reason},
            )
    except IntegrityError:
        raise ValidationError(_("This item already has a final label.")) from None
    return final

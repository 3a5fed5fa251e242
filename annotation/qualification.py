"""Who may work which language of which project: grant, revoke, suspend, requalify;
and the rolling honeypot accuracy that can suspend an evaluator."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.audit import audit_record
from annotation.gold import gold_matches
from annotation.models import (
    EvaluatorLanguage,
    EvaluatorProfile,
    Judgment,
    Language,
    Project,
    Qualification,
    QualificationStatus,
)


def evaluator_profile_ensure(*, user: Any) -> EvaluatorProfile:
    profile = EvaluatorProfile.objects.filter(user=user).first()
    if profile:
        return profile
    try:
        with transaction.atomic():
            return EvaluatorProfile.objects.create(user=user, pseudonym=f"ev_{secrets.token_hex(6)}")
    except IntegrityError:
        return EvaluatorProfile.objects.get(user=user)


def evaluator_language_add(*, user: Any, language: Language, proficiency: str = "native", dialect: str = "") -> EvaluatorLanguage:
    profile = evaluator_profile_ensure(user=user)
    obj, _ = EvaluatorLanguage.objects.update_or_create(
        profile=profile, language=language, defaults={"proficiency": proficiency, "dialect": dialect}
    )
    return obj


def qualification_set(
    *,
    project: Project,
    evaluator: Any,
    language: Language,
    status: str,
    actor: Any = None,
    reason: str = "",
    is_senior: bool | None = None,
) -> Qualification:
    """Create or move a qualification to `status`, recording who did it and why."""
    if status not in QualificationStatus.values:
        raise ValidationError(f"unknown qualification status {status!r}")
    if not project.languages.filter(pk=language.pk).exists():
        raise ValidationError(f"{language.tag} is not a language of project {project.slug}")
    with transaction.atomic():
        qualification, _ = Qualification.objects.select_for_update().get_or_create(
            evaluator=evaluator, project=project, language=language
        )
        qualification.status = status
        qualification.reason = reason
        qualification.changed_by = actor if getattr(actor, "is_authenticated", False) else None
        qualification.changed_at = timezone.now()
        if status == QualificationStatus.QUALIFIED:
            qualification.guideline_version = project.guideline_version
        if is_senior is not None:
            qualification.is_senior = is_senior
        qualification.save()
        evaluator_profile_ensure(user=evaluator)
        audit_record(
            verb=f"qualification.{status}",
            actor=actor,
            project=project,
            obj=qualification,
            data={"evaluator": evaluator.pk, "language": language.tag, "reason": reason},
        )
    return qualification


def qualification_grant(*, project: Project, evaluator: Any, language: Language, actor: Any = None,
                        is_senior: bool | None = None, reason: str = "granted by a lead") -> Qualification:
    return qualification_set(project=project, evaluator=evaluator, language=language,
                             status=QualificationStatus.QUALIFIED, actor=actor, reason=reason, is_senior=is_senior)


def qualification_revoke(*, project: Project, evaluator: Any, language: Language, actor: Any = None,
                         reason: str = "revoked by a lead") -> Qualification:
    return qualification_set(project=project, evaluator=evaluator, language=language,
                             status=QualificationStatus.PENDING, actor=actor, reason=reason)


def qualified_languages(*, evaluator: Any, project: Project) -> QuerySet[Language]:
    """The languages this evaluator may work production items in, in this project.

    Qualified, and — once the project has a guideline — having acknowledged its current version.
    """
    return Language.objects.filter(pk__in=qualified_language_ids(evaluator=evaluator, project=project))


def qualified_language_ids(*, evaluator: Any, project: Project) -> list[int]:
    qs = Qualification.objects.filter(evaluator=evaluator, project=project, status=QualificationStatus.QUALIFIED)
    if project.guideline_version:
        qs = qs.filter(acknowledged_version=project.guideline_version)
    return list(qs.values_list("language_id", flat=True))


def honeypot_accuracy_update(*, evaluator: Any, project: Project, language: Language) -> Qualification | None:
    """Recompute the rolling honeypot accuracy (last N) and suspend below the threshold."""
    recent = list(
        Judgment.objects.filter(
            evaluator=evaluator, kind="honeypot", is_current=True, item__project=project, item__language=language,
            item__gold__isnull=False,
        )
        .select_related("item__gold")
        .order_by("-created_at", "-id")[: project.honeypot_window]
    )
    if not recent:
        return None
    hits = sum(
        gold_matches(task_type=project.task_type, gold_value=j.item.gold.value, tolerance=j.item.gold.tolerance, value=j.value)
        for j in recent
    )
    accuracy = hits / len(recent)
    with transaction.atomic():
        qualification = Qualification.objects.select_for_update().filter(
            evaluator=evaluator, project=project, language=language
        ).first()
        if qualification is None:
            return None
        qualification.honeypot_accuracy = accuracy
        fields = ["honeypot_accuracy"]
        if (
            qualification.status == QualificationStatus.QUALIFIED
            and len(recent) >= project.honeypot_min_judged
            and accuracy < project.honeypot_threshold
        ):
            qualification.status = QualificationStatus.SUSPENDED
            qualification.reason = (
                f"Honeypot accuracy {accuracy:.0%} over your last {len(recent)} check items is below "
                f"the project's threshold of {project.honeypot_threshold:.0%}."
            )
            qualification.changed_at = timezone.now()
            qualification.changed_by = None
            fields += ["status", "reason", "changed_at", "changed_by"]
            audit_record(verb="qualification.suspended", project=project, obj=qualification,
                         data={"evaluator": evaluator.pk, "language": language.tag, "accuracy": accuracy})
        qualification.save(update_fields=fields)
    return qualification

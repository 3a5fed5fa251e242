"""Who may work which language of which project: grant, revoke, suspend, reinstate,
requalify; the guideline version an evaluator acknowledged; and the rolling honeypot
accuracy that can suspend an evaluator.

The guidelines app decides versions and calibration verdicts; it records them here, in
plain fields of the core (Project.guideline_version, Qualification.acknowledged_version,
Qualification.status), so the queue never needs to import it.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation.audit import actor_user, audit_record
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
from annotation.types import Actor, User


def evaluator_profile_ensure(*, user: User) -> EvaluatorProfile:
    profile = EvaluatorProfile.objects.filter(user=user).first()
    if profile:
        return profile
    try:
        with transaction.atomic():
            return EvaluatorProfile.objects.create(
                user=user, pseudonym=f"ev_{secrets.token_hex(6)}"
            )
    except IntegrityError:
        return EvaluatorProfile.objects.get(user=user)


def evaluator_language_add(
    *, user: User, language: Language, proficiency: str = "native", dialect: str = ""
) -> EvaluatorLanguage:
    profile = evaluator_profile_ensure(user=user)
    obj, _ = EvaluatorLanguage.objects.update_or_create(
        profile=profile,
        language=language,
        defaults={"proficiency": proficiency, "dialect": dialect},
    )
    return obj


def qualification_set(
    *,
    project: Project,
    evaluator: User,
    language: Language,
    status: str,
    actor: Actor = None,
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
        qualification.changed_by = actor_user(actor)
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


def qualification_grant(
    *,
    project: Project,
    evaluator: User,
    language: Language,
    actor: Actor = None,
    is_senior: bool | None = None,
    reason: str = "granted by a lead",
) -> Qualification:
    return qualification_set(
        project=project,
        evaluator=evaluator,
        language=language,
        status=QualificationStatus.QUALIFIED,
        actor=actor,
        reason=reason,
        is_senior=is_senior,
    )


def qualification_revoke(
    *,
    project: Project,
    evaluator: User,
    language: Language,
    actor: Actor = None,
    reason: str = "revoked by a lead",
) -> Qualification:
    return qualification_set(
        project=project,
        evaluator=evaluator,
        language=language,
        status=QualificationStatus.PENDING,
        actor=actor,
        reason=reason,
    )


def qualified_languages(*, evaluator: User, project: Project) -> QuerySet[Language]:
    """The languages this evaluator may work production items in, in this project.

    Qualified, and — once the project has a guideline — having acknowledged its current version.
    """
    return Language.objects.filter(
        pk__in=qualified_language_ids(evaluator=evaluator, project=project)
    )


def qualified_languages_sql(*, evaluator: User, project: Project) -> tuple[str, dict[str, Any]]:
    """`SELECT language_id …` of the languages the evaluator may work in the project, and
    its named parameters (`evaluator`, `project`, …; the claim runs it inside a statement
    of its own)."""
    sql = (
        f"SELECT language_id FROM {Qualification._meta.db_table} "
        "WHERE evaluator_id = %(evaluator)s AND project_id = %(project)s AND status = %(qualified)s"
    )
    params: dict[str, Any] = {
        "evaluator": evaluator.pk,
        "project": project.pk,
        "qualified": QualificationStatus.QUALIFIED.value,
    }
    if project.guideline_version:
        sql += " AND acknowledged_version = %(guideline_version)s"
        params["guideline_version"] = project.guideline_version
    return sql, params


def qualified_language_ids(*, evaluator: User, project: Project) -> list[int]:
    # Asked on every claim and queue page; written as SQL it costs a fifth of the ORM's Python.
    sql, params = qualified_languages_sql(evaluator=evaluator, project=project)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _recent_honeypots(*, evaluator: User, project: Project, language: Language) -> list[Judgment]:
    """The evaluator's last `honeypot_window` honeypot judgments in the language since
    their qualification last changed status; none without a qualification."""
    since = (
        Qualification.objects.filter(evaluator=evaluator, project=project, language=language)
        .values_list("changed_at", flat=True)
        .first()
    )
    if since is None:
        return []
    return list(
        Judgment.objects.filter(
            evaluator=evaluator,
            kind="honeypot",
            is_current=True,
            item__project=project,
            item__language=language,
            item__gold__isnull=False,
            created_at__gte=since,
        )
        .select_related("item__gold", "item__project")
        .order_by("-created_at", "-id")[: project.honeypot_window]
    )


def honeypot_accuracy_update(
    *, evaluator: User, project: Project, language: Language
) -> Qualification | None:
    """Recompute the rolling honeypot accuracy (last N) and suspend below the threshold.

    The window starts afresh whenever the qualification changes status (reinstated by a
    lead, requalified through calibration): misses from before a reinstatement would
    otherwise suspend the evaluator again on their very next check item.
    """
    recent = _recent_honeypots(evaluator=evaluator, project=project, language=language)
    if not recent:
        return None
    hits = sum(
        gold_matches(
            task_type=project.task_type,
            gold_value=j.item.gold.value,
            tolerance=j.item.gold.tolerance,
            value=j.value,
        )
        for j in recent
    )
    accuracy = hits / len(recent)
    with transaction.atomic():
        qualification = (
            Qualification.objects.select_for_update()
            .filter(evaluator=evaluator, project=project, language=language)
            .first()
        )
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
            audit_record(
                verb="qualification.suspended",
                project=project,
                obj=qualification,
                data={"evaluator": evaluator.pk, "language": language.tag, "accuracy": accuracy},
            )
        qualification.save(update_fields=fields)
    return qualification


# ---------------------------------------------------------------------------------------
# Lead actions on suspensions
# ---------------------------------------------------------------------------------------


def qualification_reinstate(
    *, qualification: Qualification, actor: Actor, reason: str = ""
) -> Qualification:
    """A lead lets a suspended evaluator work again; their honeypot window starts afresh."""
    if qualification.status != QualificationStatus.SUSPENDED:
        raise ValidationError(
            _("Only a suspended evaluator can be reinstated; this one is %(status)s.")
            % {"status": qualification.get_status_display()}
        )
    passed, current = qualification.guideline_version, qualification.project.guideline_version
    if passed and current and passed.split(".")[0] != current.split(".")[0]:
        raise ValidationError(
            _(
                "This evaluator qualified under guideline %(passed)s; version %(current)s is a major revision since. "
                "Send them to calibration instead."
            )
            % {"passed": passed, "current": current}
        )
    reinstated = qualification_set(
        project=qualification.project,
        evaluator=qualification.evaluator,
        language=qualification.language,
        status=QualificationStatus.QUALIFIED,
        actor=actor,
        reason=reason.strip() or "Reinstated by a lead after a honeypot suspension.",
    )
    Qualification.objects.filter(pk=reinstated.pk).update(honeypot_accuracy=None)
    reinstated.honeypot_accuracy = None
    return reinstated


def qualification_send_to_calibration(
    *, qualification: Qualification, actor: Actor, reason: str = ""
) -> Qualification:
    """A lead sends an evaluator back to the language's calibration round."""
    if qualification.status == QualificationStatus.REQUALIFY:
        raise ValidationError(
            _("This evaluator is already waiting to requalify through calibration.")
        )
    if qualification.status == QualificationStatus.PENDING:
        raise ValidationError(
            _("This evaluator has not qualified yet; they take calibration anyway.")
        )
    return qualification_set(
        project=qualification.project,
        evaluator=qualification.evaluator,
        language=qualification.language,
        status=QualificationStatus.REQUALIFY,
        actor=actor,
        reason=reason.strip()
        or "Sent back to calibration by a lead: take the calibration round again.",
    )


# ---------------------------------------------------------------------------------------
# Guideline versions (decided by the guidelines app, recorded here)
# ---------------------------------------------------------------------------------------

BUMPS = ("major", "minor", "patch", "initial")


def project_guideline_version_set(
    *, project: Project, version: str, bump: str, previous: str = "", actor: Actor = None
) -> int:
    """Make `version` the project's current guideline version. Returns how many
    qualifications moved to "requalify".

    - initial (the first version) and minor: evaluators must acknowledge the new version
      before claiming again (the queue compares acknowledged_version with the project's).
    - patch: wording fixes; whoever acknowledged the previous version keeps working.
    - major: every qualified evaluator of the project must requalify through the new
      calibration round. A suspended evaluator stays suspended: the lead decides.
    """
    if bump not in BUMPS:
        raise ValidationError(f"unknown version bump {bump!r}; use one of {', '.join(BUMPS)}")
    moved = 0
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(guideline_version=version)
        project.guideline_version = version
        if bump == "patch" and previous:
            Qualification.objects.filter(project=project, acknowledged_version=previous).update(
                acknowledged_version=version
            )
        if bump == "major":
            moved = Qualification.objects.filter(
                project=project, status=QualificationStatus.QUALIFIED
            ).update(
                status=QualificationStatus.REQUALIFY,
                reason=f"Guideline {version} is a major revision: read it and pass the new calibration round.",
                changed_by=actor_user(actor),
                changed_at=timezone.now(),
            )
        audit_record(
            verb="project.guideline_version",
            actor=actor,
            project=project,
            obj=project,
            data={"version": version, "previous": previous, "bump": bump, "requalify": moved},
        )
    return moved


def qualification_acknowledge(*, evaluator: User, project: Project, version: str) -> int:
    """Record that the evaluator read `version` of the project's guideline, for every
    language they hold in the project. Returns how many qualifications were updated.

    Refused when `version` is no longer current (a page left open across a publication):
    acknowledging a version they did not read would let them claim under the new one.
    """
    current = Project.objects.values_list("guideline_version", flat=True).get(pk=project.pk)
    if not current:
        raise ValidationError(_("This project has no guideline to acknowledge yet."))
    if version != current:
        raise ValidationError(
            _(
                "Version %(version)s is no longer current: version %(current)s was published since. "
                "Read it and acknowledge that one."
            )
            % {"version": version, "current": current}
        )
    updated = Qualification.objects.filter(evaluator=evaluator, project=project).update(
        acknowledged_version=version
    )
    if not updated:
        raise ValidationError(
            _("You do not work on this project, so there is nothing to acknowledge.")
        )
    return updated


def qualifications_needing_acknowledgement(*, evaluator: User, project: Project) -> bool:
    """True when the project has a guideline version this evaluator has not acknowledged."""
    if not project.guideline_version:
        return False
    return (
        Qualification.objects.filter(evaluator=evaluator, project=project)
        .exclude(acknowledged_version=project.guideline_version)
        .exists()
    )

"""Writes of the guidelines app: publish a version, translate it, add worked examples,
acknowledge; create, fill, open and close calibration rounds; take an attempt.

What the core must know is recorded through `annotation` services: the current version
(Project.guideline_version), acknowledgements (Qualification.acknowledged_version) and
calibration verdicts (Qualification.status).
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from annotation.audit import actor_user, audit_record
from annotation.gold import gold_matches
from annotation.languages import (
    language_display_name,
    language_get_or_create,
    language_tag_normalize,
)
from annotation.models import (
    Assignment,
    AssignmentKind,
    Item,
    Judgment,
    Language,
    Project,
    Qualification,
    QualificationStatus,
)
from annotation.qualification import (
    project_guideline_version_set,
    qualification_acknowledge,
    qualification_set,
)
from annotation.queue import judgment_submit
from annotation.schema import judgment_value_validate
from annotation.types import Actor, User
from annotation.validation import text_clean
from guidelines.models import (
    AttemptVerdict,
    CalibrationAttempt,
    CalibrationRound,
    CalibrationRoundStatus,
    Guideline,
    GuidelineAcknowledgement,
    GuidelineTranslation,
    GuidelineVersion,
    WorkedExample,
)

BUMPS = ("major", "minor", "patch")
MAX_BODY_CHARS = 200_000
MAX_NOTE_CHARS = 10_000
MAX_COOLDOWN_SECONDS = 30 * 24 * 3600
MAX_ROUND_ITEMS = 200
# Statuses that take calibration: never qualified yet, or sent back (major bump, a lead).
CALIBRATING = (QualificationStatus.PENDING, QualificationStatus.REQUALIFY)


class CooldownActive(ValidationError):
    """A failed attempt's cool-down has not run out yet."""

    def __init__(self, retry_at: datetime) -> None:
        self.retry_at = retry_at
        super().__init__(
            f"You can retry the calibration round after the cool-down, at {retry_at:%Y-%m-%d %H:%M:%S} UTC."
        )


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def version_parse(version: str) -> tuple[int, int, int]:
    """ "1.2.3" → (1, 2, 3); ValidationError for anything else."""
    parts = (version or "").split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValidationError(f"{version!r} is not a version of the form major.minor.patch")
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def same_major(a: str, b: str) -> bool:
    """Versions of one major revision (and "no guideline" with itself) are compatible."""
    if not a or not b:
        return a == b
    return a.split(".")[0] == b.split(".")[0]


def _project_language(project: Project, tag: str) -> Language:
    """The project's language for this tag, or a message naming the ones it has."""
    normal = language_tag_normalize(tag)
    language = project.languages.filter(tag=normal).first()
    if language is None:
        have = ", ".join(project.languages.order_by("tag").values_list("tag", flat=True)) or "none"
        raise ValidationError(
            _(
                "Project %(project)s has no language %(tag)r (its languages: %(have)s). Add the language to the project first."
            )
            % {"project": project.slug, "tag": normal, "have": have}
        )
    return language


# ---------------------------------------------------------------------------------------
# Guideline versions, translations, worked examples
# ---------------------------------------------------------------------------------------


def _guideline_locked(*, project: Project, source_language: str | None) -> Guideline:
    """The project's guideline, created on the first publication, locked: one publication at
    a time per project (the version number is read, then written)."""
    guideline = Guideline.objects.select_for_update().filter(project=project).first()
    if guideline is not None:
        return guideline
    language = language_get_or_create(tag=source_language or "en")
    try:
        with transaction.atomic():
            return Guideline.objects.create(project=project, source_language=language)
    except IntegrityError:
        # Another lead published the first version a moment ago: number after theirs.
        return Guideline.objects.select_for_update().get(project=project)


def _version_next(
    *, previous: GuidelineVersion | None, body: str, changelog: str, bump: str
) -> tuple[tuple[int, int, int], str, str]:
    """(major, minor, patch), the effective bump and the changelog of the next version."""
    if previous is None:
        return (1, 0, 0), "initial", changelog or "First version."
    if body == previous.body:
        raise ValidationError(
            _("body: the text is the same as version %(version)s; change it before publishing.")
            % {"version": previous.version}
        )
    if not changelog:
        raise ValidationError(
            _(
                "changelog: say what changed since version %(version)s, so evaluators know what to re-read."
            )
            % {"version": previous.version}
        )
    major, minor, patch = previous.major, previous.minor, previous.patch
    if bump == "major":
        return (major + 1, 0, 0), bump, changelog
    if bump == "minor":
        return (major, minor + 1, 0), bump, changelog
    return (major, minor, patch + 1), bump, changelog


def guideline_publish(
    *,
    project: Project,
    body: str,
    changelog: str = "",
    bump: str = "minor",
    actor: Actor = None,
    source_language: str | None = None,
) -> GuidelineVersion:
    """Publish a new version of the project's guideline and make it current.

    The first version is 1.0.0 (evaluators must acknowledge it). Then: patch → wording,
    nobody re-acknowledges; minor → every evaluator acknowledges before claiming again;
    major → every qualified evaluator requalifies through a calibration round.
    """
    body = text_clean(body, field="body", max_chars=MAX_BODY_CHARS, required=True)
    changelog = text_clean(changelog, field="changelog", max_chars=MAX_NOTE_CHARS)
    if bump not in BUMPS:
        raise ValidationError(
            _("bump: choose one of %(bumps)s, not %(bump)r")
            % {"bumps": ", ".join(BUMPS), "bump": bump}
        )
    with transaction.atomic():
        guideline = _guideline_locked(project=project, source_language=source_language)
        previous = guideline.versions.order_by("-major", "-minor", "-patch").first()
        (major, minor, patch), effective, changelog = _version_next(
            previous=previous, body=body, changelog=changelog, bump=bump
        )
        version = GuidelineVersion.objects.create(
            guideline=guideline,
            major=major,
            minor=minor,
            patch=patch,
            body=body,
            changelog=changelog,
            published_by=actor_user(actor),
        )
        requalify = project_guideline_version_set(
            project=project,
            version=version.version,
            bump=effective,
            previous=previous.version if previous else "",
            actor=actor,
        )
        audit_record(
            verb="guideline.publish",
            actor=actor,
            project=project,
            obj=version,
            data={"version": version.version, "bump": effective, "requalify": requalify},
        )
    return version


def guideline_translation_save(
    *, project: Project, version: GuidelineVersion, language: str, body: str, actor: Actor = None
) -> GuidelineTranslation:
    """Add or replace the translation of a version into one of the project's languages."""
    if version.guideline.project_id != project.pk:
        raise ValidationError(_("This guideline version belongs to another project."))
    source = version.guideline.source_language
    if language_tag_normalize(language) == source.tag:
        raise ValidationError(
            _("%(tag)s is the guideline's source language: edit the guideline itself instead.")
            % {"tag": source.tag}
        )
    target = _project_language(project, language)
    body = text_clean(body, field="body", max_chars=MAX_BODY_CHARS, required=True)
    translation, created = GuidelineTranslation.objects.update_or_create(
        version=version,
        language=target,
        defaults={"body": body, "translated_by": actor_user(actor), "updated_at": timezone.now()},
    )
    audit_record(
        verb="guideline.translate",
        actor=actor,
        project=project,
        obj=translation,
        data={"version": version.version, "language": target.tag, "created": created},
    )
    return translation


def worked_example_add(
    *, project: Project, external_id: str, value: Any, explanation: str, actor: Actor = None
) -> WorkedExample:
    """Attach an item of the project to the guideline as a worked example."""
    guideline = Guideline.objects.filter(project=project).first()
    if guideline is None:
        raise ValidationError(
            _("Publish a first version of the guideline before adding worked examples.")
        )
    item = Item.objects.filter(project=project, external_id=(external_id or "").strip()).first()
    if item is None:
        raise ValidationError(
            _("item: there is no item %(id)r in this project") % {"id": external_id}
        )
    try:
        clean = judgment_value_validate(
            task_type=project.task_type, schema=project.schema, value=value
        )
    except ValidationError as exc:
        raise ValidationError(
            _("The example's judgment does not fit the project's schema: %(reason)s")
            % {"reason": exc.messages[0]}
        ) from None
    clean.pop("comment", None)
    explanation = text_clean(
        explanation, field="explanation", max_chars=MAX_NOTE_CHARS, required=True
    )
    position = (guideline.examples.aggregate(m=Max("position"))["m"] or 0) + 1
    try:
        with transaction.atomic():
            example = WorkedExample.objects.create(
                guideline=guideline,
                item=item,
                value=clean,
                explanation=explanation,
                position=position,
                added_in=project.guideline_version,
                created_by=actor_user(actor),
            )
    except IntegrityError:
        raise ValidationError(
            _("item: %(id)r is already a worked example") % {"id": item.external_id}
        ) from None
    audit_record(
        verb="guideline.example_add",
        actor=actor,
        project=project,
        obj=example,
        data={"item": item.external_id, "value": clean},
    )
    return example


def worked_example_remove(*, example: WorkedExample, actor: Actor = None) -> None:
    project = example.guideline.project
    audit_record(
        verb="guideline.example_remove",
        actor=actor,
        project=project,
        obj=example,
        data={"item": example.item.external_id},
    )
    example.delete()


def guideline_acknowledge(
    *, project: Project, evaluator: User, version: str
) -> GuidelineAcknowledgement:
    """The evaluator read `version` (the current one) and may claim under it."""
    guideline_version = (
        GuidelineVersion.objects.filter(guideline__project=project)
        .filter(**dict(zip(("major", "minor", "patch"), version_parse(version), strict=True)))
        .first()
    )
    if guideline_version is None:
        raise ValidationError(
            _("This project has no guideline version %(version)s.") % {"version": version}
        )
    with transaction.atomic():
        qualification_acknowledge(evaluator=evaluator, project=project, version=version)
        try:
            with transaction.atomic():
                ack = GuidelineAcknowledgement.objects.create(
                    version=guideline_version, evaluator=evaluator
                )
        except IntegrityError:
            ack = GuidelineAcknowledgement.objects.get(
                version=guideline_version, evaluator=evaluator
            )
        audit_record(
            verb="guideline.acknowledge",
            actor=evaluator,
            project=project,
            obj=guideline_version,
            data={"version": version},
        )
    return ack


# ---------------------------------------------------------------------------------------
# Calibration rounds (lead)
# ---------------------------------------------------------------------------------------


def _pass_mark_clean(pass_mark: Any) -> float:
    if isinstance(pass_mark, str):
        try:
            pass_mark = float(pass_mark.strip())
        except ValueError:
            raise ValidationError(
                _("pass mark: %(raw)r is not a number") % {"raw": pass_mark}
            ) from None
    if (
        isinstance(pass_mark, bool)
        or not isinstance(pass_mark, int | float)
        or not math.isfinite(pass_mark)
    ):
        raise ValidationError(_("pass mark: a number between 0 and 1 is required"))
    if not 0 <= pass_mark <= 1:
        raise ValidationError(
            _(
                "pass mark: must be between 0 and 1 (the share of gold items answered right), not %(raw)s"
            )
            % {"raw": f"{pass_mark:g}"}
        )
    return float(pass_mark)


def _cooldown_clean(cooldown_seconds: Any) -> int:
    if isinstance(cooldown_seconds, bool) or not isinstance(cooldown_seconds, int):
        raise ValidationError(_("cool-down: a whole number of seconds is required"))
    if not 0 <= cooldown_seconds <= MAX_COOLDOWN_SECONDS:
        raise ValidationError(
            _("cool-down: must be between 0 and %(max)s seconds (30 days)")
            % {"max": MAX_COOLDOWN_SECONDS}
        )
    return cooldown_seconds


def _gold_items_clean(
    *, project: Project, language: Language, item_ids: Iterable[Any]
) -> list[Item]:
    ids = []
    for raw in item_ids or []:
        try:
            ids.append(int(raw))
        except (TypeError, ValueError):
            raise ValidationError(
                _("gold items: %(raw)r is not an item id") % {"raw": raw}
            ) from None
    ids = sorted(set(ids))
    if not ids:
        raise ValidationError(
            _(
                "A calibration round needs at least one gold item: pick some, or create gold items first."
            )
        )
    if len(ids) > MAX_ROUND_ITEMS:
        raise ValidationError(
            _("A calibration round holds at most %(n)s gold items.") % {"n": MAX_ROUND_ITEMS}
        )
    items = list(
        Item.objects.filter(
            pk__in=ids, project=project, language=language, is_gold=True, gold__isnull=False
        )
    )
    if len(items) != len(ids):
        bad = sorted(set(ids) - {item.pk for item in items})
        raise ValidationError(
            ngettext(
                "gold items: %(ids)s is not a gold item of this project in %(tag)s",
                "gold items: %(ids)s are not gold items of this project in %(tag)s",
                len(bad),
            )
            % {"ids": ", ".join(map(str, bad)), "tag": language.tag}
        )
    return items


def calibration_round_create(
    *,
    project: Project,
    language: str,
    pass_mark: Any,
    cooldown_seconds: Any,
    gold_item_ids: Iterable[Any],
    name: str = "",
    actor: Actor = None,
) -> CalibrationRound:
    """A round for (project, language, current guideline version), still a draft."""
    target = _project_language(project, language)
    clean_mark = _pass_mark_clean(pass_mark)
    clean_cooldown = _cooldown_clean(cooldown_seconds)
    items = _gold_items_clean(project=project, language=target, item_ids=gold_item_ids)
    name = text_clean(name, field="name", max_chars=200)
    with transaction.atomic():
        calibration_round = CalibrationRound.objects.create(
            project=project,
            language=target,
            guideline_version=project.guideline_version,
            name=name,
            pass_mark=clean_mark,
            cooldown_seconds=clean_cooldown,
            created_by=actor_user(actor),
        )
        calibration_round.gold_items.set(items)
        audit_record(
            verb="calibration_round.create",
            actor=actor,
            project=project,
            obj=calibration_round,
            data={
                "language": target.tag,
                "pass_mark": clean_mark,
                "cooldown_seconds": clean_cooldown,
                "items": [item.pk for item in items],
            },
        )
    return calibration_round


def calibration_round_items_set(
    *, calibration_round: CalibrationRound, gold_item_ids: Iterable[Any], actor: Actor = None
) -> CalibrationRound:
    """Pick the round's gold items; only before anyone took it (scores must stay comparable)."""
    items = _gold_items_clean(
        project=calibration_round.project,
        language=calibration_round.language,
        item_ids=gold_item_ids,
    )
    with transaction.atomic():
        locked = CalibrationRound.objects.select_for_update().get(pk=calibration_round.pk)
        if locked.attempts.exists():
            raise ValidationError(
                _(
                    "Evaluators have already taken this round: create a new round to change its gold items."
                )
            )
        locked.gold_items.set(items)
        audit_record(
            verb="calibration_round.items",
            actor=actor,
            project=locked.project,
            obj=locked,
            data={"items": [item.pk for item in items]},
        )
    return locked


def calibration_round_open(
    *, calibration_round: CalibrationRound, actor: Actor = None
) -> CalibrationRound:
    """Open the round; the language's previously open round (if any) closes."""
    project = calibration_round.project
    with transaction.atomic():
        locked = CalibrationRound.objects.select_for_update().get(pk=calibration_round.pk)
        if locked.status == CalibrationRoundStatus.OPEN:
            return locked
        if not locked.gold_items.exists():
            raise ValidationError(
                _("A calibration round with no gold items cannot open: pick gold items first.")
            )
        if not same_major(locked.guideline_version, project.guideline_version):
            raise ValidationError(
                _(
                    "This round tests guideline %(round)s; the project is at %(project)s, a different major version. "
                    "Create a new round."
                )
                % {
                    "round": locked.guideline_version or "–",
                    "project": project.guideline_version or "–",
                }
            )
        now = timezone.now()
        CalibrationRound.objects.filter(
            project=project, language=locked.language, status=CalibrationRoundStatus.OPEN
        ).update(status=CalibrationRoundStatus.CLOSED, closed_at=now)
        locked.status = CalibrationRoundStatus.OPEN
        locked.opened_at = now
        locked.closed_at = None
        locked.save(update_fields=["status", "opened_at", "closed_at"])
        audit_record(verb="calibration_round.open", actor=actor, project=project, obj=locked)
    return locked


def calibration_round_close(
    *, calibration_round: CalibrationRound, actor: Actor = None
) -> CalibrationRound:
    with transaction.atomic():
        locked = CalibrationRound.objects.select_for_update().get(pk=calibration_round.pk)
        if locked.status != CalibrationRoundStatus.CLOSED:
            locked.status = CalibrationRoundStatus.CLOSED
            locked.closed_at = timezone.now()
            locked.save(update_fields=["status", "closed_at"])
            audit_record(
                verb="calibration_round.close", actor=actor, project=locked.project, obj=locked
            )
    return locked


# ---------------------------------------------------------------------------------------
# Calibration attempts (evaluator)
# ---------------------------------------------------------------------------------------


def calibration_qualification(
    *, evaluator: User, project: Project, language: Language
) -> Qualification:
    """The qualification that lets this evaluator take calibration, or a refusal that says why."""
    qualification = Qualification.objects.filter(
        evaluator=evaluator, project=project, language=language
    ).first()
    if qualification is None:
        raise PermissionDenied(
            _("You are not invited to work on %(project)s in %(language)s. Ask the project's lead.")
            % {"project": project.name, "language": language_display_name(language.tag)}
        )
    if qualification.status == QualificationStatus.QUALIFIED:
        raise ValidationError(
            _("You are already qualified for %(language)s in %(project)s.")
            % {"language": language_display_name(language.tag), "project": project.name}
        )
    if qualification.status == QualificationStatus.SUSPENDED:
        raise ValidationError(
            _(
                "You are suspended for %(language)s: %(reason)s Your lead can reinstate you or send you back to calibration."
            )
            % {"language": language_display_name(language.tag), "reason": qualification.reason}
        )
    if (
        project.guideline_version
        and qualification.acknowledged_version != project.guideline_version
    ):
        raise ValidationError(
            _("Read and acknowledge guideline %(version)s before taking calibration.")
            % {"version": project.guideline_version}
        )
    return qualification


def _shuffled(item_ids: list[int], seed: int) -> list[int]:
    order = sorted(item_ids)
    random.Random(seed).shuffle(order)
    return order


def _attempt_order(item_ids: list[int], last: CalibrationAttempt | None) -> tuple[int, list[int]]:
    """A fresh seed and the items in its shuffled order, never the order of the attempt
    before (when there is more than one item)."""
    seed = secrets.randbits(62)
    order = _shuffled(item_ids, seed)
    if last is not None and len(item_ids) > 1:
        # Another seed until the order differs: an evaluator who failed should not be
        # able to replay the answers they remember by position.
        while order == last.order:
            seed = (seed + 1) % (1 << 62)
            order = _shuffled(item_ids, seed)
    return seed, order


def calibration_attempt_start(
    *, calibration_round: CalibrationRound, evaluator: User, now: datetime | None = None
) -> CalibrationAttempt:
    """Start (or resume) the evaluator's attempt at the round, in a fresh shuffled order.

    A retry after a failed attempt waits out the round's cool-down and never gets the
    same order as the attempt before it (when the round has more than one item).
    """
    now = now or timezone.now()
    # The status as it is now, not as the caller last read it.
    calibration_round = CalibrationRound.objects.select_related("project", "language").get(
        pk=calibration_round.pk
    )
    project = calibration_round.project
    calibration_qualification(
        evaluator=evaluator, project=project, language=calibration_round.language
    )
    if calibration_round.status != CalibrationRoundStatus.OPEN:
        raise ValidationError(_("This calibration round is not open."))
    item_ids = list(calibration_round.gold_items.values_list("pk", flat=True))
    if not item_ids:
        raise ValidationError(_("This calibration round has no gold items yet."))
    with transaction.atomic():
        attempts = CalibrationAttempt.objects.filter(round=calibration_round, evaluator=evaluator)
        current = attempts.filter(verdict=AttemptVerdict.IN_PROGRESS).first()
        if current is not None:
            return current
        last = attempts.order_by("-number").first()
        if (
            last is not None
            and last.verdict == AttemptVerdict.FAILED
            and last.finished_at is not None
        ):
            retry_at = last.finished_at + timedelta(seconds=calibration_round.cooldown_seconds)
            if now < retry_at:
                raise CooldownActive(retry_at)
        seed, order = _attempt_order(item_ids, last)
        try:
            with transaction.atomic():
                attempt = CalibrationAttempt.objects.create(
                    round=calibration_round,
                    evaluator=evaluator,
                    number=(last.number + 1) if last else 1,
                    seed=seed,
                    order=order,
                    total=len(order),
                    started_at=now,
                )
        except IntegrityError:
            # A second tab started the same attempt a moment ago.
            return attempts.get(verdict=AttemptVerdict.IN_PROGRESS)
        audit_record(
            verb="calibration_attempt.start",
            actor=evaluator,
            project=project,
            obj=attempt,
            data={"round": calibration_round.pk, "number": attempt.number},
        )
    return attempt


def _answered_item_ids(attempt: CalibrationAttempt) -> set[int]:
    return set(
        Judgment.objects.filter(
            assignment__calibration_attempt_id=attempt.pk,
            assignment__kind=AssignmentKind.CALIBRATION,
            is_current=True,
        ).values_list("item_id", flat=True)
    )


def _live_order(attempt: CalibrationAttempt) -> list[int]:
    """The attempt's order without items deleted (or no longer gold) since it started."""
    existing = set(
        Item.objects.filter(pk__in=attempt.order, is_gold=True, gold__isnull=False).values_list(
            "pk", flat=True
        )
    )
    return [pk for pk in attempt.order if pk in existing]


@dataclass(frozen=True)
class CalibrationStep:
    assignment: Assignment
    position: int  # 1-based
    total: int


def calibration_step_next(*, attempt: CalibrationAttempt) -> CalibrationStep | None:
    """The assignment for the attempt's next unanswered item (created on first view)."""
    if attempt.verdict != AttemptVerdict.IN_PROGRESS:
        return None
    order = _live_order(attempt)
    answered = _answered_item_ids(attempt)
    for index, item_id in enumerate(order):
        if item_id in answered:
            continue
        project = attempt.round.project
        lookup = {
            "item_id": item_id,
            "evaluator": attempt.evaluator,
            "kind": AssignmentKind.CALIBRATION,
            "calibration_attempt_id": attempt.pk,
        }
        assignment = Assignment.objects.filter(**lookup).first()
        if assignment is None:
            try:
                with transaction.atomic():
                    assignment = Assignment.objects.create(
                        **lookup,
                        project=project,
                        lease_expires_at=timezone.now() + timedelta(seconds=project.lease_seconds),
                    )
            except IntegrityError:
                assignment = Assignment.objects.get(**lookup)
        return CalibrationStep(assignment=assignment, position=index + 1, total=len(order))
    return None


def calibration_answer(
    *,
    attempt: CalibrationAttempt,
    assignment: Assignment,
    evaluator: User,
    value: Any,
    seconds: float | None = None,
) -> Judgment:
    """Store the evaluator's answer; after the last item, score the attempt and give the verdict."""
    if attempt.evaluator_id != evaluator.pk or assignment.evaluator_id != evaluator.pk:
        raise PermissionDenied(_("This calibration attempt is not yours."))
    if (
        assignment.kind != AssignmentKind.CALIBRATION
        or assignment.calibration_attempt_id != attempt.pk
    ):
        raise ValidationError(_("This item is not part of your calibration attempt."))
    with transaction.atomic():
        # Lock order: attempt, then (inside judgment_submit) assignment and item.
        locked = (
            CalibrationAttempt.objects.select_for_update(of=("self",))
            .select_related("round__project", "round__language")
            .get(pk=attempt.pk)
        )
        if locked.verdict != AttemptVerdict.IN_PROGRESS:
            raise ValidationError(_("This calibration attempt is finished already."))
        judgment = judgment_submit(
            assignment=assignment, evaluator=evaluator, value=value, seconds=seconds
        )
        order = _live_order(locked)
        if set(order) <= _answered_item_ids(locked):
            _attempt_finish(locked, order=order)
    attempt.refresh_from_db()
    return judgment


def _attempt_finish(attempt: CalibrationAttempt, *, order: list[int]) -> None:
    calibration_round = attempt.round
    project = calibration_round.project
    judgments = Judgment.objects.filter(
        assignment__calibration_attempt_id=attempt.pk,
        assignment__kind=AssignmentKind.CALIBRATION,
        is_current=True,
    ).select_related("item__gold")
    correct = sum(
        gold_matches(
            task_type=project.task_type,
            gold_value=j.item.gold.value,
            tolerance=j.item.gold.tolerance,
            value=j.value,
        )
        for j in judgments
        if j.item_id in order
    )
    total = len(order)
    score = correct / total if total else 0.0
    # Integer comparison, so 4 of 5 passes a pass mark of 0.8 despite 0.8 not being exact in binary.
    passed = correct >= math.ceil(calibration_round.pass_mark * total - 1e-9)
    attempt.correct = correct
    attempt.total = total
    attempt.score = score
    attempt.verdict = AttemptVerdict.PASSED if passed else AttemptVerdict.FAILED
    attempt.finished_at = timezone.now()
    attempt.save(update_fields=["correct", "total", "score", "verdict", "finished_at"])
    _qualification_after_attempt(attempt, passed=passed, score=score)
    audit_record(
        verb="calibration_attempt.finish",
        actor=attempt.evaluator,
        project=project,
        obj=attempt,
        data={
            "round": calibration_round.pk,
            "correct": correct,
            "total": total,
            "verdict": attempt.verdict,
        },
    )


def _qualification_after_attempt(
    attempt: CalibrationAttempt, *, passed: bool, score: float
) -> None:
    """A pass qualifies an evaluator who is calibrating; a fail keeps their status and
    says when they may retry."""
    calibration_round = attempt.round
    project = calibration_round.project
    language = calibration_round.language
    qualification = Qualification.objects.filter(
        evaluator=attempt.evaluator, project=project, language=language
    ).first()
    if qualification is None or qualification.status not in CALIBRATING:
        return
    if passed:
        status: str = QualificationStatus.QUALIFIED
        reason = (
            f"Passed calibration with {score:.0%} (pass mark {calibration_round.pass_mark:.0%})."
        )
    else:
        assert attempt.finished_at is not None
        retry_at = attempt.finished_at + timedelta(seconds=calibration_round.cooldown_seconds)
        status = qualification.status
        reason = (
            f"Calibration score {score:.0%} is below the pass mark of {calibration_round.pass_mark:.0%}; "
            f"you can retry after {retry_at:%Y-%m-%d %H:%M:%S} UTC."
        )
    qualification_set(
        project=project,
        evaluator=attempt.evaluator,
        language=language,
        status=status,
        actor=attempt.evaluator,
        reason=reason,
    )


def calibration_rounds_renew(*, project: Project, actor: Actor = None) -> list[CalibrationRound]:
    """After a major version: for every language with an earlier round that had gold items,
    open a new round for the current version with the same gold items, pass mark and
    cool-down, so evaluators sent back to calibration find a round waiting for them."""
    renewed = []
    seen: set[int] = set()
    previous_rounds = (
        CalibrationRound.objects.filter(project=project, gold_items__isnull=False)
        .select_related("language")
        .distinct()
        .order_by("-created_at", "-id")
    )
    for previous in previous_rounds:
        if previous.language_id in seen or same_major(
            previous.guideline_version, project.guideline_version
        ):
            seen.add(previous.language_id)
            continue
        seen.add(previous.language_id)
        try:
            with transaction.atomic():
                renewed_round = calibration_round_create(
                    project=project,
                    language=previous.language.tag,
                    pass_mark=previous.pass_mark,
                    cooldown_seconds=previous.cooldown_seconds,
                    gold_item_ids=previous.gold_items.values_list("pk", flat=True),
                    name=previous.name,
                    actor=actor,
                )
                renewed.append(calibration_round_open(calibration_round=renewed_round, actor=actor))
        except ValidationError:
            # Its gold items changed since (no longer gold): the lead's rounds page shows
            # the language without an open round, and picks new ones there.
            continue
    return renewed

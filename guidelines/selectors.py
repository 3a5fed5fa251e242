"""Reads of the guidelines app: the guideline in a language, diffs, calibration state and
feedback for an evaluator, round reports, suspensions and too-fast judgments for a lead."""

from __future__ import annotations

import difflib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from annotation.gold import gold_matches
from annotation.models import (
    Assignment,
    AssignmentKind,
    Item,
    Judgment,
    Language,
    Project,
    Qualification,
    QualificationStatus,
    TaskType,
)
from annotation.types import User
from guidelines.markdown import markdown_render
from guidelines.models import (
    AttemptVerdict,
    CalibrationAttempt,
    CalibrationRound,
    CalibrationRoundStatus,
    Guideline,
    GuidelineTranslation,
    GuidelineVersion,
    WorkedExample,
)
from guidelines.services import CALIBRATING, same_major

# ---------------------------------------------------------------------------------------
# Guideline
# ---------------------------------------------------------------------------------------


def guideline_current(*, project: Project) -> GuidelineVersion | None:
    return (
        GuidelineVersion.objects.select_related("guideline__source_language")
        .filter(guideline__project=project)
        .order_by("-major", "-minor", "-patch")
        .first()
    )


def guideline_versions(*, project: Project) -> QuerySet[GuidelineVersion]:
    return (
        GuidelineVersion.objects.select_related("published_by")
        .filter(guideline__project=project)
        .order_by("-major", "-minor", "-patch")
    )


def guideline_version_get(*, project: Project, version: str) -> GuidelineVersion | None:
    parts = (version or "").split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    major, minor, patch = (int(p) for p in parts)
    return (
        GuidelineVersion.objects.select_related("guideline__source_language")
        .filter(guideline__project=project, major=major, minor=minor, patch=patch)
        .first()
    )


@dataclass(frozen=True)
class GuidelineText:
    version: GuidelineVersion
    html: SafeString
    # The language the text is written in (its lang/dir on the page).
    language: Language
    # The language asked for; differs from `language` when no translation exists yet.
    requested: Language
    is_fallback: bool


def guideline_text(*, version: GuidelineVersion, language: Language | None) -> GuidelineText:
    """The version in `language`, falling back to the guideline's source language."""
    source = version.guideline.source_language
    requested = language or source
    translation = None
    if requested.pk != source.pk:
        translation = GuidelineTranslation.objects.filter(
            version=version, language=requested
        ).first()
    if translation is not None:
        return GuidelineText(
            version, markdown_render(translation.body), requested, requested, False
        )
    return GuidelineText(
        version, markdown_render(version.body), source, requested, requested.pk != source.pk
    )


def guideline_translations(*, version: GuidelineVersion) -> dict[int, GuidelineTranslation]:
    """Translations of a version by language id."""
    return {
        t.language_id: t
        for t in GuidelineTranslation.objects.filter(version=version).select_related("language")
    }


@dataclass(frozen=True)
class DiffLine:
    op: str  # "same" | "added" | "removed"
    text: str


def version_previous(*, version: GuidelineVersion) -> GuidelineVersion | None:
    return (
        GuidelineVersion.objects.filter(guideline=version.guideline)
        .filter(
            Q(major__lt=version.major)
            | Q(major=version.major, minor__lt=version.minor)
            | Q(major=version.major, minor=version.minor, patch__lt=version.patch)
        )
        .order_by("-major", "-minor", "-patch")
        .first()
    )


def version_diff(*, version: GuidelineVersion) -> tuple[GuidelineVersion | None, list[DiffLine]]:
    """Line diff of the Markdown source against the previous version (escaped by the template)."""
    previous = version_previous(version=version)
    old = previous.body.splitlines() if previous else []
    new = version.body.splitlines()
    lines: list[DiffLine] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "equal":
            lines.extend(DiffLine("same", text) for text in old[i1:i2])
            continue
        if op in ("replace", "delete"):
            lines.extend(DiffLine("removed", text) for text in old[i1:i2])
        if op in ("replace", "insert"):
            lines.extend(DiffLine("added", text) for text in new[j1:j2])
    return previous, lines


def versions_since(*, project: Project, acknowledged: str) -> list[GuidelineVersion]:
    """Versions published after the one the evaluator acknowledged (newest first), for
    "what changed since you last read it"."""
    versions = list(guideline_versions(project=project))
    if not acknowledged:
        return versions
    out = []
    for version in versions:
        if version.version == acknowledged:
            break
        out.append(version)
    return out


def value_label(*, project: Project, value: dict[str, Any] | None) -> str:
    """A judgment value in words ("4 — good", "A much better", "fluent, wrong_language")."""
    if not isinstance(value, dict):
        return ""
    if project.task_type == TaskType.RATING:
        score = value.get("score")
        label = (project.schema or {}).get("scale", {}).get("labels", {}).get(str(score), "")
        text = f"{score} — {label}" if label else str(score)
    elif project.task_type == TaskType.PAIRWISE:
        choice, much = value.get("choice"), value.get("strength") == 2
        text = {
            "a": _("A much better") if much else _("A slightly better"),
            "b": _("B much better") if much else _("B slightly better"),
            "tie": _("Tie"),
            "both_bad": _("Both bad"),
        }.get(str(choice), "")
    else:
        text = ", ".join(value.get("labels", []))
    issues = value.get("issues")
    if issues:
        text += " · " + _("issues: %(issues)s") % {"issues": ", ".join(issues)}
    return text


def tolerance_label(*, project: Project, tolerance: dict[str, Any] | None) -> str:
    tolerance = tolerance or {}
    if project.task_type == TaskType.RATING:
        points = tolerance.get("points", 0)
        return _("exact score") if not points else _("within ± %(points)s") % {"points": points}
    if project.task_type == TaskType.PAIRWISE:
        return _("same choice, a tie also counts") if tolerance.get("tie_ok") else _("same choice")
    if tolerance.get("jaccard") is not None:
        return _("label overlap (Jaccard) at least %(t)s") % {"t": tolerance["jaccard"]}
    return _("exact label set")


@dataclass(frozen=True)
class ExampleView:
    example: WorkedExample
    item: Item
    value: str


def worked_examples(*, project: Project, language: Language | None = None) -> list[ExampleView]:
    """The guideline's worked examples; in a language first, then the rest."""
    examples = list(
        WorkedExample.objects.filter(guideline__project=project)
        .select_related("item__language")
        .order_by("position", "id")
    )
    if language is not None:
        examples.sort(key=lambda e: e.item.language_id != language.pk)
    return [ExampleView(e, e.item, value_label(project=project, value=e.value)) for e in examples]


def project_language_get(*, project: Project, tag: str | None) -> Language | None:
    """One of the project's languages (or the guideline's source language) by tag."""
    if not tag:
        return None
    language = project.languages.filter(tag=tag).first()
    if language is None:
        guideline = (
            Guideline.objects.select_related("source_language").filter(project=project).first()
        )
        if guideline is not None and guideline.source_language.tag == tag:
            return guideline.source_language
    return language


# ---------------------------------------------------------------------------------------
# Calibration (evaluator)
# ---------------------------------------------------------------------------------------


def calibration_round_for(*, project: Project, language: Language) -> CalibrationRound | None:
    """The open round an evaluator of this language is routed to (current major version)."""
    calibration_round = (
        CalibrationRound.objects.select_related("project", "language")
        .filter(project=project, language=language, status=CalibrationRoundStatus.OPEN)
        .first()
    )
    if calibration_round is None or not same_major(
        calibration_round.guideline_version, project.guideline_version
    ):
        return None
    return calibration_round


@dataclass
class CalibrationState:
    qualification: Qualification | None
    needs_acknowledgement: bool
    round: CalibrationRound | None
    attempt: CalibrationAttempt | None  # in progress
    last: CalibrationAttempt | None  # latest finished
    retry_at: datetime | None
    # The next item (services.calibration_step_next), filled in by the page: showing an item
    # creates its assignment, a write.
    step: Any = None

    @property
    def may_calibrate(self) -> bool:
        return self.qualification is not None and self.qualification.status in CALIBRATING

    @property
    def cooling_down(self) -> bool:
        return self.retry_at is not None and timezone.now() < self.retry_at

    @property
    def retry_in_seconds(self) -> int:
        if self.retry_at is None:
            return 0
        return max(0, int((self.retry_at - timezone.now()).total_seconds() + 0.999))


def calibration_state(*, evaluator: User, project: Project, language: Language) -> CalibrationState:
    qualification = Qualification.objects.filter(
        evaluator=evaluator, project=project, language=language
    ).first()
    needs_ack = bool(
        project.guideline_version
        and qualification is not None
        and qualification.acknowledged_version != project.guideline_version
    )
    calibration_round = calibration_round_for(project=project, language=language)
    state = CalibrationState(qualification, needs_ack, calibration_round, None, None, None)
    if calibration_round is None:
        return state
    attempts = CalibrationAttempt.objects.filter(
        round=calibration_round, evaluator=evaluator
    ).order_by("-number")
    state.attempt = attempts.filter(verdict=AttemptVerdict.IN_PROGRESS).first()
    state.last = attempts.exclude(verdict=AttemptVerdict.IN_PROGRESS).first()
    if (
        state.last is not None
        and state.last.verdict == AttemptVerdict.FAILED
        and state.last.finished_at is not None
    ):
        state.retry_at = state.last.finished_at + timedelta(
            seconds=calibration_round.cooldown_seconds
        )
    return state


@dataclass(frozen=True)
class Feedback:
    assignment: Assignment
    attempt: CalibrationAttempt
    item: Item
    answer: str
    gold: str
    tolerance: str
    explanation: str
    correct: bool
    position: int
    total: int
    finished: bool


class NotAnswered(Exception):
    """No answer yet: the gold answer stays hidden."""


def calibration_answered(*, evaluator: User, assignment_id: int) -> bool:
    return Judgment.objects.filter(
        assignment_id=assignment_id,
        assignment__kind=AssignmentKind.CALIBRATION,
        evaluator=evaluator,
    ).exists()


def calibration_feedback(*, evaluator: User, assignment_id: int) -> Feedback:
    """What the evaluator sees after answering a calibration item — only after answering."""
    assignment = (
        Assignment.objects.select_related("item__language", "item__project", "item__gold")
        .filter(pk=assignment_id, kind=AssignmentKind.CALIBRATION)
        .first()
    )
    if assignment is None or assignment.evaluator_id != evaluator.pk:
        raise PermissionDenied(_("This calibration item is not yours."))
    judgment = Judgment.objects.filter(assignment=assignment, is_current=True).first()
    if judgment is None:
        raise NotAnswered
    attempt = CalibrationAttempt.objects.select_related("round").get(
        pk=assignment.calibration_attempt_id or 0
    )
    item = assignment.item
    project = item.project
    gold = item.gold
    order = list(attempt.order)
    position = order.index(item.pk) + 1 if item.pk in order else 0
    return Feedback(
        assignment=assignment,
        attempt=attempt,
        item=item,
        answer=value_label(project=project, value=judgment.value),
        gold=value_label(project=project, value=gold.value),
        tolerance=tolerance_label(project=project, tolerance=gold.tolerance),
        explanation=gold.explanation,
        correct=gold_matches(
            task_type=project.task_type,
            gold_value=gold.value,
            tolerance=gold.tolerance,
            value=judgment.value,
        ),
        position=position,
        total=len(order),
        finished=attempt.verdict != AttemptVerdict.IN_PROGRESS,
    )


# ---------------------------------------------------------------------------------------
# Lead views
# ---------------------------------------------------------------------------------------


def rounds_for_project(*, project: Project) -> QuerySet[CalibrationRound]:
    return (
        CalibrationRound.objects.filter(project=project)
        .select_related("language")
        .annotate(
            n_items=Count("gold_items", distinct=True),
            n_attempts=Count("attempts", distinct=True),
            n_passed=Count(
                "attempts", filter=Q(attempts__verdict=AttemptVerdict.PASSED), distinct=True
            ),
        )
        .order_by("-created_at", "-id")
    )


def gold_items(*, project: Project, language: Language | None = None) -> QuerySet[Item]:
    qs = Item.objects.filter(project=project, is_gold=True, gold__isnull=False).select_related(
        "gold", "language"
    )
    if language is not None:
        qs = qs.filter(language=language)
    return qs.order_by("language__tag", "external_id")


def promotable_items(*, project: Project, limit: int = 200) -> QuerySet[Item]:
    """Adjudicated items (with a final label) that are not gold yet."""
    return (
        Item.objects.filter(project=project, is_gold=False, final_label__isnull=False)
        .select_related("final_label", "language")
        .order_by("-final_label__created_at")[:limit]
    )


@dataclass
class AttemptRow:
    evaluator: User
    attempts: list[CalibrationAttempt]

    @property
    def best(self) -> CalibrationAttempt | None:
        finished = [(a.score, a) for a in self.attempts if a.score is not None]
        return max(finished, key=lambda pair: pair[0])[1] if finished else None


@dataclass
class ItemStats:
    item: Item
    gold: str
    answered: int = 0
    missed: int = 0
    answers: list[tuple[str, int, bool]] = field(default_factory=list)  # (answer, count, correct)

    @property
    def miss_share(self) -> float | None:
        return self.missed / self.answered if self.answered else None


def round_report(
    *, calibration_round: CalibrationRound
) -> tuple[list[AttemptRow], list[ItemStats]]:
    """Attempts per evaluator, and per gold item the share of answers that missed it and
    what was answered — items most people miss point at an ambiguous guideline."""
    project = calibration_round.project
    attempts = list(
        CalibrationAttempt.objects.filter(round=calibration_round)
        .select_related("evaluator__evaluator_profile")
        .order_by("evaluator__username", "number")
    )
    by_evaluator: dict[int, AttemptRow] = {}
    for attempt in attempts:
        by_evaluator.setdefault(
            attempt.evaluator_id, AttemptRow(attempt.evaluator, [])
        ).attempts.append(attempt)
    items = list(
        calibration_round.gold_items.select_related("gold", "language").order_by("external_id")
    )
    stats = {
        item.pk: ItemStats(item, value_label(project=project, value=item.gold.value))
        for item in items
    }
    answers: dict[int, Counter[str]] = defaultdict(Counter)
    correct_of: dict[tuple[int, str], bool] = {}
    judgments = Judgment.objects.filter(
        assignment__calibration_attempt_id__in=[a.pk for a in attempts],
        assignment__kind=AssignmentKind.CALIBRATION,
        is_current=True,
        item_id__in=list(stats),
    ).only("item_id", "value")
    for judgment in judgments:
        row = stats[judgment.item_id]
        gold = row.item.gold
        hit = gold_matches(
            task_type=project.task_type,
            gold_value=gold.value,
            tolerance=gold.tolerance,
            value=judgment.value,
        )
        row.answered += 1
        row.missed += 0 if hit else 1
        label = value_label(
            project=project, value={k: v for k, v in judgment.value.items() if k != "comment"}
        )
        answers[judgment.item_id][label] += 1
        correct_of[(judgment.item_id, label)] = hit
    for item_id, counter in answers.items():
        stats[item_id].answers = [
            (label, n, correct_of[(item_id, label)]) for label, n in counter.most_common()
        ]
    ordered = sorted(stats.values(), key=lambda s: (-(s.miss_share or 0), s.item.external_id))
    return list(by_evaluator.values()), ordered


def honeypot_suspensions(*, project: Project) -> QuerySet[Qualification]:
    """Who is suspended in this project and why (newest first)."""
    return (
        Qualification.objects.filter(project=project, status=QualificationStatus.SUSPENDED)
        .select_related("evaluator__evaluator_profile", "language", "changed_by")
        .order_by("-changed_at")
    )


def requalifying(*, project: Project) -> QuerySet[Qualification]:
    return (
        Qualification.objects.filter(project=project, status=QualificationStatus.REQUALIFY)
        .select_related("evaluator__evaluator_profile", "language", "changed_by")
        .order_by("-changed_at")
    )


@dataclass(frozen=True)
class TooFastRow:
    evaluator: User
    language: Language
    flagged: int
    judged: int

    @property
    def share(self) -> float:
        return self.flagged / self.judged if self.judged else 0.0


@dataclass(frozen=True)
class TooFastJudgment:
    judgment: Judgment
    chars: int
    chars_per_second: float | None


def too_fast_report(
    *, project: Project, language: Language | None = None, limit: int = 200
) -> tuple[list[TooFastRow], list[TooFastJudgment]]:
    """Judgments flagged as faster than the project's reading-speed floor, per evaluator
    and language, and the latest of them. Production and honeypot judgments only."""
    base = Judgment.objects.filter(
        item__project=project,
        is_current=True,
        evaluator__isnull=False,
        kind__in=[AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT],
    )
    if language is not None:
        base = base.filter(item__language=language)
    grouped = (
        base.values("evaluator_id", "item__language_id")
        .annotate(judged=Count("id"), flagged=Count("id", filter=Q(too_fast=True)))
        .filter(flagged__gt=0)
        .order_by("-flagged")
    )
    rows_raw = list(grouped)
    users = {u.pk: u for u in _users([r["evaluator_id"] for r in rows_raw])}
    languages = {
        lang.pk: lang
        for lang in Language.objects.filter(pk__in=[r["item__language_id"] for r in rows_raw])
    }
    rows = [
        TooFastRow(
            users[r["evaluator_id"]], languages[r["item__language_id"]], r["flagged"], r["judged"]
        )
        for r in rows_raw
    ]
    latest = []
    for judgment in (
        base.filter(too_fast=True)
        .select_related("item__language", "evaluator__evaluator_profile")
        .order_by("-created_at")[:limit]
    ):
        chars = len(judgment.item.shown_text)
        speed = chars / judgment.seconds if judgment.seconds else None
        latest.append(TooFastJudgment(judgment, chars, speed))
    return rows, latest


def _users(ids: list[int]) -> QuerySet[Any]:
    return get_user_model().objects.filter(pk__in=ids).select_related("evaluator_profile")


def evaluator_languages_in(*, evaluator: User, project: Project) -> list[Qualification]:
    return list(
        Qualification.objects.filter(evaluator=evaluator, project=project)
        .select_related("language")
        .order_by("language__tag")
    )


# ---------------------------------------------------------------------------------------
# Before a major version: who it blocks, and whether calibration can take them back
# ---------------------------------------------------------------------------------------


@dataclass
class MajorBumpImpact:
    """One language of the project, as a major guideline version would leave it."""

    language: Language
    blocked: list[str]  # pseudonyms of the qualified evaluators who must requalify
    gold_count: int
    last_round: CalibrationRound | None  # the newest round with gold items, to renew

    @property
    def renewable(self) -> bool:
        return self.last_round is not None


def major_bump_impact(*, project: Project) -> list[MajorBumpImpact]:
    """Per language: which evaluators a major version sends back to calibration, how many
    gold items exist, and the round whose gold items a new round could reuse. A major
    version makes every open round unusable (rounds test one major version)."""
    blocked: dict[int, list[str]] = defaultdict(list)
    for language_id, pseudonym, evaluator_id in (
        Qualification.objects.filter(project=project, status=QualificationStatus.QUALIFIED)
        .order_by("evaluator__evaluator_profile__pseudonym", "evaluator_id")
        .values_list("language_id", "evaluator__evaluator_profile__pseudonym", "evaluator_id")
    ):
        blocked[language_id].append(pseudonym or f"evaluator-{evaluator_id}")
    gold = dict(
        Item.objects.filter(project=project, is_gold=True, gold__isnull=False)
        .order_by()
        .values_list("language_id")
        .annotate(n=Count("id"))
    )
    rounds: dict[int, CalibrationRound] = {}
    for calibration_round in (
        CalibrationRound.objects.filter(project=project, gold_items__isnull=False)
        .distinct()
        .order_by("-created_at", "-id")
    ):
        rounds.setdefault(calibration_round.language_id, calibration_round)
    return [
        MajorBumpImpact(
            language=language,
            blocked=blocked.get(language.pk, []),
            gold_count=gold.get(language.pk, 0),
            last_round=rounds.get(language.pk),
        )
        for language in project.languages.order_by("tag")
    ]

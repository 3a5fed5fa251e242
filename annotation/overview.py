"""The lead dashboard's figures: a project at a glance, per language.

Reads only (a selector): items by status, judgments by kind, qualifications by status,
flagged and too-fast counts — each one grouped query over the project, never a query
per language or per item, so the page stays cheap on a large project.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, Q

from annotation.models import (
    Item,
    ItemSource,
    ItemStatus,
    Judgment,
    JudgmentKind,
    Language,
    Project,
    Qualification,
    QualificationStatus,
)
from annotation.types import RequestUser, User

# Judgment kinds in the order the dashboard shows them; "adjudication" is the final
# label's own record and is counted on the adjudication page instead.
JUDGMENT_KINDS = (
    JudgmentKind.PRODUCTION,
    JudgmentKind.HISTORICAL,
    JudgmentKind.HONEYPOT,
    JudgmentKind.CALIBRATION,
)
# Evaluators listed by name on the dashboard; the admin lists the rest.
MAX_EVALUATORS_LISTED = 100


@dataclass
class LanguageFigures:
    """One language of the project (or, as `totals`, all of them)."""

    language: Language | None
    items: dict[str, int] = field(default_factory=dict)  # ItemStatus value -> non-gold items
    gold: int = 0
    flagged: int = 0
    judgments: dict[str, int] = field(default_factory=dict)  # kind -> current judgments
    too_fast: int = 0
    qualifications: dict[str, int] = field(
        default_factory=dict
    )  # QualificationStatus value -> count

    @property
    def item_total(self) -> int:
        return sum(self.items.values())

    @property
    def judgment_total(self) -> int:
        return sum(self.judgments.values())

    def item_cells(self) -> list[int]:
        return [self.items.get(status, 0) for status in ItemStatus.values]

    def judgment_cells(self) -> list[int]:
        return [self.judgments.get(kind, 0) for kind in JUDGMENT_KINDS]

    def qualification_cells(self) -> list[int]:
        return [self.qualifications.get(status, 0) for status in QualificationStatus.values]

    def add(self, other: LanguageFigures) -> None:
        for mine, theirs in (
            (self.items, other.items),
            (self.judgments, other.judgments),
            (self.qualifications, other.qualifications),
        ):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        self.gold += other.gold
        self.flagged += other.flagged
        self.too_fast += other.too_fast


@dataclass
class EvaluatorRow:
    evaluator: User
    qualifications: list[Qualification]


@dataclass
class ProjectOverview:
    languages: list[LanguageFigures]
    totals: LanguageFigures
    evaluators: list[EvaluatorRow]
    evaluators_total: int
    evaluators_qualified: int  # qualified in at least one language
    user_reports_open: int

    @property
    def evaluators_more(self) -> int:
        return max(0, self.evaluators_total - len(self.evaluators))


class _LanguageRows:
    """The figures of each language, created on first use: a language removed from the
    project may still have items or qualifications."""

    def __init__(self, languages: list[Language]) -> None:
        self.rows = {lang.pk: LanguageFigures(language=lang) for lang in languages}

    def __getitem__(self, language_id: int) -> LanguageFigures:
        if language_id not in self.rows:
            self.rows[language_id] = LanguageFigures(language=Language.objects.get(pk=language_id))
        return self.rows[language_id]

    def sorted(self) -> list[LanguageFigures]:
        return sorted(self.rows.values(), key=lambda f: f.language.tag if f.language else "")


def _items_count(project: Project, rows: _LanguageRows) -> None:
    items = (
        Item.objects.filter(project=project)
        .order_by()
        .values("language_id", "status", "is_gold")
        .annotate(n=Count("id"), flagged=Count("id", filter=Q(language_flagged=True)))
    )
    for r in items:
        figures = rows[r["language_id"]]
        if r["is_gold"]:
            figures.gold += r["n"]
        else:
            figures.items[r["status"]] = figures.items.get(r["status"], 0) + r["n"]
        figures.flagged += r["flagged"]


def _judgments_count(project: Project, rows: _LanguageRows) -> None:
    judgments = (
        Judgment.objects.filter(item__project=project, is_current=True, kind__in=JUDGMENT_KINDS)
        .order_by()
        .values("item__language_id", "kind")
        .annotate(n=Count("id"), fast=Count("id", filter=Q(too_fast=True)))
    )
    for r in judgments:
        figures = rows[r["item__language_id"]]
        figures.judgments[r["kind"]] = r["n"]
        figures.too_fast += r["fast"]


def _qualifications_count(project: Project, rows: _LanguageRows) -> None:
    qualifications = (
        Qualification.objects.filter(project=project)
        .order_by()
        .values("language_id", "status")
        .annotate(n=Count("id"))
    )
    for r in qualifications:
        rows[r["language_id"]].qualifications[r["status"]] = r["n"]


def _evaluator_rows(project: Project) -> tuple[list[EvaluatorRow], int, int]:
    """The first MAX_EVALUATORS_LISTED evaluators by name with their qualifications, how
    many evaluators the project has, and how many are qualified in at least one language."""
    evaluator_ids = list(
        Qualification.objects.filter(project=project)
        .order_by("evaluator__username")
        .values_list("evaluator_id", flat=True)
        .distinct()
    )
    qualified = (
        Qualification.objects.filter(project=project, status=QualificationStatus.QUALIFIED)
        .order_by()
        .values("evaluator_id")
        .distinct()
        .count()
    )
    listed = evaluator_ids[:MAX_EVALUATORS_LISTED]
    by_evaluator: dict[int, list[Qualification]] = defaultdict(list)
    evaluators: dict[int, User] = {}
    for q in (
        Qualification.objects.filter(project=project, evaluator_id__in=listed)
        .select_related("evaluator__evaluator_profile", "language")
        .order_by("language__tag")
    ):
        by_evaluator[q.evaluator_id].append(q)
        evaluators[q.evaluator_id] = q.evaluator
    rows = [
        EvaluatorRow(evaluator=evaluators[pk], qualifications=by_evaluator[pk]) for pk in listed
    ]
    return rows, len(evaluator_ids), qualified


def project_overview(*, project: Project) -> ProjectOverview:
    """Everything the lead dashboard shows about `project`, in a handful of grouped queries."""
    rows = _LanguageRows(list(project.languages.order_by("tag")))
    _items_count(project, rows)
    _judgments_count(project, rows)
    _qualifications_count(project, rows)
    totals = LanguageFigures(language=None)
    for figures in rows.rows.values():
        totals.add(figures)
    evaluators, evaluators_total, qualified = _evaluator_rows(project)
    open_reports = Item.objects.filter(
        project=project,
        source=ItemSource.USER_REPORT,
        status__in=[ItemStatus.POOL, ItemStatus.QUEUED, ItemStatus.ADJUDICATION],
    ).count()
    return ProjectOverview(
        languages=rows.sorted(),
        totals=totals,
        evaluators=evaluators,
        evaluators_total=evaluators_total,
        evaluators_qualified=qualified,
        user_reports_open=open_reports,
    )


def projects_led(*, user: RequestUser) -> list[Project]:
    """The projects this user leads (a superuser leads them all), by name."""
    if not user.is_authenticated:
        return []
    projects = Project.objects.all() if user.is_superuser else Project.objects.filter(leads=user)
    return list(projects.order_by("name", "slug"))

"""What the queue shows: items waiting per language, the card's progress, the live lease,
an assignment with its item, and the evaluator's own judgments.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    Judgment,
    Language,
    Project,
)
from annotation.qualification import qualified_language_ids
from annotation.queue import sql
from annotation.queue.sql import QUEUE_KINDS
from annotation.rows import from_row
from annotation.types import User


@dataclass(frozen=True)
class QueueCount:
    language: Language
    waiting: int


def claimable_items(
    *, evaluator: User, project: Project, language_ids: list[int]
) -> QuerySet[Item]:
    """What a claim may take (the claim itself runs the same rule as SQL: sql.CLAIMABLE;
    tests/annotation/test_queue_sql.py holds the two to the same answer)."""
    seen = Assignment.objects.filter(item=OuterRef("pk"), evaluator=evaluator).exclude(
        kind=AssignmentKind.CALIBRATION
    )
    # Served by the partial index item_claimable (project, language, -priority, id).
    return (
        Item.objects.filter(
            project=project,
            language_id__in=language_ids,
            status=ItemStatus.QUEUED,
            open_slots__gt=0,
            is_gold=False,
        )
        .filter(~Exists(seen))
        .order_by("-priority", "id")
    )


def queue_counts(*, evaluator: User, project: Project) -> list[QueueCount]:
    """Items waiting for this evaluator per qualified language (what the queue home shows)."""
    language_ids = qualified_language_ids(evaluator=evaluator, project=project)
    if not language_ids:
        return []
    rows = dict(
        claimable_items(evaluator=evaluator, project=project, language_ids=language_ids)
        .order_by()
        .values_list("language_id")
        .annotate(n=Count("id"))
    )
    languages = Language.objects.filter(pk__in=language_ids).order_by("tag")
    return [QueueCount(language=lang, waiting=rows.get(lang.pk, 0)) for lang in languages]


# How far the card counts the items left: an exact count reads every claimable item of the
# language on every card (at 100,000 items it doubled the CPU a judgment costs), and each
# item counted is an index probe of the evaluator's assignments; past this many the card
# says "100+".
LEFT_COUNT_CAP = 100


@dataclass
class Progress:
    done_today: int
    left: int  # items still waiting for this evaluator in the language, at most LEFT_COUNT_CAP
    more: bool = False  # more than LEFT_COUNT_CAP are waiting

    @property
    def left_shown(self) -> str:
        return f"{self.left}+" if self.more else str(self.left)


def evaluator_progress(
    *, evaluator: User, project: Project, language: Language, showing: Assignment | None = None
) -> Progress:
    """What the item card shows: items this evaluator finished today (server day) in the
    project, and how many more wait for them in this language.

    A honeypot card counts as if it had been taken from the pool like a production item
    (which it replaces): otherwise its "left" would be one above the production card's and
    give it away."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    qualified = language.pk in qualified_language_ids(evaluator=evaluator, project=project)
    with connection.cursor() as cursor:
        cursor.execute(
            # One past the cap tells "more" from "exactly the cap"; none unless qualified.
            sql.PROGRESS.format(cap=LEFT_COUNT_CAP + 1 if qualified else 0),
            {
                "evaluator": evaluator.pk,
                "project": project.pk,
                "since": connection.ops.adapt_datetimefield_value(today),
                "language": language.pk,
            },
        )
        done, left = cursor.fetchone()
    more = left > LEFT_COUNT_CAP
    if more:
        left = LEFT_COUNT_CAP
    if (
        showing is not None
        and showing.kind == AssignmentKind.HONEYPOT
        and showing.status == AssignmentStatus.LEASED
    ):
        left = max(left - 1, 0) if not more else left
    return Progress(done_today=done, left=left, more=more)


def assignment_current(*, evaluator: User, project: Project) -> Assignment | None:
    """The evaluator's live lease in this project, if any (a reload resumes it)."""
    return (
        Assignment.objects.select_related("item__language", "item__project")
        .filter(
            evaluator=evaluator,
            project=project,
            status=AssignmentStatus.LEASED,
            kind__in=QUEUE_KINDS,
            lease_expires_at__gt=timezone.now(),
        )
        .order_by("leased_at")
        .first()
    )


# Ids a primary key can hold: a larger one from a URL is no assignment (SQLite would fail
# to bind it rather than find nothing).
_MAX_ID = 2**63 - 1


def assignment_with_item(assignment_id: int) -> Assignment | None:
    """The assignment with its item, the item's language and project (one query), or None."""
    if not 0 < assignment_id <= _MAX_ID:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            sql.assignment_with_item_sql(),
            [assignment_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    assignment, at = from_row(Assignment, row, 0)
    item, at = from_row(Item, row, at)
    item.language, at = from_row(Language, row, at)
    item.project = from_row(Project, row, at)[0]
    assignment.item = item
    if assignment.project_id == item.project_id:
        assignment.project = item.project
    return assignment


def assignment_for_evaluator(*, evaluator: User, assignment_id: int) -> Assignment:
    """Fetch an assignment that belongs to this evaluator, with its item, the item's language
    and project (one query); anything else, a missing one included, is refused."""
    assignment = assignment_with_item(assignment_id)
    if assignment is None or assignment.evaluator_id != evaluator.pk:
        raise PermissionDenied(_("This assignment is not yours."))
    return assignment


def judgments_of_evaluator(
    *, evaluator: User, project: Project | None = None
) -> QuerySet[Judgment]:
    """The evaluator's own current judgments, newest first ("My judgments")."""
    qs = Judgment.objects.filter(
        evaluator=evaluator,
        is_current=True,
        kind__in=[AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT],
    )
    if project is not None:
        qs = qs.filter(item__project=project)
    return qs.select_related("item__language", "item__project").order_by("-created_at", "-id")


def judgment_history(*, judgment: Judgment) -> QuerySet[Judgment]:
    """Every revision of the same assignment, oldest first."""
    if judgment.assignment_id is None:  # a historical judgment has no revisions
        return Judgment.objects.filter(pk=judgment.pk)
    return Judgment.objects.filter(assignment_id=judgment.assignment_id).order_by("revision")

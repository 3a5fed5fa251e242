"""The lead's item browser: filter, search and page through a project's items; one item
with its judgments (by pseudonym) and its history. Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from annotation.models import (
    Assignment,
    AuditEvent,
    Item,
    ItemSource,
    ItemStatus,
    Judgment,
    Project,
    Selection,
)

PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
MAX_SEARCH_CHARS = 200
# Flags a lead filters by: a failed language check, gold items, end users' reports.
FLAGS = ("language", "gold", "report")


@dataclass
class ItemFilter:
    language: str = ""
    status: str = ""
    selection: str = ""
    flag: str = ""
    search: str = ""
    page_size: int = PAGE_SIZE


def item_filter_parse(*, project: Project, data: Any) -> ItemFilter:
    """The browser's query string, checked: an unknown value is refused with what to use."""
    parsed = ItemFilter(
        language=data.get("language", "").strip(),
        status=data.get("status", "").strip(),
        selection=data.get("selection", "").strip(),
        flag=data.get("flag", "").strip(),
        search=data.get("q", "").strip(),
    )
    if parsed.language and not project.languages.filter(tag=parsed.language).exists():
        raise ValidationError(
            _("%(tag)s is not a language of %(project)s.")
            % {"tag": parsed.language, "project": project.name}
        )
    for name, value, allowed in (
        ("status", parsed.status, ItemStatus.values),
        ("selection", parsed.selection, Selection.values),
        ("flag", parsed.flag, FLAGS),
    ):
        if value and value not in allowed:
            raise ValidationError(
                _("%(field)s: choose one of %(values)s.")
                % {"field": name, "values": ", ".join(allowed)}
            )
    if len(parsed.search) > MAX_SEARCH_CHARS or "\x00" in parsed.search:
        raise ValidationError(_("Search: at most %(n)s characters.") % {"n": MAX_SEARCH_CHARS})
    raw = data.get("page_size", "").strip()
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise ValidationError(
                _("page_size: a whole number from 1 to %(max)s.") % {"max": MAX_PAGE_SIZE}
            )
        parsed.page_size = int(raw)
    return parsed


def items_browse(*, project: Project, where: ItemFilter) -> QuerySet[Item]:
    """The project's items that match, newest first."""
    items = Item.objects.filter(project=project).select_related("language")
    if where.language:
        items = items.filter(language__tag=where.language)
    if where.status:
        items = items.filter(status=where.status)
    if where.selection:
        items = items.filter(selection=where.selection)
    if where.flag == "language":
        items = items.filter(language_flagged=True)
    elif where.flag == "gold":
        items = items.filter(is_gold=True)
    elif where.flag == "report":
        items = items.filter(source=ItemSource.USER_REPORT)
    if where.search:
        # A lead's occasional look-up: a scan of the project's texts is acceptable here.
        text = where.search
        items = items.filter(
            Q(external_id__icontains=text)
            | Q(prompt__icontains=text)
            | Q(response__icontains=text)
            | Q(response_a__icontains=text)
            | Q(response_b__icontains=text)
        )
    return items.order_by("-created_at", "-id")


@dataclass
class ItemHistory:
    judgments: list[Judgment]  # every revision, with evaluator profiles loaded
    assignments: list[Assignment]
    events: list[AuditEvent]


def item_history(*, item: Item) -> ItemHistory:
    judgments = list(
        Judgment.objects.filter(item=item)
        .select_related("evaluator__evaluator_profile", "external_rater")
        .order_by("created_at", "id")
    )
    assignments = list(
        Assignment.objects.filter(item=item)
        .select_related("evaluator__evaluator_profile")
        .order_by("leased_at", "id")
    )
    events = list(
        AuditEvent.objects.filter(project_id=item.project_id)
        .filter(Q(object_type="item", object_id=str(item.pk)) | Q(data__item=item.pk))
        .select_related("actor")
        .order_by("created_at", "id")[:100]
    )
    return ItemHistory(judgments=judgments, assignments=assignments, events=events)

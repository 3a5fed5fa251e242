"""Telling the preference export that an item's line may have changed.

Every write that can change an item's exported line — a judgment revised or imported, the
item done, sent to adjudication, adjudicated, made gold — moves the item's
`label_version` in the same transaction. The export marks such items again, so an
incremental pull (`since`) delivers their current line or a retraction
(annotation.exports.marks). Kept apart from the export so the queue's hot path imports
nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F

from annotation.models import Item


def label_versions_bump(*, items: Iterable[int]) -> int:
    """Move the label version of these items (by id)."""
    ids = [int(pk) for pk in items]
    if not ids:
        return 0
    return Item.objects.filter(pk__in=ids).update(label_version=F("label_version") + 1)

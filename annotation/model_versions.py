"""The model registry: which model versions a project's items come from, and when each
was released.

Items keep the model's name as imported (`model`, `model_a`, `model_b`); a ModelVersion
with the same name adds what the import does not say (version label, release date,
notes). Unknown names are registered on import, so the registry is never behind the
items; the lead fills in the rest.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from annotation.audit import audit_record
from annotation.models import Item, ModelVersion, Project
from annotation.types import Actor

MODEL_FIELDS = ("model", "model_a", "model_b")


def model_versions_register(*, project: Project, names: Iterable[str]) -> int:
    """Create a ModelVersion for each name the project does not know yet; returns how many
    were new. Race-safe: concurrent imports may register the same name, and the unique
    constraint with ON CONFLICT DO NOTHING lets exactly one of them create it."""
    wanted = sorted({name for name in names if name})
    if not wanted:
        return 0
    known = set(
        ModelVersion.objects.filter(project=project, name__in=wanted).values_list("name", flat=True)
    )
    missing = [name for name in wanted if name not in known]
    if not missing:
        return 0
    ModelVersion.objects.bulk_create(
        [ModelVersion(project=project, name=name) for name in missing], ignore_conflicts=True
    )
    return len(missing)


def model_versions_sync(*, project: Project) -> int:
    """Register every model name the project's items carry (for items written around the
    import, e.g. by the admin or a test factory)."""
    names: set[str] = set()
    for field in MODEL_FIELDS:
        names.update(
            Item.objects.filter(project=project)
            .exclude(**{field: ""})
            .values_list(field, flat=True)
            .distinct()
        )
    return model_versions_register(project=project, names=names)


def model_versions_for(*, project: Project) -> list[ModelVersion]:
    """The project's versions in release order: dated ones by date, then undated ones by name."""
    return list(
        ModelVersion.objects.filter(project=project).order_by(
            F("released_on").asc(nulls_last=True), "name"
        )
    )


def _clean_date(raw: Any) -> datetime.date | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, datetime.date):
        return raw
    try:
        return datetime.date.fromisoformat(str(raw).strip())
    except ValueError:
        raise ValidationError(
            _("The release date %(value)s is not a date; write it as YYYY-MM-DD.") % {"value": raw}
        ) from None


def model_version_update(
    *, model_version: ModelVersion, version: str, released_on: Any, notes: str, actor: Actor
) -> ModelVersion:
    """The lead's edit of a registered model: version label, release date, notes."""
    version = (version or "").strip()
    if len(version) > 100:
        raise ValidationError(_("The version label is longer than 100 characters."))
    released = _clean_date(released_on)
    with transaction.atomic():
        ModelVersion.objects.filter(pk=model_version.pk).update(
            version=version, released_on=released, notes=(notes or "").strip()
        )
        audit_record(
            verb="model_version.update",
            actor=actor,
            project=model_version.project,
            obj=model_version,
            data={
                "name": model_version.name,
                "version": version,
                "released_on": released.isoformat() if released else None,
            },
        )
    model_version.refresh_from_db()
    return model_version


def model_versions_release(*, project: Project, released_on: datetime.date, notes: str = "") -> int:
    """Date the project's undated models (a data set's systems share its year); returns how
    many changed."""
    return ModelVersion.objects.filter(project=project, released_on__isnull=True).update(
        released_on=released_on, notes=notes
    )

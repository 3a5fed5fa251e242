from __future__ import annotations

from typing import Any

from django.db import models

from annotation.models import ApiToken, AuditEvent, Project


def audit_record(
    *,
    verb: str,
    actor: Any = None,
    token: ApiToken | None = None,
    project: Project | None = None,
    obj: models.Model | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record who did what. Every lead action and every token write goes through here."""
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        token=token,
        project=project,
        verb=verb,
        object_type=(obj._meta.model_name or "") if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        data=data or {},
    )

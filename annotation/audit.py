from __future__ import annotations

from typing import Any, cast

from django.db import models

from annotation.models import ApiToken, AuditEvent, Project
from annotation.types import Actor, User


def actor_user(actor: Actor) -> User | None:
    """The user to record as having acted: a signed-in user, else None (an anonymous
    visitor; a token's request, a command and the system pass None)."""
    return cast(User, actor) if getattr(actor, "is_authenticated", False) else None


# The event an active-learning round leaves when it queues its items: the progress report
# reads the latest one to show each language before and after the round.
AL_ROUND_RUN = "al_round.run"


def audit_record(
    *,
    verb: str,
    actor: Actor = None,
    token: ApiToken | None = None,
    project: Project | None = None,
    obj: models.Model | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record who did what. Every lead action and every token write goes through here."""
    return AuditEvent.objects.create(
        actor=actor_user(actor),
        token=token,
        project=project,
        verb=verb,
        object_type=(obj._meta.model_name or "") if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        data=data or {},
    )


def _client(request: Any) -> dict[str, str]:
    if request is None:
        return {}
    return {
        "ip": request.META.get("REMOTE_ADDR", ""),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200],
    }


def login_succeeded(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    """Connected to `user_logged_in` (AnnotationConfig.ready): who logged in, from where."""
    audit_record(
        verb="login.success", actor=user, data={"username": user.get_username(), **_client(request)}
    )


def login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    """Connected to `user_login_failed`: the username tried (never the password), from where."""
    username = str(credentials.get("username", ""))[:150]
    audit_record(verb="login.failed", data={"username": username, **_client(request)})

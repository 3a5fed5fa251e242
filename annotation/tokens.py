"""API tokens: scoped, stored hashed, shown once, revocable.

A token of the scopes import, export and read belongs to one project. A token of the
scope `projects` belongs to none: it may only create projects, it is made by an operator
(`create_token --scope projects --user NAME`, never on a lead's token page), and it acts
for that user, who leads every project the token creates.

A token is `pty_` + 43 URL-safe characters (256 bits from `secrets`). Only its SHA-256
is stored: a leaked database does not leak working tokens, and because the secret is
high-entropy a fast hash is enough (a slow password hash would only slow every request).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import F, QuerySet
from django.utils import timezone

from annotation.audit import actor_user, audit_record
from annotation.models import ApiToken, Project, TokenScope
from annotation.types import Actor

TOKEN_PREFIX = "pty_"
# last_used_at is written at most this often per token, so a busy pipeline does not turn
# every read into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


MAX_LIFETIME = timedelta(days=3650)


class TokenExpired(Exception):
    def __init__(self, token: ApiToken) -> None:
        super().__init__(f"token {token.prefix}… expired at {token.expires_at:%Y-%m-%d %H:%M} UTC")
        self.token = token


def lifetime_parse(text: str) -> timedelta:
    """'30d', '12h', '90' (days) → a timedelta; ValidationError otherwise."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*([dh]?)\s*", text or "")
    if not match:
        raise ValidationError(
            f"{text!r} is not a lifetime; write days as 30d (or 30) or hours as 12h"
        )
    number, unit = int(match.group(1)), match.group(2) or "d"
    return timedelta(hours=number) if unit == "h" else timedelta(days=number)


def api_token_create(
    *,
    project: Project | None,
    scope: str,
    name: str = "",
    actor: Actor = None,
    expires_in: timedelta | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns (token row, the secret). The secret is never stored or shown again.

    A `projects` token takes no project and needs `actor`: the active user it acts for
    (the lead of the projects it creates). With `expires_in` the token is refused from then on."""
    if expires_in is not None and not timedelta(hours=1) <= expires_in <= MAX_LIFETIME:
        raise ValidationError("a token lives between 1 hour and 3650 days")
    if scope not in TokenScope.values:
        raise ValidationError(f"unknown scope {scope!r}; use one of {', '.join(TokenScope.values)}")
    if scope == TokenScope.PROJECTS:
        if project is not None:
            raise ValidationError(
                "a token of the scope 'projects' belongs to no project; leave the project out"
            )
        user = actor_user(actor)
        if user is None or not user.is_active:
            raise ValidationError(
                "a token of the scope 'projects' needs the active user it acts for "
                "(who will lead the projects it creates)"
            )
    elif project is None:
        raise ValidationError(f"a token of the scope {scope!r} belongs to a project; name it")
    name = (name or "").strip()
    if len(name) > 100:
        raise ValidationError("a token name is at most 100 characters")
    if "\x00" in name:
        raise ValidationError("a token name cannot contain a NUL character")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        project=project,
        name=name,
        scope=scope,
        prefix=raw[:12],
        key_hash=token_hash(raw),
        created_by=actor_user(actor),
        expires_at=timezone.now() + expires_in if expires_in is not None else None,
    )
    audit_record(
        verb="token.create",
        actor=actor,
        project=project,
        obj=token,
        data={
            "scope": scope,
            "name": name,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, raw


def api_token_revoke(*, token: ApiToken, actor: Actor = None) -> ApiToken:
    """Revoke a token at once; revoking twice is a no-op."""
    if token.revoked_at is None:
        now = timezone.now()
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
        token.revoked_at = now
        audit_record(
            verb="token.revoke",
            actor=actor,
            project=token.project,
            obj=token,
            data={"scope": token.scope},
        )
    return token


def api_token_authenticate(*, raw: str) -> ApiToken | None:
    """The live token for this secret, or None (unknown or revoked); TokenExpired when it
    has expired (the caller says so). Touches last_used_at."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.select_related("project")
        .filter(key_hash=token_hash(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None:
        return None
    if token.is_expired:
        raise TokenExpired(token)
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_tokens_of_project(*, project: Project) -> QuerySet[ApiToken]:
    """The project's tokens, live ones first, newest first (the lead's token page)."""
    return (
        ApiToken.objects.filter(project=project)
        .select_related("created_by")
        .order_by(F("revoked_at").asc(nulls_first=True), "-created_at")
    )

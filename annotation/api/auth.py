"""Authentication for pipelines: `Authorization: Bearer <token>`.

Browsers use Django's session (DRF's SessionAuthentication, which enforces CSRF). A
pipeline sends a token (per project, or a `projects` token that only creates projects);
the request then carries a `TokenUser` as `request.user` and the ApiToken as
`request.auth`. A TokenUser is never a Django user: services that record an actor get
`api_actor(request)`, which is None for tokens, and the token itself goes to the audit log.
"""

from __future__ import annotations

from typing import Any, cast

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from annotation.models import ApiToken
from annotation.tokens import TokenExpired, api_token_authenticate
from annotation.types import Actor, User


class TokenUser:
    """The principal of a token request: authenticated, but no Django user and no roles."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False
    is_staff = False
    pk = None
    id = None

    def __init__(self, token: ApiToken) -> None:
        self.token = token

    def __str__(self) -> str:
        return f"token {self.token.prefix}…"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[TokenUser, ApiToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                _("Send the header as: Authorization: Bearer <token>.")
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                _("The token contains characters a token never has.")
            ) from None
        try:
            token = api_token_authenticate(raw=raw)
        except TokenExpired as exc:
            expired_at = exc.token.expires_at
            raise exceptions.AuthenticationFailed(
                f"This token expired at {expired_at:%Y-%m-%d %H:%M} UTC; ask a project lead for a new one."
            ) from None
        if token is None:
            raise exceptions.AuthenticationFailed(_("Unknown or revoked token."))
        return TokenUser(token), token

    def authenticate_header(self, request: Request) -> str:
        # Makes unauthenticated requests 401 (with this challenge) instead of 403.
        return 'Bearer realm="parity"'


def request_token(request: Request) -> ApiToken | None:
    """The token a request authenticated with, or None for a session."""
    return request.auth if isinstance(request.auth, ApiToken) else None


def session_user(request: Request) -> User:
    """The signed-in user of a request that a permission let through without a token."""
    return cast(User, request.user)


def api_actor(request: Request) -> Actor:
    """The Django user for services that record an actor; None when a token acts."""
    return None if request_token(request) is not None else cast(Actor, request.user)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "annotation.api.auth.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A per-project API token with the scope import, export or read "
            "(`python manage.py create_token --project SLUG --scope export`), or a token of the scope "
            "projects, which belongs to no project and may only create projects "
            "(`python manage.py create_token --scope projects --user NAME`, operators only).",
        }

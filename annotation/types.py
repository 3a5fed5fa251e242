"""Types the apps share in signatures.

`User` is the user model (settings.AUTH_USER_MODEL is Django's own): evaluators, leads and
adjudicators are all users. `RequestUser` is whoever a request carries: a signed-in user
or an anonymous one. `Actor` is who did something, as services record it in the audit log
and in "created by" fields: a user, or None for a token, a command or the system; an
anonymous user counts as none (`annotation.audit.actor_user`). `AuthenticatedRequest` is
the request a login_required view receives (its user is signed in) with django-htmx's
details."""

from __future__ import annotations

from typing import TypeAlias

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as _User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

User: TypeAlias = _User
RequestUser: TypeAlias = _User | AnonymousUser
Actor: TypeAlias = _User | AnonymousUser | None


class AuthenticatedRequest(HttpRequest):
    user: User
    htmx: HtmxDetails

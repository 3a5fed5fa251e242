"""Types the apps share in signatures.

`User` is the user model (settings.AUTH_USER_MODEL is Django's own): evaluators, leads and
adjudicators are all users. `AuthenticatedRequest` is the request a login_required view
receives (its user is signed in) with django-htmx's details."""

from __future__ import annotations

from typing import TypeAlias

from django.contrib.auth.models import User as _User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

User: TypeAlias = _User


class AuthenticatedRequest(HttpRequest):
    user: User
    htmx: HtmxDetails

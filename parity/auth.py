"""Django's ModelBackend, with the user that every request loads read in one hand-written
query instead of an ORM `.get()` compiled anew each time (see annotation/rows.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import backends, get_user_model
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse

from annotation.rows import fetch_one


class ModelBackend(backends.ModelBackend):
    def get_user(self, user_id: Any) -> Any:
        model = get_user_model()
        pk = model._meta.pk
        try:
            value = pk.get_prep_value(pk.to_python(user_id))
        except (TypeError, ValueError, ValidationError):
            return None
        user = fetch_one(model, f"t.{connection.ops.quote_name(pk.column)} = %s", [value])
        return user if user is not None and self.user_can_authenticate(user) else None


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' check on every login form. A call without a request (the shell, the
    test client's login()) is not a login form and is left to the next backend."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def mail_configured() -> bool:
    return bool(settings.EMAIL_HOST)


def password_reset_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Password reset sends a mail: without mail settings it is not offered at all (404),
    rather than claiming a mail was sent."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not mail_configured():
            raise Http404("Password reset needs mail settings (EMAIL_HOST).")
        return view(request, *args, **kwargs)

    return wrapped


class LoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "password_reset": mail_configured()}

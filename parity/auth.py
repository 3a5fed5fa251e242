"""Django's ModelBackend, with the user that every request loads read in one hand-written
query instead of an ORM `.get()` compiled anew each time (see annotation/rows.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import backends, get_user_model
from django.core.exceptions import ValidationError
from django.db import connection

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

"""Database sessions, read with one hand-written query (SESSION_ENGINE = "parity.sessions").

Django's database session store, except for the read every request makes: the ORM
compiles `Session.objects.get(...)` anew each time, which costs more CPU than the query
itself (see annotation/rows.py). Same table, same expiry rule, same behaviour when the key is
unknown or expired (the session starts empty under a new key).
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import connection
from django.utils import timezone

from annotation.rows import fetch_one


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> AbstractBaseSession | None:
        session = None
        if self.session_key:
            now = connection.ops.adapt_datetimefield_value(timezone.now())
            session = fetch_one(
                self.model, "t.session_key = %s AND t.expire_date > %s", [self.session_key, now]
            )
        if session is None:
            self._session_key = None
        return session

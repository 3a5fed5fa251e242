"""Rate limits: per token for pipelines, per user for sessions.

Keyed by the token's id (not the client address), so one busy pipeline cannot starve
another behind the same NAT, and revoking a token ends its budget too. Counters live in
Django's cache, which production settings always share across processes: Redis with
CACHE_URL, the database cache otherwise (the memory cache only with DEBUG).
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from annotation.api.auth import request_token


class TokenRateThrottle(SimpleRateThrottle):
    scope = "token"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = request_token(request)
        if token is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": token.pk}


class SessionUserRateThrottle(SimpleRateThrottle):
    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request_token(request) is not None or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}

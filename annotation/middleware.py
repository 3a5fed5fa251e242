"""Request-wide guards: a NUL byte in a query parameter is a 400, a database that went away
is a retryable 503 (JSON in the API's error shape under /api/), and every request carries
an id that its log lines and its response share (X-Request-ID)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

logger = logging.getLogger("parity.request")

DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def _error_response(
    request: HttpRequest, *, status: int, message: str, page_message: str
) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"errors": [{"message": message}]}, status=status)
    html = render_to_string("error.html", {"status": status, "message": page_message}, request=None)
    return HttpResponse(html, status=status)


def database_unavailable(request: HttpRequest) -> HttpResponse:
    # Pipelines read the API's message; people read the page's, in their language.
    response = _error_response(
        request,
        status=503,
        message="The database is unavailable; retry shortly.",
        page_message=_(
            "The database is briefly unavailable. Nothing was lost; please try again in a moment."
        ),
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class RequestGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # PostgreSQL cannot store or compare text with NUL, and no filter needs one.
        if "\x00" in request.META.get("QUERY_STRING", "") or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            return _error_response(
                request,
                status=400,
                message="A query parameter contains a NUL byte; remove it.",
                page_message=_("The address contains a character that is not allowed."),
            )
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_ERRORS):
            logger.warning("database unavailable: %s: %s", type(exception).__name__, exception)
            return database_unavailable(request)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """The site's 500 handler: a database that went away (raised outside a view, e.g. while
    loading the session) is a 503 too; anything else under /api/ keeps the JSON shape."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_ERRORS):
        return database_unavailable(request)
    return _error_response(
        request,
        status=500,
        message="Internal server error; it has been logged.",
        page_message=_("Something went wrong on our side; it has been logged."),
    )

"""One error shape for every 4xx of the API: `{"errors": [{"line"?, "field"?, "message"}]}`.

DRF's exceptions, Django's ValidationError / PermissionDenied / Http404, an import's
bad lines, an oversized body and unknown URLs under /api/v1/ all end up here, so a
pipeline parses one shape whatever went wrong.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.defaults import page_not_found
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from annotation.imports import ImportRejected


class ApiError(exceptions.APIException):
    """An error with a ready list of error entries (line/field/message) and a status."""

    def __init__(self, errors: list[dict[str, Any]], *, status_code: int = 400) -> None:
        self.errors = errors
        self.status_code = status_code
        self.truncated = False
        super().__init__(detail=errors[0]["message"] if errors else "")


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; retry shortly."
    default_code = "database_unavailable"

    def __init__(self) -> None:
        super().__init__()
        self.wait = 5  # DRF sends it as Retry-After


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def error(message: str, *, field: str | None = None, line: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if line is not None:
        out["line"] = line
    if field:
        out["field"] = field
    out["message"] = str(message)
    return out


def errors_from_detail(detail: Any, field: str | None = None) -> list[dict[str, Any]]:
    """Flatten DRF's nested error detail ({field: [msg]}, [msg], msg) into error entries."""
    if isinstance(detail, dict):
        out: list[dict[str, Any]] = []
        for key, value in detail.items():
            name = None if key in ("detail", "non_field_errors") else str(key)
            if field and name:
                name = f"{field}.{name}"
            out.extend(errors_from_detail(value, name or field))
        return out
    if isinstance(detail, list):
        return [entry for value in detail for entry in errors_from_detail(value, field)]
    return [error(str(detail), field=field)]


def errors_from_django(exc: DjangoValidationError) -> list[dict[str, Any]]:
    if hasattr(exc, "error_dict"):
        return [
            error(message, field=None if name == "__all__" else name)
            for name, messages in exc.message_dict.items()
            for message in messages
        ]
    return [error(message) for message in exc.messages]


def import_errors(exc: ImportRejected) -> tuple[int, dict[str, Any]]:
    """Status and body for a refused import: 409 when every problem is a conflict."""
    body: dict[str, Any] = {"errors": [e.as_dict() for e in exc.errors]}
    if exc.truncated:
        body["truncated"] = True
    return (status.HTTP_409_CONFLICT if exc.is_conflict else status.HTTP_400_BAD_REQUEST), body


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ImportRejected):
        code, body = import_errors(exc)
        exc = ApiError(body["errors"], status_code=code)
        exc.truncated = bool(body.get("truncated"))
    if isinstance(exc, DjangoValidationError):
        exc = ApiError(errors_from_django(exc))
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(_("The request body is larger than this endpoint accepts."))
    if isinstance(exc, DjangoPermissionDenied) and str(exc):
        exc = exceptions.PermissionDenied(str(exc))
    if isinstance(exc, RecursionError):
        exc = exceptions.ParseError("The JSON is nested too deeply.")
    if isinstance(exc, OverflowError):
        exc = exceptions.ParseError("A number is too large.")
    if isinstance(exc, OperationalError | InterfaceError):
        # The connection went away (a restart, a failover, pg_terminate_backend): the next
        # request opens a new one, so the caller may simply retry.
        exc = DatabaseUnavailable()
    # Imported here: rest_framework.views reads the API settings, which name this module's neighbours.
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None:
        return None
    request = context.get("request")
    if request is not None:
        # Errors are JSON even where the success would be Parquet, CSV or Markdown.
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = "application/json"
    if isinstance(exc, ApiError):
        response.data = {"errors": exc.errors}
        if exc.truncated:
            response.data["truncated"] = True
    else:
        response.data = {"errors": errors_from_detail(response.data)}
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The site's 404 handler: unknown paths under /api/ answer in the error shape, the
    rest get Django's page (with DEBUG on, Django shows its debug page instead)."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"errors": [error(_("No API endpoint at %(path)s.") % {"path": request.path})]},
            status=404,
        )
    return page_not_found(request, exception)

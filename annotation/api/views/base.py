"""What the API views share: the error responses of the schema, input through a small
serializer, and the base of every view under /projects/{slug}/.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from annotation.api import serializers as s
from annotation.api.errors import ApiError, error
from annotation.api.permissions import ProjectAccess, view_project
from annotation.models import Project

ERROR_DESCRIPTIONS = {
    400: "Bad input; nothing was changed.",
    401: "No or unknown credentials.",
    403: "Not allowed (token scope or role), with the reason.",
    404: "No such project or object (or not visible to the caller).",
    406: "The Accept header asks for a format this endpoint does not give.",
    409: "Conflicts with stored data (e.g. changed content of a judged item).",
    413: "The body is larger than the endpoint accepts.",
    415: "Unsupported Content-Type.",
    429: "Rate limit of the token or user reached; retry after Retry-After seconds.",
}


def error_responses(*extra: int) -> dict[tuple[int, str], OpenApiResponse]:
    """The error responses of an endpoint, all in the one error shape, always JSON (the
    exception handler renders them so whatever the endpoint's own formats)."""
    return {
        (code, "application/json"): OpenApiResponse(
            s.ErrorSerializer, description=ERROR_DESCRIPTIONS[code]
        )
        for code in (400, 401, 403, 404, 406, 429, *extra)
    }


def query_data(
    serializer_class: type[s.serializers.Serializer], request: Request
) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def body_data(serializer_class: type[s.serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ProjectAPIView(APIView):
    """A view under /projects/{slug}/; `access` names who may call each method."""

    access: dict[str, ProjectAccess] = {}

    def get_permissions(self) -> list[Any]:
        rule = self.access.get(self.request.method or "", self.access.get("*"))
        return [rule] if rule is not None else [IsAuthenticated()]

    def project(self) -> Project:
        return view_project(self.request, self)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            # DRF answers an unknown ?format= with 404; it is a bad parameter.
            formats = ", ".join(r.format for r in self.get_renderers())
            raise ApiError(
                [error(_("must be one of %(formats)s") % {"formats": formats}, field="format")]
            ) from None

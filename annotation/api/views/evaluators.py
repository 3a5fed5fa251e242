"""Evaluators: claim the next item, submit a judgment."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import serializers as s
from annotation.api.auth import session_user
from annotation.api.errors import ApiError, error
from annotation.api.permissions import IsSessionUser, view_project
from annotation.api.views.base import body_data, error_responses
from annotation.languages import language_tag_normalize
from annotation.models import Assignment
from annotation.projects import project_language
from annotation.queue import assignment_with_item, item_claim_next, judgment_submit


def _assignment_out(assignment: Assignment) -> dict[str, Any]:
    item = assignment.item
    # Model names and the assignment kind stay hidden: evaluators judge blind, and a
    # honeypot must look like any other item.
    return {
        "id": assignment.pk,
        "lease_expires_at": assignment.lease_expires_at,
        "item": {
            "id": item.pk,
            "external_id": item.external_id,
            "language": item.language.tag,
            "direction": item.language.direction,
            "prompt": item.prompt,
            "response": item.response,
            "response_a": item.response_a,
            "response_b": item.response_b,
        },
    }


class QueueClaimView(APIView):
    permission_classes = [IsSessionUser]

    @extend_schema(
        summary="Claim the next item",
        description="For a signed-in evaluator: leases the next item in a language they are qualified "
        "for (or returns their live lease). 204 when nothing waits; 403 with the reason when they "
        "are not qualified.",
        request=s.ClaimInSerializer,
        responses={
            200: s.AssignmentOutSerializer,
            204: OpenApiResponse(description="Nothing waits."),
            **error_responses(),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        project = view_project(request, self)
        data = body_data(s.ClaimInSerializer, request)
        language = None
        if data.get("language"):
            try:
                tag = language_tag_normalize(data["language"])
            except ValidationError as exc:
                raise ApiError([error(exc.messages[0], field="language")]) from None
            language = project_language(project=project, tag=tag)
            if language is None:
                raise ApiError(
                    [
                        error(
                            _("%(tag)r is not a language of this project.") % {"tag": tag},
                            field="language",
                        )
                    ]
                )
        assignment = item_claim_next(
            evaluator=session_user(request), project=project, language=language
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_assignment_out(assignment))


_FIELD_PREFIX = re.compile(r"^([a-z_]+): (.+)$", re.DOTALL)


class JudgmentSubmitView(APIView):
    permission_classes = [IsSessionUser]

    @extend_schema(
        summary="Submit a judgment",
        description='The value has the project\'s shape: rating {"score"}, pairwise {"choice", '
        '"strength"}, labels {"labels"}; any may add issues and comment.',
        request=s.JudgmentInSerializer,
        responses={201: s.JudgmentOutSerializer, **error_responses()},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = body_data(s.JudgmentInSerializer, request)
        assignment = assignment_with_item(assignment_id)
        if assignment is None:
            raise ApiError(
                [error(_("No assignment %(id)s.") % {"id": assignment_id})], status_code=404
            )
        evaluator = session_user(request)
        if assignment.evaluator_id != evaluator.pk:
            raise PermissionDenied(_("This assignment is not yours."))
        try:
            judgment = judgment_submit(
                assignment=assignment,
                evaluator=evaluator,
                value=data["value"],
                seconds=data.get("seconds"),
            )
        except ValidationError as exc:
            entries = []
            for message in exc.messages:
                match = _FIELD_PREFIX.match(message)
                entries.append(
                    error(match.group(2), field=f"value.{match.group(1)}")
                    if match
                    else error(message)
                )
            raise ApiError(entries) from None
        return Response(
            {
                "id": judgment.pk,
                "assignment": assignment.pk,
                "item": judgment.item_id,
                "value": judgment.value,
                "revision": judgment.revision,
                "too_fast": judgment.too_fast,
                "created_at": judgment.created_at,
            },
            status=status.HTTP_201_CREATED,
        )

"""POST /api/v1/projects/{slug}/al-rounds/ — run an active-learning round;
GET  /api/v1/projects/{slug}/al-rounds/{id}/ — a round, with its allocation and selected items;
GET  /api/v1/projects/{slug}/al/rounds/ — the project's rounds, newest first.

Authentication, scopes and the one error shape are the API's (annotation/api/): a
pipeline token with the `import` scope, or a signed-in lead of the project.

With a broker configured the round runs on a worker: the answer is 202 with the waiting
round and its URL, which shows the allocation and selected items once it is done. Without
a broker the round runs inline and the answer is 201 with everything.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from active_learning.models import RoundStatus, SelectionRound
from active_learning.rounds import (
    round_preview,
    round_request_clean,
    round_selected,
    rounds_for_project,
)
from active_learning.tasks import round_launch
from annotation.api.auth import api_actor, request_token
from annotation.api.errors import ApiError, error
from annotation.api.permissions import ProjectAccess, view_project
from annotation.api.serializers import ErrorSerializer

BODY_FIELDS = ("budget", "strategy", "seed", "parameters", "preview")


def round_payload(selection_round: SelectionRound, *, with_items: bool = True) -> dict[str, Any]:
    """The JSON form of a round (API answers and `al_round --json`)."""
    version = selection_round.model_version
    out: dict[str, Any] = {
        "id": selection_round.pk,
        "project": selection_round.project.slug,
        "status": selection_round.status,
        "strategy": selection_round.strategy,
        "budget": selection_round.budget,
        "seed": selection_round.seed,
        "parameters": selection_round.parameters,
        "allocation": selection_round.allocation,
        "model_version": None
        if version is None
        else {
            "number": version.number,
            "n_labels": version.n_labels,
            "accuracy": version.accuracy,
            "features": version.features,
        },
        "summary": selection_round.summary,
        "error": selection_round.error or None,
        "created_at": selection_round.created_at.isoformat(),
        "finished_at": selection_round.finished_at.isoformat()
        if selection_round.finished_at
        else None,
    }
    if with_items:
        rows = round_selected(selection_round=selection_round)
        out["selected_ids"] = [r.item_id for r in rows]
        out["selected"] = [
            {
                "id": r.item_id,
                "external_id": r.item.external_id,
                "language": r.language.tag,
                "selection": r.selection,
                "rank": r.rank,
                "score": r.score,
                "components": r.components,
            }
            for r in rows
        ]
    return out


class _ProjectView(APIView):
    access: dict[str, ProjectAccess] = {}

    def get_permissions(self) -> list[Any]:
        rule = self.access.get(self.request.method or "")
        return [rule] if rule is not None else [IsAuthenticated()]


class RoundsView(_ProjectView):
    access = {"POST": ProjectAccess(scopes=("import",), session="lead")}

    @extend_schema(
        summary="Run an active-learning round",
        description=(
            "Split `budget` across the project's languages (`strategy`: uniform, proportional or parity), "
            "score the pool, pick a diverse batch per language and queue it — all or nothing. "
            "`preview: true` returns the allocation only. 201 with the round when it ran inline; 202 with "
            "the waiting round when a worker runs it (GET its `url` for the result)."
        ),
        request=OpenApiTypes.OBJECT,
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT, description="Preview: the allocation, nothing queued."
            ),
            201: OpenApiResponse(
                OpenApiTypes.OBJECT, description="The round ran: allocation and selected ids."
            ),
            202: OpenApiResponse(OpenApiTypes.OBJECT, description="The round waits for a worker."),
            **{code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 404)},
        },
        examples=[
            OpenApiExample(
                "parity round",
                value={"budget": 500, "strategy": "parity", "seed": 7},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        project = view_project(request, self)
        body = request.data
        if not isinstance(body, dict):
            raise ApiError([error(_("The body must be a JSON object with budget and strategy."))])
        unknown = sorted(set(body) - set(BODY_FIELDS))
        if unknown:
            raise ApiError(
                [
                    error(
                        _("is not a field of this endpoint (fields: %(fields)s)")
                        % {"fields": ", ".join(BODY_FIELDS)},
                        field=unknown[0],
                    )
                ]
            )
        if "budget" not in body:
            raise ApiError([error(_("is required"), field="budget")])
        preview = body.get("preview", False)
        if not isinstance(preview, bool):
            raise ApiError([error(_("must be true or false"), field="preview")])
        # ValidationError → 400 in the API's error shape, nothing recorded.
        round_request = round_request_clean(
            project=project,
            budget=body.get("budget"),
            strategy=body.get("strategy", "parity"),
            seed=body.get("seed", 0),
            parameters=body.get("parameters"),
        )
        if preview:
            allocation = round_preview(request=round_request)
            return Response(
                {
                    "preview": True,
                    **round_request.as_record(),
                    "allocation": {a.tag: a.as_dict() for a in allocation},
                }
            )
        selection_round = round_launch(
            request=round_request, actor=api_actor(request), token=request_token(request)
        )
        payload = round_payload(
            selection_round, with_items=selection_round.status == RoundStatus.DONE
        )
        payload["url"] = request.build_absolute_uri(
            f"/api/v1/projects/{project.slug}/al-rounds/{selection_round.pk}/"
        )
        code = (
            status.HTTP_201_CREATED
            if selection_round.status == RoundStatus.DONE
            else status.HTTP_202_ACCEPTED
        )
        return Response(payload, status=code)


class RoundDetailView(_ProjectView):
    access = {"GET": ProjectAccess(scopes=("import", "read", "export"), session="lead")}

    @extend_schema(
        operation_id="projects_al_round_retrieve",
        summary="An active-learning round",
        description="Status, allocation, model version and, once done, the selected items with their score components.",
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT),
            **{code: OpenApiResponse(ErrorSerializer) for code in (401, 403, 404)},
        },
    )
    def get(self, request: Request, slug: str, round_id: int) -> Response:
        project = view_project(request, self)
        selection_round = (
            SelectionRound.objects.select_related("project", "model_version")
            .defer("model_version__blob")
            .filter(project=project, pk=round_id)
            .first()
        )
        if selection_round is None:
            raise ApiError(
                [error(_("No round %(id)s in project %(slug)s.") % {"id": round_id, "slug": slug})],
                status_code=404,
            )
        return Response(
            round_payload(selection_round, with_items=selection_round.status == RoundStatus.DONE)
        )


ROUND_LIST_LIMIT = 100
ROUND_LIST_MAX = 1000


class RoundListView(_ProjectView):
    access = {"GET": ProjectAccess(scopes=("read",), session="lead")}

    @extend_schema(
        operation_id="projects_al_rounds_list",
        summary="The project's active-learning rounds",
        description=(
            "Newest first: status, strategy, budget, seed, parameters, allocation, model version and summary "
            "of each round, without its selected items (GET a round's `url` for those). `?status=` keeps one "
            "status (queued, running, done, failed); `?limit=` (default 100, at most 1000)."
        ),
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT),
            **{code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 404)},
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        project = view_project(request, self)
        rounds = rounds_for_project(project=project).select_related("project")
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in RoundStatus.values:
                raise ApiError(
                    [
                        error(
                            f"status must be one of {', '.join(RoundStatus.values)}", field="status"
                        )
                    ]
                )
            rounds = rounds.filter(status=wanted)
        raw_limit = request.query_params.get("limit", str(ROUND_LIST_LIMIT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= ROUND_LIST_MAX:
            raise ApiError(
                [error(f"limit must be a whole number from 1 to {ROUND_LIST_MAX}", field="limit")]
            )
        total = rounds.count()
        out = []
        for selection_round in rounds.order_by("-created_at", "-id")[: int(raw_limit)]:
            payload = round_payload(selection_round, with_items=False)
            payload["url"] = request.build_absolute_uri(
                f"/api/v1/projects/{project.slug}/al-rounds/{selection_round.pk}/"
            )
            out.append(payload)
        return Response({"project": project.slug, "count": total, "rounds": out})

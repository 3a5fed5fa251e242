"""Projects: list the caller's projects, create one."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import serializers as s
from annotation.api.auth import api_actor, request_token, session_user
from annotation.api.errors import ApiError, error
from annotation.api.views.base import body_data, error_responses
from annotation.models import ApiToken, AuditEvent, Project, TokenScope
from annotation.projects import ProjectSlugTaken, project_create, projects_for_user
from annotation.types import User


class ProjectListView(APIView):
    @extend_schema(
        summary="List the caller's projects",
        description="A project token sees its own project; a `projects` token the projects it created; "
        "a signed-in user the projects they work or lead.",
        responses={200: s.ProjectOutSerializer(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        token = request_token(request)
        if token is not None and token.scope == TokenScope.PROJECTS:
            projects = Project.objects.filter(
                pk__in=AuditEvent.objects.filter(token=token, verb="project.create").values(
                    "project"
                )
            )
        elif token is not None:
            projects = (
                Project.objects.filter(pk=token.project_id)
                if token.project_id is not None
                else Project.objects.none()
            )
        else:
            projects = projects_for_user(user=session_user(request))
        projects = projects.prefetch_related("languages").order_by("slug")
        return Response(s.ProjectOutSerializer(projects, many=True).data)

    @extend_schema(
        summary="Create a project",
        description="Creates a new project; an existing slug answers 409 and leaves that project as it "
        "is (creating never updates). Who may call: an API token of the scope `projects` (made by an "
        "operator with `manage.py create_token --scope projects --user NAME`; the project is led by "
        "that user), or a signed-in user who is staff, has the add-project permission or leads a "
        "project (the creator becomes its lead). Tokens of a project cannot create projects.",
        request=s.ProjectCreateSerializer,
        responses={201: s.ProjectOutSerializer, **error_responses(409)},
    )
    def post(self, request: Request) -> Response:
        token = request_token(request)
        lead = _creating_lead(request, token)
        data = body_data(s.ProjectCreateSerializer, request)
        options = {
            k: data[k]
            for k in (
                "description",
                "queue_on_import",
                "honeypot_rate",
                "lease_seconds",
                "agreement_threshold",
            )
            if k in data
        }
        try:
            project = project_create(
                slug=data["slug"],
                task_type=data["task_type"],
                languages=data["languages"],
                lead=lead,
                name=data.get("name"),
                schema=data.get("schema"),
                overlap=data.get("overlap"),
                actor=api_actor(request),
                token=token,
                **options,
            )
        except ProjectSlugTaken as exc:
            raise ApiError(
                [
                    error(
                        f"A project with the slug {exc.slug!r} exists; creating never changes an existing project. "
                        "Pick another slug.",
                        field="slug",
                    )
                ],
                status_code=409,
            ) from None
        return Response(s.ProjectOutSerializer(project).data, status=status.HTTP_201_CREATED)


def _creating_lead(request: Request, token: ApiToken | None) -> User:
    """Who will lead a project this request creates: the user a `projects` token acts for,
    or the signed-in user when staff, allowed to add projects or already a lead; anyone
    else is refused with the reason."""
    if token is not None:
        if token.scope != TokenScope.PROJECTS:
            raise ApiError(
                [
                    error(
                        f"This token has the scope {token.scope!r}; creating projects needs a token of the scope "
                        "'projects' (an operator makes one: manage.py create_token --scope projects --user NAME)."
                    )
                ],
                status_code=403,
            )
        lead = token.created_by
        if lead is None or not lead.is_active:
            raise ApiError(
                [
                    error(
                        "The user this token acts for is gone or inactive, so a project it creates would have "
                        "no lead; ask an operator for a new token."
                    )
                ],
                status_code=403,
            )
        return lead
    user = session_user(request)
    if not (user.is_staff or user.has_perm("annotation.add_project") or user.led_projects.exists()):
        raise ApiError(
            [error(_("Only staff and project leads may create projects."))], status_code=403
        )
    return user

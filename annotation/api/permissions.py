"""Who may call what: token scopes for pipelines, project roles for sessions.

Every `/projects/{slug}/…` endpoint declares one `ProjectAccess`:

    permission_classes = [ProjectAccess(scopes=("export",), session="lead")]

- a token works only for its own project (any other project answers 404, so a token
  learns nothing about projects it does not belong to) and only with one of `scopes`;
- a session user must lead the project (`session="lead"`) or work in it
  (`session="member"`); `session=None` closes the endpoint to sessions. A user who has no
  role in the project gets 404, a member without the role 403 with the reason.

The resolved project is cached on the request (`view_project(request, view)`), so the
view does not fetch it twice. `HasTokenScope` and `IsProjectLead` are the same checks as
plain yes/no permissions for composing with `|` and `&`.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from annotation.access import LEAD_ONLY
from annotation.api.auth import request_token, session_user
from annotation.models import Project, Qualification
from annotation.projects import project_by_slug, project_is_lead
from annotation.types import User

SESSION_ROLES = ("lead", "member", None)


def view_project(request: Request, view: Any) -> Project:
    """The project named by the URL's slug (cached on the request), or 404."""
    cached = getattr(request, "_parity_project", None)
    slug = view.kwargs.get("slug")
    if cached is not None and cached.slug == slug:
        return cached
    project = project_by_slug(slug)
    if project is None:
        raise exceptions.NotFound(_("No project %(slug)r.") % {"slug": slug})
    request._parity_project = project  # type: ignore[attr-defined]  # a per-request cache
    return project


def _is_member(*, project: Project, user: User) -> bool:
    if project_is_lead(project=project, user=user):
        return True
    return Qualification.objects.filter(project=project, evaluator=user).exists()


class ProjectAccess(BasePermission):
    """Token scope or session role for a project endpoint; raises with a specific reason."""

    def __init__(self, *, scopes: tuple[str, ...] = (), session: str | None = "lead") -> None:
        if session not in SESSION_ROLES:
            raise ValueError(f"session must be one of {SESSION_ROLES}")
        self.scopes = tuple(scopes)
        self.session = session

    def __call__(self) -> ProjectAccess:
        # DRF instantiates permission_classes; an instance configured here stands for itself.
        return self

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request_token(request)
        if token is None and not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        project = view_project(request, view)
        if token is not None:
            if token.project_id != project.pk:
                raise exceptions.NotFound(
                    _("No project %(slug)r for this token.") % {"slug": project.slug}
                )
            if token.scope not in self.scopes:
                if not self.scopes:
                    raise exceptions.PermissionDenied(
                        _("This endpoint is for signed-in users, not API tokens.")
                    )
                raise exceptions.PermissionDenied(
                    _("This token has the scope %(scope)r; this endpoint needs %(needed)s.")
                    % {"scope": token.scope, "needed": " or ".join(repr(s) for s in self.scopes)}
                )
            return True
        user = session_user(request)
        if project_is_lead(project=project, user=user):
            return True
        if not _is_member(project=project, user=user):
            raise exceptions.NotFound(_("No project %(slug)r.") % {"slug": project.slug})
        if self.session == "member":
            return True
        if self.session is None:
            raise exceptions.PermissionDenied(_("This endpoint takes an API token, not a session."))
        raise exceptions.PermissionDenied(
            _("Only a lead of %(project)s may do this.") % {"project": project.name}
        )


class HasTokenScope(BasePermission):
    """Yes when the request's token belongs to the URL's project and has one of the scopes."""

    message = _("This endpoint needs an API token of this project with the right scope.")

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes

    def __call__(self) -> HasTokenScope:
        return self

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request_token(request)
        if token is None or token.scope not in self.scopes:
            return False
        slug = view.kwargs.get("slug")
        return slug is None or (token.project is not None and token.project.slug == slug)


class IsProjectLead(BasePermission):
    """Yes when a signed-in user (not a token) leads the URL's project."""

    message = LEAD_ONLY

    def has_permission(self, request: Request, view: Any) -> bool:
        if request_token(request) is not None or not request.user.is_authenticated:
            return False
        slug = view.kwargs.get("slug")
        project = Project.objects.filter(slug=slug).first() if isinstance(slug, str) else None
        return project is not None and project_is_lead(project=project, user=request.user)


class IsSessionUser(BasePermission):
    """Yes for a signed-in user; API tokens are refused (evaluator endpoints)."""

    message = _("This endpoint is for signed-in evaluators, not API tokens.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return request_token(request) is None and bool(request.user.is_authenticated)

"""Who may open a project's lead pages, for every app's views: the project named in the
URL or 404, its lead (or a superuser) or 403, with one message (the REST API's
`IsProjectLead` permission uses the same one)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy

from annotation.models import Project
from annotation.projects import project_is_lead

LEAD_ONLY = gettext_lazy("Only a lead of this project may do this.")


def project_for_lead(request: HttpRequest, slug: str) -> Project:
    project = get_object_or_404(Project, slug=slug)
    if not project_is_lead(project=project, user=request.user):
        raise PermissionDenied(LEAD_ONLY)
    return project

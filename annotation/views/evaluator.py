"""Evaluator pages (queue home, item card, my judgments)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.projects import projects_for_user
from annotation.queue import queue_counts


@login_required
def queue_home(request: HttpRequest) -> HttpResponse:
    rows = [
        (project, queue_counts(evaluator=request.user, project=project))
        for project in projects_for_user(user=request.user)
    ]
    return render(request, "annotation/queue_home.html", {"rows": rows})

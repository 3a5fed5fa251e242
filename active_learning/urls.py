"""Lead pages of active learning, and its API endpoints (mounted under /api/v1/ from parity/urls.py)."""

from __future__ import annotations

from django.urls import path

from active_learning import api, views

app_name = "active_learning"

urlpatterns = [
    path("p/<slug:slug>/lead/al/", views.rounds_page, name="rounds"),
    path("p/<slug:slug>/lead/al/preview/", views.round_preview_view, name="preview"),
    path("p/<slug:slug>/lead/al/run/", views.round_run_view, name="run"),
    path("p/<slug:slug>/lead/al/rounds/<int:round_id>/", views.round_detail, name="round"),
]

# Under /api/v1/ (parity/urls.py mounts it before the API's catch-all).
api_urlpatterns = [
    path("projects/<slug:slug>/al-rounds/", api.RoundsView.as_view(), name="al-rounds"),
    path(
        "projects/<slug:slug>/al-rounds/<int:round_id>/",
        api.RoundDetailView.as_view(),
        name="al-round",
    ),
    path("projects/<slug:slug>/al/rounds/", api.RoundListView.as_view(), name="al-round-list"),
]

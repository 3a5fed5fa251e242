"""/api/v1/ — mounted from parity/urls.py. Unknown paths under /api/ get a 404 in the
error shape from parity.urls.handler404 (annotation.api.errors.not_found)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from annotation.api.views import evaluators, exports, items, projects, reports

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path(
        "redoc/",
        SpectacularRedocView.as_view(
            url_name="api:schema", template_name="annotation/api/redoc.html"
        ),
        name="redoc",
    ),
    path("projects/", projects.ProjectListView.as_view(), name="projects"),
    path("projects/<slug:slug>/items/", items.ItemsView.as_view(), name="items"),
    path("projects/<slug:slug>/judgments/", items.JudgmentsImportView.as_view(), name="judgments"),
    path(
        "projects/<slug:slug>/queue/claim/", evaluators.QueueClaimView.as_view(), name="queue-claim"
    ),
    path(
        "assignments/<int:assignment_id>/judgment/",
        evaluators.JudgmentSubmitView.as_view(),
        name="judgment-submit",
    ),
    path("projects/<slug:slug>/agreement/", reports.AgreementView.as_view(), name="agreement"),
    path("projects/<slug:slug>/parity/", reports.ParityView.as_view(), name="parity"),
    path(
        "projects/<slug:slug>/export/preferences/",
        exports.PreferenceExportView.as_view(),
        name="export-preferences",
    ),
    path(
        "projects/<slug:slug>/export/preferences/retractions/",
        exports.PreferenceRetractionsView.as_view(),
        name="export-preference-retractions",
    ),
    path(
        "projects/<slug:slug>/export/judgments/",
        exports.JudgmentExportView.as_view(),
        name="export-judgments",
    ),
    path("projects/<slug:slug>/reports/", items.UserReportView.as_view(), name="reports"),
    path("projects/<slug:slug>/datacard/", exports.DatacardView.as_view(), name="datacard"),
]

from __future__ import annotations

from django.urls import path

from guidelines import views

app_name = "guidelines"

urlpatterns = [
    # Evaluators
    path("p/<slug:slug>/guideline/", views.guideline_read, name="guideline"),
    path("p/<slug:slug>/guideline/panel/", views.guideline_panel, name="guideline_panel"),
    path("p/<slug:slug>/calibration/<str:tag>/", views.calibration, name="calibration"),
    path(
        "p/<slug:slug>/calibration/<str:tag>/start/",
        views.calibration_start,
        name="calibration_start",
    ),
    path(
        "p/<slug:slug>/calibration/<str:tag>/answer/<int:assignment_id>/",
        views.calibration_answer,
        name="calibration_answer",
    ),
    path(
        "p/<slug:slug>/calibration/<str:tag>/feedback/<int:assignment_id>/",
        views.calibration_feedback,
        name="calibration_feedback",
    ),
    # Leads
    path("p/<slug:slug>/lead/guideline/", views.lead_guideline, name="lead_guideline"),
    path(
        "p/<slug:slug>/lead/guideline/preview/",
        views.lead_guideline_preview,
        name="lead_guideline_preview",
    ),
    path(
        "p/<slug:slug>/lead/guideline/diff/<str:version>/",
        views.lead_guideline_diff,
        name="lead_guideline_diff",
    ),
    path(
        "p/<slug:slug>/lead/guideline/translation/",
        views.lead_guideline_translation,
        name="lead_guideline_translation",
    ),
    path("p/<slug:slug>/lead/guideline/examples/", views.lead_example_add, name="lead_example_add"),
    path(
        "p/<slug:slug>/lead/guideline/examples/<int:example_id>/remove/",
        views.lead_example_remove,
        name="lead_example_remove",
    ),
    path("p/<slug:slug>/lead/gold/", views.lead_gold, name="lead_gold"),
    path("p/<slug:slug>/lead/gold/promote/", views.lead_gold_promote, name="lead_gold_promote"),
    path("p/<slug:slug>/lead/calibration/", views.lead_rounds, name="lead_rounds"),
    path("p/<slug:slug>/lead/calibration/<int:round_id>/", views.lead_round, name="lead_round"),
    path("p/<slug:slug>/lead/honeypots/", views.lead_honeypots, name="lead_honeypots"),
    path("p/<slug:slug>/lead/too-fast/", views.lead_too_fast, name="lead_too_fast"),
]

from __future__ import annotations

from django.urls import path

from guidelines.views import calibration, editor, gold, quality, reading, rounds

app_name = "guidelines"

urlpatterns = [
    # Evaluators
    path("p/<slug:slug>/guideline/", reading.guideline_read, name="guideline"),
    path("p/<slug:slug>/guideline/panel/", reading.guideline_panel, name="guideline_panel"),
    path("p/<slug:slug>/calibration/<str:tag>/", calibration.calibration, name="calibration"),
    path(
        "p/<slug:slug>/calibration/<str:tag>/start/",
        calibration.calibration_start,
        name="calibration_start",
    ),
    path(
        "p/<slug:slug>/calibration/<str:tag>/answer/<int:assignment_id>/",
        calibration.calibration_answer,
        name="calibration_answer",
    ),
    path(
        "p/<slug:slug>/calibration/<str:tag>/feedback/<int:assignment_id>/",
        calibration.calibration_feedback,
        name="calibration_feedback",
    ),
    # Leads
    path("p/<slug:slug>/lead/guideline/", editor.lead_guideline, name="lead_guideline"),
    path(
        "p/<slug:slug>/lead/guideline/preview/",
        editor.lead_guideline_preview,
        name="lead_guideline_preview",
    ),
    path(
        "p/<slug:slug>/lead/guideline/diff/<str:version>/",
        editor.lead_guideline_diff,
        name="lead_guideline_diff",
    ),
    path(
        "p/<slug:slug>/lead/guideline/translation/",
        editor.lead_guideline_translation,
        name="lead_guideline_translation",
    ),
    path(
        "p/<slug:slug>/lead/guideline/examples/", editor.lead_example_add, name="lead_example_add"
    ),
    path(
        "p/<slug:slug>/lead/guideline/examples/<int:example_id>/remove/",
        editor.lead_example_remove,
        name="lead_example_remove",
    ),
    path("p/<slug:slug>/lead/gold/", gold.lead_gold, name="lead_gold"),
    path("p/<slug:slug>/lead/gold/promote/", gold.lead_gold_promote, name="lead_gold_promote"),
    path("p/<slug:slug>/lead/calibration/", rounds.lead_rounds, name="lead_rounds"),
    path("p/<slug:slug>/lead/calibration/<int:round_id>/", rounds.lead_round, name="lead_round"),
    path("p/<slug:slug>/lead/honeypots/", quality.lead_honeypots, name="lead_honeypots"),
    path("p/<slug:slug>/lead/too-fast/", quality.lead_too_fast, name="lead_too_fast"),
]

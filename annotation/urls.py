from __future__ import annotations

from django.urls import path

from annotation.views import evaluator, lead, progress, tokens

app_name = "annotation"

urlpatterns = [
    path("", evaluator.queue_home, name="queue_home"),
    path("p/<slug:slug>/work/", evaluator.work, name="work"),
    path(
        "assignments/<int:assignment_id>/submit/",
        evaluator.assignment_submit,
        name="assignment_submit",
    ),
    path(
        "assignments/<int:assignment_id>/skip/",
        evaluator.assignment_skip_view,
        name="assignment_skip",
    ),
    path(
        "assignments/<int:assignment_id>/undo/", evaluator.assignment_undo, name="assignment_undo"
    ),
    path("me/judgments/", evaluator.my_judgments, name="my_judgments"),
    path(
        "judgments/<int:judgment_id>/revise/",
        evaluator.judgment_revise_view,
        name="judgment_revise",
    ),
    path("p/<slug:slug>/tokens/", tokens.token_list, name="tokens"),
    path("p/<slug:slug>/tokens/<int:token_id>/revoke/", tokens.token_revoke, name="token_revoke"),
    path("p/<slug:slug>/reports/", tokens.report_triage, name="report_triage"),
    path("p/<slug:slug>/lead/", lead.dashboard_page, name="lead_dashboard"),
    path("p/<slug:slug>/items/", lead.items_page, name="lead_items"),
    path("p/<slug:slug>/items/<int:item_id>/", lead.item_page, name="lead_item"),
    path("p/<slug:slug>/parity/", lead.parity_page, name="lead_parity"),
    path("p/<slug:slug>/progress/", progress.progress_page, name="progress"),
    path("p/<slug:slug>/progress/share/", progress.progress_share, name="progress_share"),
    path(
        "p/<slug:slug>/progress/regressed/<str:tag>/",
        progress.progress_regressed,
        name="progress_regressed",
    ),
    path("p/<slug:slug>/models/", progress.model_versions_page, name="model_versions"),
    path("shared/progress/<str:token>/", progress.progress_shared, name="progress_shared"),
    path("p/<slug:slug>/agreement/", lead.agreement_page, name="lead_agreement"),
    path("p/<slug:slug>/adjudication/", lead.adjudication_queue_page, name="adjudication_queue"),
    path(
        "p/<slug:slug>/adjudication/<int:item_id>/",
        lead.adjudication_item_page,
        name="adjudication_item",
    ),
]

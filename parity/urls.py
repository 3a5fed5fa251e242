"""The one place that includes every app's urls."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from active_learning.urls import api_urlpatterns as al_api_urlpatterns
from annotation.metrics import metrics_view
from parity.auth import LoginView, password_reset_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    # Only with mail settings (EMAIL_HOST): otherwise 404, never "a mail was sent".
    path(
        "accounts/password_reset/",
        password_reset_view(auth_views.PasswordResetView.as_view()),
        name="password_reset",
    ),
    path(
        "accounts/password_reset/done/",
        password_reset_view(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        password_reset_view(auth_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        password_reset_view(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include((al_api_urlpatterns, "al_api"))),
    path("api/v1/", include("annotation.api.urls")),
    path("", include("annotation.urls")),
    path("", include("guidelines.urls")),
    path("", include("active_learning.urls")),
]

# JSON in the API's error shape for unknown paths under /api/, Django's page elsewhere.
handler404 = "annotation.api.errors.not_found"
# A database that went away is a retryable 503; under /api/ every failure is JSON.
handler500 = "annotation.middleware.server_error"

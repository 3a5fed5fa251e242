"""The one place that includes every app's urls."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from active_learning.urls import api_urlpatterns as al_api_urlpatterns

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
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

from __future__ import annotations

from django.urls import path

from annotation.views import evaluator

app_name = "annotation"

urlpatterns = [
    path("", evaluator.queue_home, name="queue_home"),
]

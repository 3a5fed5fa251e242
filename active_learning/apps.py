from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ActiveLearningConfig(AppConfig):
    name = "active_learning"
    verbose_name = _("Active learning")

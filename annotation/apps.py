from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = _("Annotation")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from annotation.audit import login_failed, login_succeeded

        # Who logged in and who tried: the audit log's record of sign-ins.
        user_logged_in.connect(login_succeeded, dispatch_uid="annotation.audit.login_succeeded")
        user_login_failed.connect(login_failed, dispatch_uid="annotation.audit.login_failed")

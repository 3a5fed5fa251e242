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

        from django.db.models.signals import post_migrate

        # Every `migrate` also creates the database cache's table (production settings use
        # it for rate limits when CACHE_URL is unset): no deployment can forget it.
        post_migrate.connect(
            _cache_table_create, sender=self, dispatch_uid="annotation.cache_table_create"
        )


def _cache_table_create(sender: object, using: str = "default", **kwargs: object) -> None:
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)

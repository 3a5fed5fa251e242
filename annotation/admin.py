"""The lead's admin: projects, languages, evaluators and items."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import (
    ApiToken,
    Assignment,
    AuditEvent,
    EvaluatorLanguage,
    EvaluatorProfile,
    ExternalRater,
    FinalLabel,
    GoldAnswer,
    Item,
    Judgment,
    Language,
    ModelVersion,
    Project,
    Qualification,
    QualificationStatus,
)

User = get_user_model()


@admin.register(Language)
class LanguageAdmin(admin.ModelAdmin):
    list_display = ["tag", "name", "script", "direction"]
    list_filter = ["direction", "script"]
    search_fields = ["tag", "name"]


class QualificationInline(admin.TabularInline):
    model = Qualification
    fk_name = "evaluator"
    extra = 0
    fields = [
        "project",
        "language",
        "status",
        "is_senior",
        "guideline_version",
        "honeypot_accuracy",
        "reason",
    ]
    readonly_fields = ["honeypot_accuracy"]
    autocomplete_fields = ["project", "language"]


class ProjectQualificationInline(admin.TabularInline):
    model = Qualification
    fk_name = "project"
    extra = 0
    fields = [
        "evaluator",
        "language",
        "status",
        "is_senior",
        "guideline_version",
        "honeypot_accuracy",
        "reason",
    ]
    readonly_fields = ["honeypot_accuracy"]
    autocomplete_fields = ["evaluator", "language"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "task_type",
        "overlap",
        "honeypot_rate",
        "guideline_version",
        "created_at",
    ]
    list_filter = ["task_type"]
    search_fields = ["slug", "name"]
    filter_horizontal = ["languages", "leads"]
    inlines = [ProjectQualificationInline]
    prepopulated_fields = {"slug": ["name"]}


class EvaluatorLanguageInline(admin.TabularInline):
    model = EvaluatorLanguage
    extra = 0
    autocomplete_fields = ["language"]


@admin.register(EvaluatorProfile)
class EvaluatorProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "pseudonym", "created_at"]
    search_fields = ["user__username", "user__email", "pseudonym"]
    inlines = [EvaluatorLanguageInline]


admin.site.unregister(User)


@admin.register(User)
class EvaluatorUserAdmin(UserAdmin):
    inlines = [QualificationInline]


@admin.action(description="Qualify the selected evaluators")
def qualify(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Qualification]
) -> None:
    from annotation.qualification import qualification_set

    for q in queryset.select_related("project", "language", "evaluator"):
        qualification_set(
            project=q.project,
            evaluator=q.evaluator,
            language=q.language,
            status=QualificationStatus.QUALIFIED,
            actor=request.user,
            reason="granted in the admin",
        )


@admin.action(description="Revoke (back to pending)")
def revoke(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Qualification]
) -> None:
    from annotation.qualification import qualification_set

    for q in queryset.select_related("project", "language", "evaluator"):
        qualification_set(
            project=q.project,
            evaluator=q.evaluator,
            language=q.language,
            status=QualificationStatus.PENDING,
            actor=request.user,
            reason="revoked in the admin",
        )


@admin.register(Qualification)
class QualificationAdmin(admin.ModelAdmin):
    list_display = [
        "evaluator",
        "project",
        "language",
        "status",
        "is_senior",
        "honeypot_accuracy",
        "changed_at",
    ]
    list_filter = ["status", "project", "language", "is_senior"]
    search_fields = ["evaluator__username", "project__slug", "language__tag"]
    autocomplete_fields = ["evaluator", "project", "language"]
    actions = [qualify, revoke]


class GoldInline(admin.StackedInline):
    model = GoldAnswer
    extra = 0
    fields = ["value", "tolerance", "explanation"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "project",
        "language",
        "status",
        "open_slots",
        "priority",
        "is_gold",
        "source",
        "language_flagged",
    ]
    list_filter = [
        "project",
        "status",
        "language",
        "is_gold",
        "source",
        "selection",
        "language_flagged",
    ]
    search_fields = ["external_id", "prompt", "response"]
    readonly_fields = ["content_hash", "created_at", "updated_at", "language_check"]
    list_select_related = ["project", "language"]
    inlines = [GoldInline]
    show_full_result_count = False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "evaluator", "kind", "status", "leased_at", "lease_expires_at"]
    list_filter = ["kind", "status", "project"]
    search_fields = ["evaluator__username", "item__external_id"]
    list_select_related = ["item__project", "evaluator"]
    raw_id_fields = ["item"]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "item",
        "evaluator",
        "external_rater",
        "kind",
        "revision",
        "is_current",
        "too_fast",
        "created_at",
    ]
    list_filter = ["kind", "is_current", "too_fast", "item__project"]
    search_fields = ["evaluator__username", "item__external_id", "external_rater__external_id"]
    list_select_related = ["item__project", "evaluator", "external_rater"]
    raw_id_fields = ["item", "assignment"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Judgments are never overwritten; an edit is a new revision made by its evaluator.
        return False


@admin.register(ExternalRater)
class ExternalRaterAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["external_id"]


@admin.register(FinalLabel)
class FinalLabelAdmin(admin.ModelAdmin):
    list_display = ["item", "decided_by", "created_at"]
    raw_id_fields = ["item"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "project",
        "scope",
        "name",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", "project"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "verb",
        "actor",
        "token",
        "project",
        "object_type",
        "object_id",
        "data",
    ]
    list_filter = ["verb", "project"]
    # Logins: `login.success` / `login.failed` with the username tried and the address.
    search_fields = ["verb", "object_id", "actor__username", "data__username", "data__ip"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "released_on", "project")
    list_filter = ("project",)
    search_fields = ("name", "version")

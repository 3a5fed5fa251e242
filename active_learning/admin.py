from __future__ import annotations

from django.contrib import admin

from active_learning.models import ModelVersion, RoundItem, SelectionRound


class RoundItemInline(admin.TabularInline):
    model = RoundItem
    fields = ("item", "language", "selection", "rank", "score", "components")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(SelectionRound)
class SelectionRoundAdmin(admin.ModelAdmin):
    """Rounds are an audit trail: readable here, changed only by running rounds."""

    list_display = (
        "id",
        "project",
        "strategy",
        "budget",
        "seed",
        "status",
        "model_version",
        "created_at",
    )
    list_filter = ("status", "strategy", "project")
    readonly_fields = [f.name for f in SelectionRound._meta.fields]
    inlines = [RoundItemInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("project", "number", "n_labels", "features", "created_at")
    list_filter = ("project",)
    exclude = ("blob",)
    readonly_fields = (
        "project",
        "number",
        "features",
        "label_rule",
        "classes",
        "n_labels",
        "label_watermark",
        "accuracy",
        "parameters",
        "created_at",
    )

    def has_add_permission(self, request):
        return False

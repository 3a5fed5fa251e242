"""Admin for guidelines and calibration (the lead pages are the main way to work)."""

from __future__ import annotations

from django.contrib import admin

from guidelines.models import (
    CalibrationAttempt,
    CalibrationRound,
    Guideline,
    GuidelineAcknowledgement,
    GuidelineTranslation,
    GuidelineVersion,
    WorkedExample,
)


class GuidelineVersionInline(admin.TabularInline):
    model = GuidelineVersion
    extra = 0
    fields = readonly_fields = (
        "major",
        "minor",
        "patch",
        "changelog",
        "published_by",
        "published_at",
    )
    can_delete = False
    show_change_link = True


@admin.register(Guideline)
class GuidelineAdmin(admin.ModelAdmin):
    list_display = ["project", "source_language", "created_at"]
    inlines = [GuidelineVersionInline]


class GuidelineTranslationInline(admin.StackedInline):
    model = GuidelineTranslation
    extra = 0


@admin.register(GuidelineVersion)
class GuidelineVersionAdmin(admin.ModelAdmin):
    list_display = ["guideline", "version", "published_by", "published_at"]
    list_filter = ["guideline__project"]
    # Published versions are history; a change is a new version (publish from the lead page).
    readonly_fields = [
        "guideline",
        "major",
        "minor",
        "patch",
        "body",
        "published_by",
        "published_at",
    ]
    inlines = [GuidelineTranslationInline]


@admin.register(WorkedExample)
class WorkedExampleAdmin(admin.ModelAdmin):
    list_display = ["guideline", "item", "position", "added_in"]
    raw_id_fields = ["item"]


@admin.register(GuidelineAcknowledgement)
class GuidelineAcknowledgementAdmin(admin.ModelAdmin):
    list_display = ["evaluator", "version", "created_at"]
    list_filter = ["version__guideline__project"]


class CalibrationAttemptInline(admin.TabularInline):
    model = CalibrationAttempt
    extra = 0
    fields = readonly_fields = (
        "evaluator",
        "number",
        "verdict",
        "correct",
        "total",
        "score",
        "started_at",
        "finished_at",
    )
    can_delete = False


@admin.register(CalibrationRound)
class CalibrationRoundAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "project",
        "language",
        "guideline_version",
        "status",
        "pass_mark",
        "cooldown_seconds",
    ]
    list_filter = ["status", "project", "language"]
    raw_id_fields = ["gold_items"]
    inlines = [CalibrationAttemptInline]


@admin.register(CalibrationAttempt)
class CalibrationAttemptAdmin(admin.ModelAdmin):
    list_display = ["evaluator", "round", "number", "verdict", "score", "started_at", "finished_at"]
    list_filter = ["verdict", "round__project"]
    readonly_fields = ["seed", "order"]

"""Form input of the guidelines pages. Forms only parse; the services decide (and say
what is wrong), so the pages and any other caller refuse the same things the same way."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from annotation.models import Project, TaskType

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def tolerance_from_post(*, project: Project, data: QueryDict) -> dict[str, Any]:
    """rating: tolerance_points; pairwise: tie_ok (checkbox); labels: jaccard (blank = exact set)."""
    if project.task_type == TaskType.RATING:
        raw = (data.get("tolerance_points") or "").strip()
        if not raw:
            return {}
        return {"points": float(raw) if _NUMBER.match(raw) else raw}
    if project.task_type == TaskType.PAIRWISE:
        return {"tie_ok": data.get("tie_ok") in ("on", "1", "true")}
    raw = (data.get("jaccard") or "").strip()
    if not raw:
        return {}
    return {"jaccard": float(raw) if _NUMBER.match(raw) else raw}


class PublishForm(forms.Form):
    body = forms.CharField(
        label=_("Guideline (Markdown)"),
        widget=forms.Textarea(attrs={"rows": 24, "dir": "auto"}),
        strip=False,
    )
    changelog = forms.CharField(
        label=_("What changed"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "dir": "auto"}),
    )
    bump = forms.ChoiceField(
        label=_("Publish as"),
        choices=[
            ("patch", _("patch — wording only, nobody re-reads")),
            ("minor", _("minor — evaluators acknowledge the new version")),
            ("major", _("major — evaluators requalify through calibration")),
        ],
        initial="minor",
        widget=forms.RadioSelect,
    )
    source_language = forms.CharField(
        label=_("Source language (first version only)"), required=False, initial="en", max_length=35
    )


class TranslationForm(forms.Form):
    language = forms.CharField(label=_("Language (BCP 47 tag)"), max_length=35)
    body = forms.CharField(
        label=_("Translation (Markdown)"), widget=forms.Textarea(attrs={"rows": 20}), strip=False
    )


class RoundForm(forms.Form):
    name = forms.CharField(label=_("Name"), required=False, max_length=200)
    language = forms.CharField(label=_("Language"), max_length=35)
    # A CharField, so a pass mark of "1.5" reaches the service and gets its specific message.
    pass_mark = forms.CharField(
        label=_("Pass mark (share right, 0–1)"), initial="0.8", max_length=20
    )
    cooldown_seconds = forms.IntegerField(label=_("Retry cool-down (seconds)"), initial=3600)


class GoldCreateForm(forms.Form):
    external_id = forms.CharField(label=_("External id"), max_length=200)
    language = forms.CharField(label=_("Language"), max_length=35)
    prompt = forms.CharField(
        label=_("Prompt"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "dir": "auto"}),
        strip=False,
    )
    prompt_language = forms.CharField(
        label=_("Language of the prompt, if another (BCP 47 tag)"), required=False, max_length=35
    )
    response = forms.CharField(
        label=_("Response"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "dir": "auto"}),
        strip=False,
    )
    response_a = forms.CharField(
        label=_("Response A"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "dir": "auto"}),
        strip=False,
    )
    response_b = forms.CharField(
        label=_("Response B"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "dir": "auto"}),
        strip=False,
    )
    explanation = forms.CharField(
        label=_("Explanation (shown after answering in calibration)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "dir": "auto"}),
    )


class ExampleForm(forms.Form):
    external_id = forms.CharField(label=_("Item (external id)"), max_length=200)
    explanation = forms.CharField(
        label=_("Why"), widget=forms.Textarea(attrs={"rows": 3, "dir": "auto"})
    )

"""Sharing a report: CSV, and signed read-only links."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.core import signing
from django.core.exceptions import ValidationError

from annotation.audit import audit_record
from annotation.models import Project
from annotation.progress.options import BY_CHOICES, SHARE_MAX_DAYS, SHARE_SALT, progress_args_clean
from annotation.types import Actor

CSV_COLUMNS = (
    "language",
    "key",
    "items",
    "value",
    "ci_low",
    "ci_high",
    "change_from",
    "change",
    "change_ci_low",
    "change_ci_high",
    "change_verdict",
    "best_language",
    "gap",
    "gap_ci_low",
    "gap_ci_high",
    "gap_change",
    "gap_change_ci_low",
    "gap_change_ci_high",
    "gap_verdict",
)


def progress_csv(report: dict[str, Any]) -> str:
    """One CSV row per language and key (model version or period)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report["languages"]:
        for entry in row["series"]:
            change = entry["change"] or {}
            gap = entry["gap"] or {}
            gap_change = gap.get("change") or {}
            writer.writerow(
                [
                    row["language"],
                    entry["key"],
                    entry["items"],
                    entry["value"],
                    *entry["ci"],
                    change.get("from", ""),
                    change.get("value", ""),
                    *(change.get("ci") or ["", ""]),
                    change.get("verdict", ""),
                    gap.get("best", ""),
                    gap.get("value", ""),
                    *(gap.get("ci") or ["", ""]),
                    gap_change.get("value", ""),
                    *(gap_change.get("ci") or ["", ""]),
                    gap_change.get("verdict", ""),
                ]
            )
    return out.getvalue()


def share_link_create(*, project: Project, by: str, days: int, actor: Actor) -> str:
    """A signed token for the read-only printable report, valid `days` days."""
    progress_args_clean(by=by)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= SHARE_MAX_DAYS:
        raise ValidationError(f"days must be a whole number from 1 to {SHARE_MAX_DAYS}")
    token = signing.TimestampSigner(salt=SHARE_SALT).sign_object(
        {"p": project.pk, "by": by, "days": days}
    )
    audit_record(verb="progress.share", actor=actor, project=project, data={"by": by, "days": days})
    return token


def share_link_open(*, token: str) -> tuple[Project, str]:
    """The project and `by` of a share token; signing.BadSignature (or SignatureExpired)
    for a forged, altered or expired one."""
    signer = signing.TimestampSigner(salt=SHARE_SALT)
    payload = signer.unsign_object(token)
    days = int(payload.get("days", 0))
    signer.unsign_object(token, max_age=days * 86400)
    project = Project.objects.filter(pk=payload.get("p")).first()
    if project is None or payload.get("by") not in BY_CHOICES:
        raise signing.BadSignature("unknown project")
    return project, payload["by"]

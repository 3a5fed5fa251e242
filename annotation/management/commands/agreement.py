from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.agreement import BREAKDOWNS, LEVELS, METADATA_PREFIX, agreement_report
from annotation.models import Project


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


class Command(BaseCommand):
    help = "Krippendorff's alpha with a bootstrap 95% CI: level, units, judgments (production and historical)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--language", help="one language (BCP 47 tag); default: all")
        parser.add_argument(
            "--level", choices=LEVELS, help="level of measurement (default: the project's)"
        )
        parser.add_argument(
            "--by", help=f"break down by {', '.join(BREAKDOWNS)} or {METADATA_PREFIX}<key>"
        )
        parser.add_argument(
            "--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)"
        )
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        try:
            report = agreement_report(
                project=project,
                language=opts["language"],
                level=opts["level"],
                by=opts["by"],
                seed=opts["seed"],
                resamples=opts["resamples"],
            )
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from None
        if opts["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        scope = report["language"] or "all languages"
        lo, hi = report["ci"]
        self.stdout.write(
            f"{project.slug} ({scope}): alpha {_fmt(report['alpha'])} ({report['level']}), "
            f"95% CI [{_fmt(lo)}, {_fmt(hi)}], {report['units']} units, {report['judgments']} judgments, "
            f"{report['excluded_units']} units with fewer than two judgments excluded"
        )
        for label in report.get("labels", []):
            self.stdout.write(
                f"  label {label['label']}: alpha {_fmt(label['alpha'])} "
                f"[{_fmt(label['ci'][0])}, {_fmt(label['ci'][1])}]"
            )
        for group in report.get("groups", []):
            extra = ""
            if "alpha_without" in group:
                extra = f", without: {_fmt(group['alpha_without'])}, mean kappa {_fmt(group['kappa_mean'])}"
            self.stdout.write(
                f"  {group['label']}: alpha {_fmt(group['alpha'])} [{_fmt(group['ci'][0])}, {_fmt(group['ci'][1])}], "
                f"{group['units']} units, {group['judgments']} judgments{extra}"
            )

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.agreement import parity_report
from annotation.models import Project


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = "The per-language parity report: agreement, model quality, honeypot accuracy, throughput, gap."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        if not 0 <= opts["resamples"] <= 100_000:
            raise CommandError("--resamples must be between 0 and 100000")
        report = parity_report(project=project, seed=opts["seed"], resamples=opts["resamples"])
        if opts["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        quality = report["quality"]
        self.stdout.write(
            f"{project.slug}: {quality['measure']}"
            + (f" of {quality['focus_model']}" if quality.get("focus_model") else "")
            + f"; quality from {quality['items_used']}"
        )
        self.stdout.write(
            f"{'language':<10} {'items':>6} {'judg.':>7} {'alpha':>6} {'alpha 95% CI':>16} "
            f"{'quality':>8} {'quality 95% CI':>18} {'gap':>7} {'honeypot':>8} {'/day':>7}  flags"
        )
        for row in report["languages"]:
            q = row["quality"]
            self.stdout.write(
                f"{row['language']:<10} {row['items']:>6} {row['judgments']:>7} {_fmt(row['alpha']):>6} "
                f"{'[' + _fmt(row['ci'][0]) + ', ' + _fmt(row['ci'][1]) + ']':>16} {_fmt(q['value']):>8} "
                f"{'[' + _fmt(q['ci'][0]) + ', ' + _fmt(q['ci'][1]) + ']':>18} {_fmt(row['gap']):>7} "
                f"{_fmt(row['honeypot']['accuracy'], 2):>8} {_fmt(row['judgments_per_day'], 1):>7}  "
                + ", ".join(f["code"] for f in row["flags"])
            )

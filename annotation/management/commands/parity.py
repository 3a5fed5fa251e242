from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.agreement import parity_report
from annotation.models import Project
from annotation.progress import progress_csv, progress_report


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = "The per-language parity report: agreement, model quality, honeypot accuracy, throughput, gap."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument(
            "--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)"
        )
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
        parser.add_argument(
            "--by",
            choices=["model", "period"],
            help="progress by model version (release order) or by period of judgment, each "
            "change with its CI",
        )
        parser.add_argument(
            "--period",
            choices=["week", "month"],
            default="week",
            help="with --by period: week (default) or month",
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--csv", action="store_true", help="with --by: print one CSV row per language and key"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        if not 0 <= opts["resamples"] <= 100_000:
            raise CommandError("--resamples must be between 0 and 100000")
        if opts["csv"] and not opts["by"]:
            raise CommandError("--csv needs --by model or --by period")
        if opts["by"]:
            self._progress(project, opts)
            return
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

    def _progress(self, project: Project, opts: dict[str, Any]) -> None:
        report = progress_report(
            project=project,
            by=opts["by"],
            period=opts["period"],
            seed=opts["seed"],
            resamples=opts["resamples"],
        )
        if opts["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        if opts["csv"]:
            self.stdout.write(progress_csv(report), ending="")
            return
        self.stdout.write(
            f"{project.slug}: {report['quality']['measure']} by {report['by']}"
            + (f" ({report['period']})" if report["period"] else "")
        )
        self.stdout.write(
            f"{'language':<10} {'key':<24} {'items':>6} {'quality':>8} {'95% CI':>18} "
            f"{'change':>8} {'change 95% CI':>18} {'verdict':<12} {'gap':>7} {'gap trend':<12}"
        )
        for row in report["languages"]:
            for e in row["series"]:
                change = e["change"] or {}
                gap = e["gap"] or {}
                trend = (gap.get("change") or {}).get("verdict", "")
                ci = change.get("ci") or [None, None]
                self.stdout.write(
                    f"{row['language']:<10} {e['key'][:24]:<24} {e['items']:>6} {_fmt(e['value']):>8} "
                    f"{'[' + _fmt(e['ci'][0]) + ', ' + _fmt(e['ci'][1]) + ']':>18} "
                    f"{_fmt(change.get('value')):>8} {'[' + _fmt(ci[0]) + ', ' + _fmt(ci[1]) + ']':>18} "
                    f"{change.get('verdict', ''):<12} {_fmt(gap.get('value')):>7} {trend:<12}"
                )
            for action in row["actions"]:
                self.stdout.write(
                    f"  {row['language']}: next: {action['message']} ({action['url']})"
                )

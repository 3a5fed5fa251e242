from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.exports import JUDGMENT_FORMATS, csv_stream, jsonl_stream, judgment_export
from annotation.management.commands.export_preferences import _messages, _write
from annotation.models import Project


class Command(BaseCommand):
    help = "Export the raw judgments (evaluators by pseudonym, external raters by id) as JSON Lines or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--format", choices=JUDGMENT_FORMATS, default="jsonl")
        parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
        parser.add_argument("--language", help="only this language (BCP 47 tag)")

    def handle(self, *args: Any, **opts: Any) -> None:
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        try:
            rows = judgment_export(project=project, language=opts["language"])
        except ValidationError as exc:
            raise CommandError("; ".join(_messages(exc))) from None
        chunks = csv_stream(rows) if opts["format"] == "csv" else jsonl_stream(rows)
        written = _write(chunks, opts["output"])
        self.stderr.write(f"{written} bytes written")

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.exports import (
    METHODS,
    PREFERENCE_FORMATS,
    STYLES,
    jsonl_stream,
    parquet_stream,
    preference_export,
)
from annotation.models import Project


class Command(BaseCommand):
    help = (
        "Export preference pairs (chosen/rejected) as JSON Lines or Parquet, streamed. "
        "Prints the cursor for the next incremental pull (--since) on stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--format", choices=PREFERENCE_FORMATS, default="jsonl")
        parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout, JSON Lines only)")
        parser.add_argument("--style", choices=STYLES, default="standard")
        parser.add_argument("--method", choices=METHODS, default="majority")
        parser.add_argument("--language", help="only this language (BCP 47 tag)")
        parser.add_argument("--min-agreement", type=float, help="skip pairs with less agreement (0–1)")
        parser.add_argument("--since", help="cursor printed by an earlier export: only pairs settled since")
        parser.add_argument("--include-ties", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        if opts["format"] == "parquet" and opts["output"] is None:
            raise CommandError("Parquet is binary: give a file with -o")
        try:
            export = preference_export(
                project=project, method=opts["method"], language=opts["language"],
                min_agreement=opts["min_agreement"], since=opts["since"],
                exclude_ties=not opts["include_ties"], style=opts["style"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(_messages(exc))) from None
        chunks = parquet_stream(export.rows, style=export.style) if opts["format"] == "parquet" else jsonl_stream(export.rows)
        written = _write(chunks, opts["output"])
        self.stderr.write(f"{written} bytes written; next cursor: {export.cursor}")


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{name}: {msg}" for name, msgs in exc.message_dict.items() for msg in msgs]
    return exc.messages


def _write(chunks: Any, output: Path | None) -> int:
    written = 0
    if output is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
            written += len(chunk)
        sys.stdout.buffer.flush()
        return written
    try:
        with output.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                written += len(chunk)
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror}") from None
    return written

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.imports import ImportRejected, jsonl_records, judgments_import
from annotation.management.commands._files import import_target


class Command(BaseCommand):
    help = (
        "Import historical judgments from a JSON Lines file (item_external_id, rater, value, optional created). "
        "Raters are kept as external raters without logins. Atomic (a bad line stores nothing) and idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file",
            type=Path,
            help="JSON Lines, one judgment per line (see README.md, 'Import lines')",
        )
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        project, path = import_target(opts)
        with path.open("rb") as fh:
            try:
                result = judgments_import(
                    project=project, records=jsonl_records(fh), max_lines=10**9
                )
            except ImportRejected as exc:
                raise CommandError(exc.summary()) from None
        if opts["json"]:
            self.stdout.write(
                json.dumps({"created": result.created, "unchanged": result.unchanged})
            )
        else:
            self.stdout.write(
                f"{project.slug}: {result.created} judgments created, {result.unchanged} unchanged"
            )

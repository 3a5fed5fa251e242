from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.imports import ImportRejected, items_import, jsonl_records
from annotation.language_check import language_check_enqueue, language_check_items
from annotation.management.commands._files import import_target


class Command(BaseCommand):
    help = "Import items from a JSON Lines file. Atomic (a bad line stores nothing) and idempotent by external_id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file", type=Path, help="JSON Lines, one item per line (see README.md, 'Import lines')"
        )
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")
        parser.add_argument(
            "--no-language-check",
            action="store_true",
            help="skip the language check (flags items not in their declared language)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        project, path = import_target(opts)
        with path.open("rb") as fh:
            try:
                result = items_import(project=project, records=jsonl_records(fh), max_lines=10**9)
            except ImportRejected as exc:
                raise CommandError(exc.summary()) from None
        check = "off"
        if settings.PARITY_LANGUAGE_CHECK and not opts["no_language_check"] and result.item_ids:
            # On a worker when a broker is configured, here otherwise; the import is committed either way.
            if language_check_enqueue(item_ids=result.item_ids):
                check = "queued"
            else:
                language_check_items(item_ids=result.item_ids)
                check = "done"
        if opts["json"]:
            self.stdout.write(json.dumps({**result.as_dict(), "language_check": check}))
        else:
            self.stdout.write(
                f"{project.slug}: {result.created} created, {result.unchanged} unchanged, {result.updated} updated"
            )

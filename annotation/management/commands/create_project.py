from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import TaskType
from annotation.projects import project_create_or_update


class Command(BaseCommand):
    help = (
        "Create a project, or update the one with this slug. The schema and the import format are in README.md, "
        "'Using it'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--task-type", required=True, choices=TaskType.values)
        parser.add_argument(
            "--languages", required=True, help="comma-separated BCP 47 tags, e.g. de,zh,sw"
        )
        parser.add_argument("--name", help="display name (default: from the slug)")
        parser.add_argument(
            "--schema",
            type=Path,
            help="JSON file: scale bounds, labels, issue tags, level (README.md, 'Project schema'); without it a "
            "rating project uses a 1–5 scale, a labels project acceptable/unacceptable",
        )
        parser.add_argument("--overlap", type=int, help="judgments per item (k)")
        parser.add_argument("--honeypot-rate", type=float)
        parser.add_argument("--lease-seconds", type=int)
        parser.add_argument(
            "--pool", action="store_true", help="imported items wait for an active-learning round"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        schema = None
        if opts["schema"]:
            try:
                schema = json.loads(opts["schema"].read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise CommandError(f"schema file {opts['schema']} does not exist") from None
            except json.JSONDecodeError as exc:
                raise CommandError(
                    f"schema file {opts['schema']} is not valid JSON: {exc.msg} at line {exc.lineno}"
                ) from None
        languages = [t.strip() for t in opts["languages"].split(",") if t.strip()]
        options: dict[str, Any] = {}
        if opts["honeypot_rate"] is not None:
            options["honeypot_rate"] = opts["honeypot_rate"]
        if opts["lease_seconds"] is not None:
            options["lease_seconds"] = opts["lease_seconds"]
        if opts["pool"]:
            options["queue_on_import"] = False
        try:
            project, created = project_create_or_update(
                slug=opts["slug"],
                task_type=opts["task_type"],
                languages=languages,
                name=opts["name"],
                schema=schema,
                overlap=opts["overlap"],
                **options,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        tags = ", ".join(project.languages.order_by("tag").values_list("tag", flat=True))
        self.stdout.write(
            f"{'created' if created else 'updated'} project {project.slug} ({project.task_type}; {tags})"
        )

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from active_learning.tasks import background_sweep


class Command(BaseCommand):
    help = (
        "Send again the background work a lost broker message left pending: language checks of "
        "imported items and active-learning rounds still waiting (for cron, where Celery beat "
        "does not run). Without a broker the work runs here. Also marks what changed for the "
        "preference export, so that a pull streams at once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            metavar="SECONDS",
            help="only work pending at least this long (default: PARITY_SWEEP_SECONDS)",
        )
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        older = opts["older_than"]
        if older is not None and older < 0:
            raise CommandError("--older-than must be 0 or more seconds.")
        result = background_sweep(older_than=None if older is None else timedelta(seconds=older))
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"{result['language_checks']} pending language checks, {result['rounds']} waiting rounds "
                f"sent again; export marks brought up to date in {result['export_projects']} projects."
            )

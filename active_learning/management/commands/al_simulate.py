from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from active_learning.simulation import (
    DATASETS,
    STRATEGIES,
    SimulationError,
    report_write,
    results_table,
    simulation_run,
)


class Command(BaseCommand):
    help = (
        "Replay a labelled data set with the labels hidden and compare selection strategies against "
        "random: how many truly bad outputs each sends to humans per language, committee learning "
        "curves, and the spread between languages. Writes CSV files and a PNG plot."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", default="mlqe-pe", help=f"one of {', '.join(DATASETS)} (default mlqe-pe)")
        parser.add_argument("--budget", type=float, default=0.2,
                            help="share of each language's pool sent to humans, above 0 and at most 1 (default 0.2)")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        parser.add_argument("--strategies", default=",".join(STRATEGIES),
                            help=f"comma-separated, from {', '.join(STRATEGIES)} (default all)")
        parser.add_argument("--limit", type=int, default=None, help="use only the first N items per language")
        parser.add_argument("--out", type=Path, default=Path(settings.BASE_DIR) / "bench" / "out" / "al_simulation",
                            help="folder for the CSV files and the plot (default bench/out/al_simulation, git-ignored)")
        parser.add_argument("--no-files", action="store_true", help="write no CSV or plot")
        parser.add_argument("--json", action="store_true",
                            help='print {"budget": …, "results": [{"strategy", "language", "bad_total", "bad_found", "recall"}, …]}')

    def handle(self, *args: Any, **opts: Any) -> None:
        strategies = [s.strip() for s in opts["strategies"].split(",") if s.strip()]
        if opts["seed"] < 0:
            raise CommandError("--seed must be a whole number of at least 0")
        try:
            report = simulation_run(
                dataset=opts["dataset"], budget=opts["budget"], seed=opts["seed"], strategies=strategies,
                limit=opts["limit"],
                progress=None if opts["json"] else (lambda s: self.stderr.write(f"running {s}…")),
            )
        except SimulationError as exc:
            raise CommandError(str(exc)) from None
        written = [] if opts["no_files"] else report_write(report, opts["out"])
        if opts["json"]:
            self.stdout.write(json.dumps({
                "budget": report["budget"],
                "dataset": report["dataset"],
                "seed": report["seed"],
                "results": report["results"],
                "summary": report["summary"],
                "spread": report["spread"],
                "curves": report["curves"],
                "files": [str(p) for p in written],
            }))
            return
        self.stdout.write(results_table(report))
        for path in written:
            self.stdout.write(f"wrote {path}")

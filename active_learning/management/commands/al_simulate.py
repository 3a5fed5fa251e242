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
    simulation_run_seeds,
)


def _seeds(text: str) -> list[int]:
    """ "0-4" or "0,1,2": whole numbers ≥ 0."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise CommandError(f"--seeds takes whole numbers ≥ 0 like 0-4 or 0,1,2, not {text!r}")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    if not out or len(out) > 50:
        raise CommandError("--seeds names between 1 and 50 seeds")
    return out


class Command(BaseCommand):
    help = (
        "Replay a labelled data set with the labels hidden and compare selection strategies against "
        "random and an oracle: per strategy and language, the outputs sent to humans (k), the bad ones "
        "among them, what random and an oracle would find, the share of the achievable gain and recall; "
        "committee learning curves and per-language quality estimates. Bundled MLQE-PE or your own data "
        "(--data). Writes CSV files and a PNG plot."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dataset", default="mlqe-pe", help=f"one of {', '.join(DATASETS)} (default mlqe-pe)"
        )
        parser.add_argument(
            "--data",
            type=Path,
            default=None,
            help="your own data instead: a folder in the MLQE-PE layout (*.df.short.tsv and "
            "word-probas/, loose or in .tar.gz archives) or a JSON Lines file of "
            '{"language", "prompt", "response", "token_logprobs" (optional), "score"}',
        )
        parser.add_argument(
            "--bad-below",
            type=float,
            default=None,
            help="an output is bad when its score is below this (default 50 for MLQE-PE, "
            "the midpoint of the scores' range for JSON Lines)",
        )
        parser.add_argument(
            "--budget",
            type=float,
            default=0.2,
            help="share of each language's pool sent to humans, above 0 and at most 1 (default 0.2)",
        )
        parser.add_argument(
            "--audit-share",
            type=float,
            default=None,
            help="the random audit slice's share of each round's budget in the committee and "
            "parity strategies, above 0 and at most 1 (default: committee 10%%, parity 10–15%% "
            "as a round allocates it); more audit makes the quality estimates more precise and "
            "finds fewer bad outputs",
        )
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        parser.add_argument(
            "--seeds", default=None, help="several seeds, e.g. 0-4: every figure is their mean"
        )
        parser.add_argument(
            "--strategies",
            default=",".join(STRATEGIES),
            help=f"comma-separated, from {', '.join(STRATEGIES)} (default all)",
        )
        parser.add_argument(
            "--limit", type=int, default=None, help="use only the first N items per language"
        )
        parser.add_argument(
            "--out",
            type=Path,
            default=Path(settings.BASE_DIR) / "bench" / "out" / "al_simulation",
            help="folder for the CSV files and the plot (default bench/out/al_simulation, git-ignored)",
        )
        parser.add_argument("--no-files", action="store_true", help="write no CSV or plot")
        parser.add_argument(
            "--json",
            action="store_true",
            help='print {"budget", "audit_share", "results": [{"strategy", "language", "picked", '
            '"audit", "bad_found", "bad_total", "n", "random_expected", "oracle", "share", '
            '"recall"}, …], "summary", …}',
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        strategies = [s.strip() for s in opts["strategies"].split(",") if s.strip()]
        if opts["seed"] < 0:
            raise CommandError("--seed must be a whole number of at least 0")
        if opts["data"] is not None and opts["dataset"] != "mlqe-pe":
            raise CommandError("give --dataset or --data, not both")
        progress = None if opts["json"] else (lambda s: self.stderr.write(f"running {s}…"))
        common = {
            "dataset": opts["dataset"],
            "budget": opts["budget"],
            "strategies": strategies,
            "limit": opts["limit"],
            "data": opts["data"],
            "bad_below": opts["bad_below"],
            "audit_share": opts["audit_share"],
            "progress": progress,
        }
        try:
            if opts["seeds"]:
                report = simulation_run_seeds(seeds=_seeds(opts["seeds"]), **common)
            else:
                report = simulation_run(seed=opts["seed"], **common)
        except SimulationError as exc:
            raise CommandError(str(exc)) from None
        written = [] if opts["no_files"] else report_write(report, opts["out"])
        if opts["json"]:
            keys = (
                "budget",
                "audit_share",
                "dataset",
                "seed",
                "seeds",
                "bad_below",
                "results",
                "summary",
                "best",
                "spread",
                "curves",
                "learning_curve",
                "estimates",
            )
            self.stdout.write(
                json.dumps(
                    {
                        **{k: report[k] for k in keys if k in report},
                        "files": [str(p) for p in written],
                    }
                )
            )
            return
        self.stdout.write(results_table(report))
        for path in written:
            self.stdout.write(f"wrote {path}")

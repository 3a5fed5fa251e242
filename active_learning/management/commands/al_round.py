from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from active_learning.allocation import STRATEGIES, LanguageAllocation
from active_learning.api import round_payload
from active_learning.round_runs import validation_messages
from active_learning.rounds import (
    RoundRequest,
    round_execute,
    round_preview,
    round_request_clean,
)
from annotation.models import Project


def allocation_table(allocation: list[LanguageAllocation]) -> str:
    def fmt(value: Any) -> str:
        return (
            "–" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
        )

    header = f"{'language':<10} {'pool':>8} {'capacity':>9} {'quality':>8} {'lag':>7} {'audit':>6} {'uncert.':>8} {'total':>6}"
    lines = [header, "-" * len(header)]
    for a in allocation:
        lines.append(
            f"{a.tag:<10} {a.pool:>8} {fmt(a.capacity):>9} {fmt(a.quality):>8} {fmt(a.lag):>7} "
            f"{a.audit:>6} {a.uncertainty:>8} {a.total:>6}"
        )
    lines.append(
        f"{'total':<10} {sum(a.pool for a in allocation):>8} {'':>9} {'':>8} {'':>7} "
        f"{sum(a.audit for a in allocation):>6} {sum(a.uncertainty for a in allocation):>8} "
        f"{sum(a.total for a in allocation):>6}"
    )
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Run an active-learning round: split the budget across languages, score the pool, "
        "pick a diverse batch per language and queue it (all or nothing)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument(
            "--budget", required=True, type=int, help="items to send to humans in this round"
        )
        parser.add_argument(
            "--strategy", default="parity", help=f"one of {', '.join(STRATEGIES)} (default parity)"
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="random seed (same seed, same round)"
        )
        parser.add_argument(
            "--preview", action="store_true", help="print the allocation only; queue nothing"
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument(
            "--features",
            choices=["hashing", "encoder"],
            default=None,
            help="item features (default hashing; encoder uses PARITY_ENCODER_PATH)",
        )
        parser.add_argument(
            "--encoder-path", default=None, help="local encoder folder (overrides the setting)"
        )
        parser.add_argument(
            "--causal-lm-path",
            default=None,
            help="local causal LM folder to rescore items sent without log-probs",
        )
        parser.add_argument(
            "--scorers", default=None, help="comma-separated scorer names (default: all usable)"
        )
        parser.add_argument(
            "--floor", type=int, default=None, help="at least this many items per language"
        )
        parser.add_argument(
            "--evaluator-capacity",
            type=int,
            default=None,
            help="judgments one qualified evaluator can take per round (default 200)",
        )
        parser.add_argument(
            "--no-capacity-cap",
            action="store_true",
            help="do not cap languages by evaluator capacity",
        )
        parser.add_argument(
            "--parameters", default=None, help="further round parameters as a JSON object"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        try:
            request = round_request_clean(
                project=project,
                budget=opts["budget"],
                strategy=opts["strategy"],
                seed=opts["seed"],
                parameters=_parameters(opts),
            )
            if opts["preview"]:
                self._preview(project, request, round_preview(request=request), opts["json"])
                return
            selection_round = round_execute(request=request)
        except ValidationError as exc:
            reasons = [
                f"{name}: {message}" if name else message
                for name, message in validation_messages(exc)
            ]
            raise CommandError("no round was run; " + "; ".join(reasons)) from None
        payload = round_payload(selection_round)
        if opts["json"]:
            self.stdout.write(json.dumps(payload))
            return
        rows = [
            LanguageAllocation(**{k: v for k, v in row.items() if k != "total"})
            for row in selection_round.allocation.values()
        ]
        self.stdout.write(
            f"{project.slug}: round {selection_round.pk} ({request.strategy}, budget {request.budget}, seed {request.seed})"
        )
        self.stdout.write(allocation_table(rows))
        summary = selection_round.summary
        model = payload["model_version"]
        self.stdout.write(
            f"queued {summary['selected']} items; scorers: {', '.join(summary['scorers']) or 'none (cold start)'}; "
            f"model version: {model['number'] if model else 'none yet'}; {summary['seconds']['total']:.1f} s"
        )

    def _preview(
        self,
        project: Project,
        request: RoundRequest,
        allocation: list[LanguageAllocation],
        as_json: bool,
    ) -> None:
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "preview": True,
                        "strategy": request.strategy,
                        "budget": request.budget,
                        "seed": request.seed,
                        "allocation": {a.tag: a.as_dict() for a in allocation},
                    }
                )
            )
            return
        self.stdout.write(
            f"{project.slug}: preview of a {request.strategy} round of {request.budget} (seed {request.seed})"
        )
        self.stdout.write(allocation_table(allocation))


def _parameters(opts: dict[str, Any]) -> dict[str, Any]:
    """The round's parameters: --parameters, then the options that name one."""
    parameters: dict[str, Any] = {}
    if opts["parameters"]:
        try:
            parameters = json.loads(opts["parameters"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--parameters is not valid JSON: {exc.msg}") from None
        if not isinstance(parameters, dict):
            raise CommandError("--parameters must be a JSON object")
    for option in ("features", "encoder_path", "causal_lm_path", "floor", "evaluator_capacity"):
        if opts[option] is not None:
            parameters[option] = opts[option]
    if opts["scorers"]:
        parameters["scorers"] = [s.strip() for s in opts["scorers"].split(",") if s.strip()]
    if opts["no_capacity_cap"]:
        parameters["evaluator_capacity"] = None
    return parameters

"""`python manage.py demo_al_round --lead USERNAME`: the demo's active-learning round.

The `demo` command (annotation) calls this by name once mlqe-pool, its evaluators and
guidelines are in place, because rounds are this app's business and `annotation` imports
nothing from it. It runs one round with the parity strategy on mlqe-pool — the labelled
third of the pool trains the committee, the allocation leans towards the language whose
quality lags — and then gives the round's picks the MLQE-PE raters' real scores as
historical judgments, as if its evaluators had judged them. The progress report then
shows each language before and after the round (Lead → Progress).

The round asks for a larger random audit slice than a default parity round (half the
budget, the most the parameters allow): quality is estimated from audit items only, so
this is what makes the intervals visibly narrower after one round.

Idempotent: a project that has had a round is left alone. A pool smaller than the demo's
default one (`demo --limit` under about 40, as the tests use) is left whole for the lead
to try a round on.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from active_learning.models import RoundItem, SelectionRound
from active_learning.parameters import pool_queryset
from active_learning.rounds import round_execute, round_request_clean
from annotation.demo_data import mlqe_judgments, numbered
from annotation.imports import judgments_import
from annotation.models import Project

PROJECT = "mlqe-pool"
BUDGET = 36
# Unlabelled pool items below which the demo runs no round, the pool left whole to the
# lead: the default demo pool has 81 (27 in each of three languages).
MIN_POOL = 75
PARAMETERS = {"audit_min_share": 0.5, "audit_max_share": 0.5}
SEED = 0


def demo_round_run(*, project: Project, lead: Any, budget: int = BUDGET) -> SelectionRound | None:
    """The round and its judgments (see the module docstring); None when the project has
    had a round or its pool is under MIN_POOL."""
    if SelectionRound.objects.filter(project=project).exists():
        return None
    pool = pool_queryset(project=project).count()
    if pool < MIN_POOL:  # looked up at call time: the tests lower it
        return None
    request = round_request_clean(
        project=project,
        budget=min(budget, pool // 2),
        strategy="parity",
        seed=SEED,
        parameters=dict(PARAMETERS),
    )
    with transaction.atomic():
        selection_round = round_execute(request=request, actor=lead)
        picks = RoundItem.objects.filter(round=selection_round).values_list(
            "item__external_id", "item__metadata__pair"
        )
        wanted: dict[str, set[str]] = {}
        for external_id, pair in picks:
            wanted.setdefault(pair, set()).add(external_id)
        lines = [
            line
            for pair, ids in sorted(wanted.items())
            for line in mlqe_judgments(pair)
            if line["item_external_id"] in ids
        ]
        judgments_import(project=project, records=numbered(lines), actor=lead)
    return selection_round


class Command(BaseCommand):
    help = (
        "Run the demo's active-learning round (parity strategy) on mlqe-pool and judge its picks "
        "with the MLQE-PE raters' scores."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--lead", required=True, help="username of the lead who runs it (must exist)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        lead = get_user_model().objects.filter(username=opts["lead"]).first()
        if lead is None:
            raise CommandError(
                f"--lead: there is no user {opts['lead']!r}; run `python manage.py demo` first"
            )
        project = Project.objects.filter(slug=PROJECT).first()
        if project is None:
            raise CommandError(f"there is no project {PROJECT}; run `python manage.py demo` first")
        try:
            selection_round = demo_round_run(project=project, lead=lead)
        except ValidationError as exc:
            raise CommandError(f"the demo round could not run: {' '.join(exc.messages)}") from None
        if opts["verbosity"] >= 1:
            if selection_round is None:
                self.stdout.write(f"{PROJECT}: no round (one ran already, or the pool is small)")
            else:
                self.stdout.write(
                    f"{PROJECT}: round {selection_round.pk} (parity) judged "
                    f"{selection_round.summary.get('selected', 0)} items"
                )

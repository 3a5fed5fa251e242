"""`python manage.py demo_guidelines --lead USERNAME`: guidelines and calibration for the demo.

The `demo` command (annotation) calls this by name once it has made its projects, gold
items and qualifications, because guidelines are this app's business and `annotation`
imports nothing from it. For each demo project that exists and has no guideline yet it
publishes version 1.0.0 from the Markdown under guidelines/demo/ (with its translations)
and records that every qualified evaluator read it — the evaluators still waiting for
calibration acknowledge it themselves, which is the start of their click-through. Then it
opens a calibration round for each demo (project, language) that has none, from that
language's gold items. Idempotent: a project that has a guideline, or a language that
has a round, is left alone, so a second run writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from annotation.models import Project, Qualification, QualificationStatus
from annotation.types import User
from guidelines.models import CalibrationRound
from guidelines.selectors import gold_items, guideline_current, project_language_get
from guidelines.services import (
    calibration_round_create,
    calibration_round_open,
    guideline_acknowledge,
    guideline_publish,
    guideline_translation_save,
)

TEXTS = Path(__file__).resolve().parents[2] / "demo"


@dataclass(frozen=True)
class DemoGuideline:
    source: str  # file under guidelines/demo/, English
    translations: dict[str, str] = field(default_factory=dict)  # language tag -> file


@dataclass(frozen=True)
class DemoCalibration:
    slug: str
    language: str
    pass_mark: float
    cooldown_seconds: int
    name: str


GUIDELINES = {
    "mlqe-da": DemoGuideline("mlqe.en.md"),
    "mlqe-pool": DemoGuideline("mlqe.en.md"),
    "wmt23-sxs": DemoGuideline("wmt.en.md"),
    "udhr-labels": DemoGuideline("udhr.en.md", translations={"ar": "udhr.ar.md"}),
}
CALIBRATIONS = (
    DemoCalibration(
        "udhr-labels",
        "ja",
        pass_mark=0.75,
        cooldown_seconds=300,
        name="Japanese: is it really Japanese?",
    ),
)


def _text(name: str) -> str:
    path = TEXTS / name
    if not path.is_file():
        raise CommandError(f"{path} is missing: the demo guidelines ship with the code")
    return path.read_text(encoding="utf-8")


class Command(BaseCommand):
    help = (
        "Publish the demo projects' guidelines (1.0.0, with translations), acknowledge them for the "
        "qualified demo evaluators, and open the demo calibration rounds. Run by `demo`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--lead", required=True, help="username of the lead who publishes (must exist)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        username: str = opts["lead"]
        lead = get_user_model().objects.filter(username=username).first()
        if lead is None:
            raise CommandError(
                f"--lead: there is no user {username!r}; run `python manage.py demo` first"
            )
        projects = {
            p.slug: p
            for p in Project.objects.filter(slug__in=[*GUIDELINES, *(c.slug for c in CALIBRATIONS)])
        }
        if not projects:
            raise CommandError(
                "none of the demo projects exists; run `python manage.py demo` first"
            )
        done: list[str] = []
        try:
            with transaction.atomic():
                for slug, spec in GUIDELINES.items():
                    if slug in projects:
                        done += guideline_seed(project=projects[slug], spec=spec, lead=lead)
                for calibration in CALIBRATIONS:
                    if calibration.slug in projects:
                        done += calibration_seed(
                            project=projects[calibration.slug], spec=calibration, lead=lead
                        )
        except ValidationError as exc:
            raise CommandError(
                f"demo guidelines could not be set up: {' '.join(exc.messages)}"
            ) from None
        if opts["verbosity"] >= 1:
            for line in done or [
                "Nothing to do: every demo guideline and calibration round is in place."
            ]:
                self.stdout.write(line)


def guideline_seed(*, project: Project, spec: DemoGuideline, lead: User) -> list[str]:
    """Version 1.0.0 and its translations, acknowledged by the project's qualified evaluators."""
    if guideline_current(project=project) is not None:
        return []  # the lead may have edited it since: never overwrite
    version = guideline_publish(
        project=project,
        body=_text(spec.source),
        changelog="First version.",
        actor=lead,
        source_language="en",
    )
    for tag, name in spec.translations.items():
        guideline_translation_save(
            project=project, version=version, language=tag, body=_text(name), actor=lead
        )
    readers = (
        Qualification.objects.filter(project=project, status=QualificationStatus.QUALIFIED)
        .order_by("evaluator_id")
        .values_list("evaluator_id", flat=True)
        .distinct()
    )
    users = get_user_model().objects.filter(pk__in=list(readers)).order_by("username")
    for evaluator in users:
        guideline_acknowledge(project=project, evaluator=evaluator, version=version.version)
    translated = f" (translated: {', '.join(spec.translations)})" if spec.translations else ""
    return [
        f"{project.slug}: published guideline {version.version}{translated}; "
        f"{len(users)} qualified evaluators acknowledged it"
    ]


def calibration_seed(*, project: Project, spec: DemoCalibration, lead: User) -> list[str]:
    """An open round of the language's gold items, unless the language has a round already."""
    language = project_language_get(project=project, tag=spec.language)
    if language is None:
        raise CommandError(f"{project.slug} has no language {spec.language}")
    if CalibrationRound.objects.filter(project=project, language=language).exists():
        return []
    gold = list(gold_items(project=project, language=language).values_list("pk", flat=True))
    if not gold:
        raise CommandError(
            f"{project.slug} has no gold items in {spec.language} for its calibration round; "
            "`python manage.py demo` creates them"
        )
    calibration_round = calibration_round_create(
        project=project,
        language=spec.language,
        pass_mark=spec.pass_mark,
        cooldown_seconds=spec.cooldown_seconds,
        gold_item_ids=gold,
        name=spec.name,
        actor=lead,
    )
    calibration_round_open(calibration_round=calibration_round, actor=lead)
    return [
        f"{project.slug}: opened the calibration round for {spec.language} with {len(gold)} gold items"
    ]

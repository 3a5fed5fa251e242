"""`python manage.py demo [--serve] [--limit N] [--port 8000]`: a working Parity with real data.

Migrates, then creates — idempotently, a second run writes nothing — a lead, evaluators
for several languages and three projects over the bundled real data (data/README.md):
a rating project over MLQE-PE, a pairwise project over WMT23 MQM and a labels project
over UDHR Article 1. Prints the URL and the logins; `--serve` then runs the development
server. Each project is built by its own function, so loading more into one of them
(historical judgments, say) is a few lines there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from annotation.demo_data import (
    MLQE_PAIRS,
    WMT_LPS,
    mlqe_items,
    mlqe_target_language,
    numbered,
    udhr_items,
    udhr_languages,
    wmt_items,
)
from annotation.imports import ImportRejected, items_import
from annotation.languages import language_get_or_create
from annotation.models import (
    EvaluatorLanguage,
    Item,
    Language,
    Project,
    Qualification,
    QualificationStatus,
    TaskType,
)
from annotation.projects import project_create_or_update
from annotation.qualification import (
    evaluator_language_add,
    evaluator_profile_ensure,
    qualification_grant,
    qualification_set,
)

# Well known on purpose: it is printed. Refused with DEBUG off unless --password is given.
DEMO_PASSWORD = "parity-demo"
DEFAULT_MLQE_LIMIT = 150
DEFAULT_WMT_LIMIT = 200


@dataclass(frozen=True)
class DemoEvaluator:
    username: str
    languages: tuple[str, ...]
    qualified: bool = True


EVALUATORS = (
    DemoEvaluator("hans", ("de",)),
    DemoEvaluator("li", ("zh",)),
    DemoEvaluator("emma", ("en",)),
    DemoEvaluator("amira", ("ar", "he")),
    DemoEvaluator("priya", ("hi",)),
    # Not yet qualified anywhere: shows the calibration gate.
    DemoEvaluator("yuki", ("ja",), qualified=False),
)
LEAD = "lead"

MLQE_SCHEMA = {
    "scale": {"min": 0, "max": 100, "labels": {"0": "nonsense", "50": "some meaning kept", "100": "perfect"}},
    "issues": ["mistranslation", "omission", "addition", "fluency", "terminology"],
}
WMT_SCHEMA = {"issues": ["mistranslation", "omission", "fluency", "style"]}
UDHR_SCHEMA = {
    "labels": ["correct", "minor_issues", "major_issues", "wrong_language"],
    "multi": False,
    "issues": ["spelling", "wrong_script", "mistranslation"],
}


class Command(BaseCommand):
    help = "Migrate, then create demo users and three projects with real multilingual data; --serve runs it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--serve", action="store_true", help="then run the development server")
        parser.add_argument(
            "--limit", type=int,
            help=f"items per MLQE-PE language pair and per WMT23 pair (default {DEFAULT_MLQE_LIMIT} "
                 f"and {DEFAULT_WMT_LIMIT})",
        )
        parser.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000)")
        parser.add_argument(
            "--password", help=f"password for new demo logins (default {DEMO_PASSWORD!r}; required with DEBUG off)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        limit: int | None = opts["limit"]
        if limit is not None and limit < 1:
            raise CommandError(f"--limit must be at least 1, not {limit}")
        port: int = opts["port"]
        if not 1 <= port <= 65535:
            raise CommandError(f"--port must be between 1 and 65535, not {port}")
        password: str | None = opts["password"]
        if password is None:
            if not settings.DEBUG:
                raise CommandError(
                    "DEBUG is off: the demo will not create logins with the published demo password. "
                    "Run with DEBUG=1, or pass --password."
                )
            password = DEMO_PASSWORD
        elif not password.strip():
            raise CommandError("--password must not be empty")
        if opts["serve"] and not settings.DEBUG:
            raise CommandError("--serve runs Django's development server; run it with DEBUG=1 (make demo does)")

        call_command("migrate", interactive=False, verbosity=0)
        try:
            with transaction.atomic():
                lead = demo_lead(password=password)
                evaluators = demo_evaluators(password=password)
                projects = [
                    mlqe_project(lead=lead, limit=limit or DEFAULT_MLQE_LIMIT),
                    wmt_project(lead=lead, limit=limit or DEFAULT_WMT_LIMIT),
                    udhr_project(lead=lead),
                ]
                for project in projects:
                    demo_qualifications(project=project, lead=lead, evaluators=evaluators)
        except (ValidationError, ImportRejected) as exc:
            raise CommandError(f"demo data could not be loaded: {exc}") from None

        self._report(projects=projects, evaluators=evaluators, password=password, port=port)
        if opts["serve"]:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)

    def _report(self, *, projects: list[Project], evaluators: dict[str, Any], password: str, port: int) -> None:
        out = self.stdout
        out.write("")
        for project in projects:
            total = Item.objects.filter(project=project).count()
            languages = project.languages.count()
            out.write(f"  {project.slug:<12} {project.task_type:<9} {total:>5} items in {languages} languages")
        out.write("")
        out.write(self.style.SUCCESS(f"Parity demo: http://127.0.0.1:{port}/"))
        out.write(f"Every demo login has the password: {password}")
        out.write(f"  {LEAD:<7} project lead of all three projects, and admin (/admin/)")
        for spec in EVALUATORS:
            user = evaluators[spec.username]
            rows = (
                Qualification.objects.filter(evaluator=user)
                .select_related("project", "language")
                .order_by("project__slug", "language__tag")
            )
            done = [f"{q.project.slug} ({q.language.tag})" for q in rows if q.status == QualificationStatus.QUALIFIED]
            waiting = [f"{q.project.slug} ({q.language.tag})" for q in rows if q.status != QualificationStatus.QUALIFIED]
            what = f"works {', '.join(done)}" if done else ""
            if waiting:
                what += ("; " if what else "") + f"pending calibration in {', '.join(waiting)}"
            out.write(f"  {spec.username:<7} {'+'.join(spec.languages):<6} {what}")
        out.write("Log in at /accounts/login/.")


# ---------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------


def _user(*, username: str, password: str, superuser: bool = False) -> Any:
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user  # a second run leaves an existing login (and its password) alone
    user = User(username=username, email=f"{username}@demo.parity.invalid", is_staff=superuser,
                is_superuser=superuser)
    user.set_password(password)
    user.save()
    return user


def demo_lead(*, password: str) -> Any:
    return _user(username=LEAD, password=password, superuser=True)


def demo_evaluators(*, password: str) -> dict[str, Any]:
    users = {}
    for spec in EVALUATORS:
        user = _user(username=spec.username, password=password)
        profile = evaluator_profile_ensure(user=user)
        for tag in spec.languages:
            language = language_get_or_create(tag=tag)
            if not EvaluatorLanguage.objects.filter(profile=profile, language=language).exists():
                evaluator_language_add(user=user, language=language)
        users[spec.username] = user
    return users


def demo_qualifications(*, project: Project, lead: Any, evaluators: dict[str, Any]) -> None:
    """Qualify each demo evaluator in each of their languages the project has; the
    not-yet-qualified one gets a pending qualification (waiting for calibration)."""
    project_tags = set(project.languages.values_list("tag", flat=True))
    for spec in EVALUATORS:
        user = evaluators[spec.username]
        for tag in spec.languages:
            if tag not in project_tags:
                continue
            language = Language.objects.get(tag=tag)
            existing = Qualification.objects.filter(evaluator=user, project=project, language=language).first()
            if existing is not None:
                continue  # leave whatever a lead or calibration has made of it since
            if spec.qualified:
                qualification_grant(project=project, evaluator=user, language=language, actor=lead,
                                    reason="demo evaluator")
            else:
                qualification_set(project=project, evaluator=user, language=language,
                                  status=QualificationStatus.PENDING, actor=lead,
                                  reason="demo evaluator waiting for calibration")


# ---------------------------------------------------------------------------------------
# Projects
# ---------------------------------------------------------------------------------------


def _project(*, lead: Any, slug: str, task_type: str, languages: list[str], name: str, schema: dict[str, Any],
             description: str, overlap: int = 3) -> Project:
    """The project as configured here; an existing one is left as it is (a second run writes nothing)."""
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        project, _ = project_create_or_update(
            slug=slug, task_type=task_type, languages=languages, name=name, schema=schema, overlap=overlap,
            description=description, actor=lead,
        )
    elif project.task_type != task_type:
        raise ValidationError(
            f"a project {slug} already exists as a {project.task_type} project; the demo needs it as {task_type}"
        )
    else:
        have = set(project.languages.values_list("tag", flat=True))
        missing = [tag for tag in languages if tag not in have]
        if missing:
            project.languages.add(*(language_get_or_create(tag=tag) for tag in missing))
    project.leads.add(lead)
    return project


def _import(*, project: Project, lines: Iterable[dict[str, Any]], lead: Any) -> None:
    """Import what is not there yet; nothing at all when every item already is."""
    lines = list(lines)
    ids = [line["external_id"] for line in lines]
    present = Item.objects.filter(project=project, external_id__in=ids).count()
    if present < len(ids):
        items_import(project=project, records=numbered(lines), actor=lead)


def mlqe_project(*, lead: Any, limit: int) -> Project:
    """Rating, 0–100: MLQE-PE machine translations in seven pairs; the translation's
    language (the pair's target) is the item's language."""
    languages = sorted({mlqe_target_language(pair) for pair in MLQE_PAIRS})
    project = _project(
        lead=lead, slug="mlqe-da", task_type=TaskType.RATING, languages=languages,
        name="MLQE-PE direct assessment", schema=MLQE_SCHEMA,
        description="How much of the source's meaning does the machine translation keep? "
                    "Real NMT outputs and their token log-probabilities from MLQE-PE (CC0 1.0; Fomicheva et "
                    "al., LREC 2022), seven language pairs.",
    )
    for pair in MLQE_PAIRS:
        _import(project=project, lines=mlqe_items(pair, limit), lead=lead)
    return project


def wmt_project(*, lead: Any, limit: int) -> Project:
    """Pairwise: two WMT23 systems' translations of the same source, en-de and zh-en."""
    languages = sorted({lp.split("-")[1] for lp in WMT_LPS})
    project = _project(
        lead=lead, slug="wmt23-sxs", task_type=TaskType.PAIRWISE, languages=languages,
        name="WMT23 side by side", schema=WMT_SCHEMA,
        description="Which translation of the source is better? Ten WMT23 systems' outputs, from "
                    "google/wmt-mqm-human-evaluation (Apache-2.0).",
    )
    for lp in WMT_LPS:
        _import(project=project, lines=wmt_items(lp, limit), lead=lead)
    return project


def udhr_project(*, lead: Any) -> Project:
    """Labels: Article 1 of the UDHR in 55 languages and 33 scripts."""
    project = _project(
        lead=lead, slug="udhr-labels", task_type=TaskType.LABELS, languages=udhr_languages(),
        name="UDHR Article 1 check", schema=UDHR_SCHEMA,
        description="Is this Article 1 of the Universal Declaration of Human Rights, correctly written in "
                    "your language? Texts from UDHR in Unicode (OHCHR translations).",
    )
    _import(project=project, lines=udhr_items(), lead=lead)
    return project

"""`python manage.py demo [--serve] [--limit N] [--port 8000]`: a working Parity with real data.

Migrates, then creates — idempotently, a second run writes nothing — a lead, evaluators
for several languages and four projects over the bundled real data (data/README.md):
a rating project over MLQE-PE (with gold items served as honeypots), a pairwise project
over WMT23 MQM (whose first German pairs three demo evaluators judge through the queue,
giving the MQM raters' verdicts, so adjudication has real disagreements), a labels project over UDHR Article 1 (with Japanese gold items for a
calibration round), and an MLQE-PE pool for active learning, on which one round with the
parity strategy has run and been judged with the data set's real scores, so its progress
report shows each language before and after it (a small --limit leaves the whole pool to
the lead). Guidelines and calibration rounds belong to the guidelines app, and rounds to
active_learning, so their own commands `demo_guidelines` and `demo_al_round` do that,
called here by name. Prints the URL, the logins and
what to try with each; `--serve` then serves it through gunicorn (threads), as deployed. Each project is built
by its own function, so loading more into one of them is a few lines there.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice, takewhile
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from annotation.audit import AL_ROUND_RUN
from annotation.demo_data import (
    MLQE_PAIRS,
    WMT_LPS,
    mlqe_external_id,
    mlqe_items,
    mlqe_judgments,
    mlqe_target_language,
    numbered,
    udhr_items,
    udhr_languages,
    wmt_items,
    wmt_judgments,
)
from annotation.imports import ImportRejected, items_import, judgments_import
from annotation.language_check import language_check_pending
from annotation.languages import language_get_or_create
from annotation.model_versions import model_versions_release
from annotation.models import (
    Assignment,
    AuditEvent,
    EvaluatorLanguage,
    Item,
    ItemStatus,
    JudgmentKind,
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
from annotation.queue import item_claim_next, judgment_submit
from annotation.types import User

# Well known on purpose: it is printed. Refused with DEBUG off unless --password is given.
DEMO_PASSWORD = "parity-demo"
DEFAULT_MLQE_LIMIT = 150
DEFAULT_WMT_LIMIT = 200
# The active-learning pool: items per pair from segment POOL_OFFSET on (past what mlqe-da
# loads at the default limit), the first third of them with their historical judgments so
# the committee has labels to learn from.
POOL_PAIRS = ("en-de", "en-zh", "ne-en")
POOL_OFFSET = 500
DEFAULT_POOL_SIZE = 40
HONEYPOT_RATE = 0.05
# The first WMT23 en-de pairs (two in five of --limit: 80 of the default 200) are judged
# in Parity, through the queue, by three German evaluators who give the verdicts of the
# pair's three MQM raters (in the data set's order); their historical judgments are not
# imported. Pairs the raters split on go to adjudication as any would, so the lead's
# adjudication page starts with real disagreements (five at the default limit).
WMT_REPLAY_LP = "en-de"
WMT_REPLAY_EVALUATORS = ("hans", "greta", "jonas")


@dataclass(frozen=True)
class DemoEvaluator:
    username: str
    languages: tuple[str, ...]
    qualified: bool = True


EVALUATORS = (
    DemoEvaluator("hans", ("de",)),
    # With hans, they replay the WMT23 raters' verdicts on the first German pairs (wmt_replay).
    DemoEvaluator("greta", ("de",)),
    DemoEvaluator("jonas", ("de",)),
    DemoEvaluator("li", ("zh",)),
    DemoEvaluator("emma", ("en",)),
    DemoEvaluator("amira", ("ar", "he")),
    DemoEvaluator("priya", ("hi",)),
    # Not yet qualified anywhere: shows the calibration gate.
    DemoEvaluator("yuki", ("ja",), qualified=False),
)
LEAD = "lead"

MLQE_SCHEMA = {
    "scale": {
        "min": 0,
        "max": 100,
        "labels": {"0": "nonsense", "50": "some meaning kept", "100": "perfect"},
    },
    "issues": ["mistranslation", "omission", "addition", "fluency", "terminology"],
}
WMT_SCHEMA = {"issues": ["mistranslation", "omission", "fluency", "style"]}
UDHR_SCHEMA = {
    "labels": ["correct", "minor_issues", "major_issues", "wrong_language"],
    "multi": False,
    "issues": ["spelling", "wrong_script", "mistranslation"],
}


@dataclass(frozen=True)
class DemoGold:
    """A real text from the bundled data made a gold item, with the answer and why."""

    source: str  # the data set's item external id
    external_id: str
    value: dict[str, Any]
    explanation: str
    language: str | None = None  # declared language, when not the text's own
    tolerance: dict[str, Any] | None = None


# MLQE-PE segments far past the default limit, clear-cut by their six raters' scores:
# the honeypots of mlqe-da (German, Chinese, English), ±15 points accepted (the raters'
# own spread on them).
MLQE_GOLD_PAIRS = ("en-de", "en-zh", "ro-en")
MLQE_GOLD_TOLERANCE = {"points": 15}
MLQE_GOLD = (
    DemoGold(
        mlqe_external_id("en-de", 902),
        "gold-mlqe-en-de-902",
        {"score": 98},
        "Complete, accurate and natural: every country is there, in order and correctly spelled. "
        "The six MLQE-PE raters gave 95–100.",
        tolerance=MLQE_GOLD_TOLERANCE,
    ),
    DemoGold(
        mlqe_external_id("en-zh", 999),
        "gold-mlqe-en-zh-999",
        {"score": 82},
        "Accurate and fluent: streets, sidewalks, balconies, windows and the crowd of mourners are all "
        "there. The raters gave 70–90.",
        tolerance=MLQE_GOLD_TOLERANCE,
    ),
    DemoGold(
        mlqe_external_id("en-zh", 979),
        "gold-mlqe-en-zh-979",
        {"score": 42},
        "Only part of the meaning survives: “emu” became 伊木 (a sound-alike, not the bird 鸸鹋) and "
        "“nasal turbinates” became 鼻涡轮, “nose turbines”; the spaces around the comma are a fluency "
        "error. The raters gave 38–55.",
        tolerance=MLQE_GOLD_TOLERANCE,
    ),
    DemoGold(
        mlqe_external_id("ro-en", 921),
        "gold-mlqe-ro-en-921",
        {"score": 99},
        "A faithful, idiomatic English sentence: nothing to correct. The raters gave 96–100.",
        tolerance=MLQE_GOLD_TOLERANCE,
    ),
    DemoGold(
        mlqe_external_id("ro-en", 933),
        "gold-mlqe-ro-en-933",
        {"score": 1},
        "A hallucination: the translation talks about employees and production, the source is a "
        "garbled caption about dancers. Fluent text unrelated to the source is at the bottom of the "
        "scale; all six raters gave 1.",
        tolerance=MLQE_GOLD_TOLERANCE,
    ),
)
# Japanese calibration for udhr-labels: UDHR has one text per language, so the round
# declares other languages' Article 1 as Japanese items (the look-alikes a Japanese
# reader must catch) beside the real Japanese text.
UDHR_JA_GOLD = (
    DemoGold(
        "udhr-jpn",
        "gold-ja-jpn",
        {"labels": ["correct"]},
        "The official Japanese translation: both sentences, natural, in kanji and hiragana as Japanese "
        "is written.",
    ),
    DemoGold(
        "udhr-cmn_hans",
        "gold-ja-cmn-hans",
        {"labels": ["wrong_language"]},
        "Mandarin Chinese in simplified characters (们, 权, 应), not Japanese: there is no kana at all "
        "(no は, を, である). Shared kanji do not make a text Japanese.",
        language="ja",
    ),
    DemoGold(
        "udhr-cmn_hant",
        "gold-ja-cmn-hant",
        {"labels": ["wrong_language"]},
        "Chinese in traditional characters (們, 權, 應; Japanese writes 権 and 応), with Chinese grammar "
        "and no kana: wrong language.",
        language="ja",
    ),
    DemoGold(
        "udhr-kor",
        "gold-ja-kor",
        {"labels": ["wrong_language"]},
        "Korean in Hangul. Japanese is never written in Hangul.",
        language="ja",
    ),
)


class Command(BaseCommand):
    help = "Migrate, then create demo users and three projects with real multilingual data; --serve runs it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--serve",
            action="store_true",
            help="then serve it at 127.0.0.1:PORT through gunicorn (threads)",
        )
        parser.add_argument(
            "--limit",
            type=int,
            help=f"items per MLQE-PE language pair and per WMT23 pair (default {DEFAULT_MLQE_LIMIT} "
            f"and {DEFAULT_WMT_LIMIT})",
        )
        parser.add_argument(
            "--port", type=int, default=8000, help="port for --serve (default 8000)"
        )
        parser.add_argument(
            "--password",
            help=f"password for new demo logins (default {DEMO_PASSWORD!r}; required with DEBUG off)",
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
            raise CommandError(
                "--serve runs the demo server (DEBUG pages); run it with DEBUG=1 (make demo does)"
            )

        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)  # the shared cache without DEBUG or CACHE_URL
        try:
            with transaction.atomic():
                lead = demo_lead(password=password)
                evaluators = demo_evaluators(password=password)
                projects = [
                    mlqe_project(lead=lead, limit=limit or DEFAULT_MLQE_LIMIT),
                    wmt_project(lead=lead, limit=limit or DEFAULT_WMT_LIMIT),
                    udhr_project(lead=lead),
                    mlqe_pool_project(
                        lead=lead, size=min(limit or DEFAULT_POOL_SIZE, DEFAULT_POOL_SIZE)
                    ),
                ]
                for project in projects:
                    demo_qualifications(project=project, lead=lead, evaluators=evaluators)
                    # As `import_items` does after an import: flags texts not in their declared
                    # language (the Japanese look-alikes among them). Only unchecked items.
                    language_check_pending(project=project)
                # By name: guidelines are the guidelines app's, which annotation never imports.
                call_command("demo_guidelines", lead=lead.get_username(), verbosity=0)
                # After the guidelines, which the evaluators must have acknowledged to claim.
                wmt_replay(
                    project=projects[1], evaluators=evaluators, limit=limit or DEFAULT_WMT_LIMIT
                )
                # After qualifications and guidelines: a round queues for qualified evaluators.
                call_command("demo_al_round", lead=lead.get_username(), verbosity=0)
        except (ValidationError, ImportRejected) as exc:
            raise CommandError(f"demo data could not be loaded: {exc}") from None

        self._report(projects=projects, evaluators=evaluators, password=password, port=port)
        if opts["serve"]:
            code = demo_serve(port=port)
            if code:
                raise CommandError(f"the demo server (gunicorn) stopped with exit code {code}")

    def _report(
        self, *, projects: list[Project], evaluators: dict[str, User], password: str, port: int
    ) -> None:
        out = self.stdout
        out.write("")
        for project in Project.objects.filter(pk__in=[p.pk for p in projects]).order_by(
            "created_at", "pk"
        ):
            notes = _project_notes(project)
            out.write(f"  {project.slug:<12} {project.task_type:<9} {' · '.join(notes)}")
        out.write("")
        out.write(self.style.SUCCESS(f"Parity demo: http://127.0.0.1:{port}/"))
        out.write(f"Every demo login has the password: {password}")
        out.write(f"  {LEAD:<7} project lead of every demo project, and admin (/admin/)")
        for spec in EVALUATORS:
            what = _evaluator_work(evaluators[spec.username])
            out.write(f"  {spec.username:<7} {'+'.join(spec.languages):<6} {what}")
        out.write("")
        out.write("What to try (log in at /accounts/login/):")
        for who, what in TRY:
            out.write(f"  {who:<7} {what}")


def _project_notes(project: Project) -> list[str]:
    """What the demo's closing report says of a project: items, guideline, gold, items in
    adjudication, flagged, and the active-learning pool."""
    items = Item.objects.filter(project=project)
    total = items.filter(is_gold=False).count()
    notes = [f"{total:>5} items in {project.languages.count()} languages"]
    if project.guideline_version:
        notes.append(f"guideline {project.guideline_version}")
    gold = items.filter(is_gold=True).count()
    if gold:
        rate = f", honeypots at {project.honeypot_rate:.0%}" if project.honeypot_rate else ""
        notes.append(f"{gold} gold items{rate}")
    in_adjudication = items.filter(status=ItemStatus.ADJUDICATION).count()
    if in_adjudication:
        notes.append(f"{in_adjudication} waiting for adjudication")
    flagged = items.filter(language_flagged=True).count()
    if flagged:
        notes.append(f"{flagged} flagged by the language check")
    if not project.queue_on_import:
        pool = items.filter(status=ItemStatus.POOL, is_gold=False)
        labelled = pool.filter(judgments__isnull=False).distinct().count()
        notes.append(f"{pool.count()} in the pool for active learning, {labelled} of them labelled")
        if AuditEvent.objects.filter(project=project, verb=AL_ROUND_RUN).exists():
            notes.append("one active-learning round judged (before and after: Progress)")
    return notes


def _evaluator_work(user: User) -> str:
    """Where a demo evaluator works, and where they still wait for calibration."""
    rows = (
        Qualification.objects.filter(evaluator=user)
        .select_related("project", "language")
        .order_by("project__slug", "language__tag")
    )
    done = [
        f"{q.project.slug} ({q.language.tag})"
        for q in rows
        if q.status == QualificationStatus.QUALIFIED
    ]
    waiting = [
        f"{q.project.slug} ({q.language.tag})"
        for q in rows
        if q.status != QualificationStatus.QUALIFIED
    ]
    what = f"works {', '.join(done)}" if done else ""
    if waiting:
        what += ("; " if what else "") + f"pending calibration in {', '.join(waiting)}"
    return what


# What each login shows of the loop, printed after the logins.
TRY = (
    (
        "yuki",
        "acknowledges guideline 1.0.0 of udhr-labels, takes the Japanese calibration round "
        "(is it really Japanese?), sees each answer explained, then works the Japanese items",
    ),
    (
        "amira",
        "works Arabic and Hebrew right to left in udhr-labels, beside the guideline in Arabic",
    ),
    (
        "hans",
        "rates German translations in mlqe-da (about one item in twenty is a honeypot), "
        "and picks the better of two in wmt23-sxs",
    ),
    (
        "lead",
        "opens a project's Lead page from the home page: overview, parity, agreement, adjudication, "
        "guideline, gold, calibration, honeypots, API tokens; wmt23-sxs has pairs its three German "
        "evaluators (hans, greta, jonas, replaying the WMT23 raters) split on, waiting for a final label",
    ),
    (
        "",
        "and in mlqe-pool runs an active-learning round (Lead → Active learning) that moves the most "
        "informative pool items into the queues of hans, li and emma; its Progress tab shows each "
        "language before and after the round the demo ran (parity strategy, judged with MLQE-PE's "
        "real scores)",
    ),
)


# ---------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------


def _user(*, username: str, password: str, superuser: bool = False) -> Any:
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user  # a second run leaves an existing login (and its password) alone
    user = User(
        username=username,
        email=f"{username}@demo.parity.invalid",
        is_staff=superuser,
        is_superuser=superuser,
    )
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


def demo_qualifications(*, project: Project, lead: User, evaluators: dict[str, User]) -> None:
    """Qualify each demo evaluator in each of their languages the project has; the
    not-yet-qualified one gets a pending qualification (waiting for calibration)."""
    project_tags = set(project.languages.values_list("tag", flat=True))
    for spec in EVALUATORS:
        user = evaluators[spec.username]
        for tag in spec.languages:
            if tag not in project_tags:
                continue
            language = Language.objects.get(tag=tag)
            existing = Qualification.objects.filter(
                evaluator=user, project=project, language=language
            ).first()
            if existing is not None:
                continue  # leave whatever a lead or calibration has made of it since
            if spec.qualified:
                qualification_grant(
                    project=project,
                    evaluator=user,
                    language=language,
                    actor=lead,
                    reason="demo evaluator",
                )
            else:
                qualification_set(
                    project=project,
                    evaluator=user,
                    language=language,
                    status=QualificationStatus.PENDING,
                    actor=lead,
                    reason="demo evaluator waiting for calibration",
                )


# ---------------------------------------------------------------------------------------
# Projects
# ---------------------------------------------------------------------------------------


def _project(
    *,
    lead: User,
    slug: str,
    task_type: str,
    languages: list[str],
    name: str,
    schema: dict[str, Any],
    description: str,
    overlap: int = 3,
    **options: Any,
) -> Project:
    """The project as configured here; an existing one is left as it is (a second run writes nothing)."""
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        project, _ = project_create_or_update(
            slug=slug,
            task_type=task_type,
            languages=languages,
            name=name,
            schema=schema,
            overlap=overlap,
            description=description,
            actor=lead,
            **options,
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


def _import(*, project: Project, lines: Iterable[dict[str, Any]], lead: User) -> None:
    """Import what is not there yet; nothing at all when every item already is."""
    lines = list(lines)
    ids = [line["external_id"] for line in lines]
    present = Item.objects.filter(project=project, external_id__in=ids).count()
    if present < len(ids):
        items_import(project=project, records=numbered(lines), actor=lead)


def _gold_lines(
    specs: Iterable[DemoGold], lines: Iterable[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """Import lines for gold items: each spec's source line under the gold id, with its answer."""
    by_id = {line["external_id"]: line for line in lines}
    for spec in specs:
        if spec.source not in by_id:
            raise ValidationError(
                f"the bundled data has no {spec.source} for gold item {spec.external_id}"
            )
        line = {
            **by_id[spec.source],
            "external_id": spec.external_id,
            "gold": {
                "value": spec.value,
                "tolerance": spec.tolerance,
                "explanation": spec.explanation,
            },
        }
        if spec.language:
            line["language"] = spec.language
        yield line


def _import_judgments(*, project: Project, lines: Iterable[dict[str, Any]], lead: User) -> None:
    """The data set's own raters as historical judgments (idempotent: a second run stores
    nothing), so the parity and agreement pages have real numbers from the start."""
    lines = list(lines)
    if lines:  # none when the demo evaluators replayed every pair (a tiny --limit)
        judgments_import(project=project, records=numbered(lines), actor=lead)


def mlqe_project(*, lead: User, limit: int) -> Project:
    """Rating, 0–100: MLQE-PE machine translations in seven pairs; the translation's
    language (the pair's target) is the item's language."""
    languages = sorted({mlqe_target_language(pair) for pair in MLQE_PAIRS})
    project = _project(
        lead=lead,
        slug="mlqe-da",
        task_type=TaskType.RATING,
        languages=languages,
        name="MLQE-PE direct assessment",
        schema=MLQE_SCHEMA,
        honeypot_rate=HONEYPOT_RATE,
        description="How much of the source's meaning does the machine translation keep? "
        "Real NMT outputs and their token log-probabilities from MLQE-PE (CC0 1.0; Fomicheva et "
        "al., LREC 2022), seven language pairs.",
    )
    for pair in MLQE_PAIRS:
        _import(project=project, lines=mlqe_items(pair, limit), lead=lead)
        _import_judgments(project=project, lines=mlqe_judgments(pair, limit), lead=lead)
    # MLQE-PE's NMT models: released with the data set (2020).
    model_versions_release(
        project=project, released_on=datetime.date(2020, 1, 1), notes="MLQE-PE NMT model"
    )
    # The honeypots, arriving at HONEYPOT_RATE among the production items.
    source_lines = [line for pair in MLQE_GOLD_PAIRS for line in mlqe_items(pair)]
    _import(project=project, lines=_gold_lines(MLQE_GOLD, source_lines), lead=lead)
    return project


def wmt_project(*, lead: User, limit: int) -> Project:
    """Pairwise: two WMT23 systems' translations of the same source, en-de and zh-en."""
    languages = sorted({lp.split("-")[1] for lp in WMT_LPS})
    project = _project(
        lead=lead,
        slug="wmt23-sxs",
        task_type=TaskType.PAIRWISE,
        languages=languages,
        name="WMT23 side by side",
        schema=WMT_SCHEMA,
        description="Which translation of the source is better? Ten WMT23 systems' outputs, from "
        "google/wmt-mqm-human-evaluation (Apache-2.0).",
    )
    for lp in WMT_LPS:
        _import(project=project, lines=wmt_items(lp, limit), lead=lead)
        replayed = (
            set(wmt_replay_ids(project=project, limit=limit)) if lp == WMT_REPLAY_LP else set()
        )
        _import_judgments(
            project=project,
            lead=lead,
            lines=(
                line
                for line in wmt_judgments(lp, limit)
                if line["item_external_id"] not in replayed
            ),
        )
    # The import registered the ten systems; the data set's year is their release.
    model_versions_release(
        project=project, released_on=datetime.date(2023, 1, 1), notes="WMT23 submission"
    )
    return project


def _wmt_replay_count(limit: int) -> int:
    return max(1, limit * 2 // 5)


def wmt_replay_ids(*, project: Project, limit: int) -> list[str]:
    """The en-de pairs the demo evaluators judge: the first ones in queue order (import
    order: they have no priority) without historical judgments, so a second run, or one
    with a larger --limit, neither imports the raters' verdicts for a pair the evaluators
    gave them for, nor replays a pair whose verdicts were imported."""
    lines = list(islice(wmt_items(WMT_REPLAY_LP, limit), _wmt_replay_count(limit)))
    ids = [line["external_id"] for line in lines]
    imported = set(
        Item.objects.filter(
            project=project, external_id__in=ids, judgments__kind=JudgmentKind.HISTORICAL
        ).values_list("external_id", flat=True)
    )
    # A contiguous run from the front: the queue serves the pairs in this order.
    return list(takewhile(lambda external_id: external_id not in imported, ids))


def wmt_replay(*, project: Project, evaluators: dict[str, User], limit: int) -> int:
    """Three German evaluators claim the replayed pairs through the queue and submit the
    MQM raters' verdicts (rater k of a pair → evaluator k); returns the judgments stored.
    Nothing when any of them has already worked in the project (a second run)."""
    people = [evaluators[name] for name in WMT_REPLAY_EVALUATORS]
    if Assignment.objects.filter(project=project, evaluator__in=people).exists():
        return 0
    ids = wmt_replay_ids(project=project, limit=limit)
    verdicts: dict[str, list[dict[str, Any]]] = {external_id: [] for external_id in ids}
    for line in wmt_judgments(WMT_REPLAY_LP, limit):
        if line["item_external_id"] in verdicts:
            verdicts[line["item_external_id"]].append(line["value"])
    german = Language.objects.get(tag=WMT_REPLAY_LP.split("-")[1])
    stored = 0
    for k, person in enumerate(people):
        for external_id in ids:
            assignment = item_claim_next(evaluator=person, project=project, language=german)
            if assignment is None or assignment.item.external_id != external_id:
                served = assignment.item.external_id if assignment else "nothing"
                raise ValidationError(
                    f"wmt23-sxs: the queue served {served} to {person.get_username()}, "
                    f"not {external_id}; the demo replays pairs in queue order"
                )
            judgment_submit(
                assignment=assignment,
                evaluator=person,
                value=verdicts[external_id][k],
                seconds=30.0,
            )
            stored += 1
    return stored


def udhr_project(*, lead: User) -> Project:
    """Labels: Article 1 of the UDHR in 55 languages and 33 scripts."""
    project = _project(
        lead=lead,
        slug="udhr-labels",
        task_type=TaskType.LABELS,
        languages=udhr_languages(),
        name="UDHR Article 1 check",
        schema=UDHR_SCHEMA,
        description="Is this Article 1 of the Universal Declaration of Human Rights, correctly written in "
        "your language? Texts from UDHR in Unicode (OHCHR translations).",
    )
    lines = list(udhr_items())
    _import(project=project, lines=lines, lead=lead)
    # Gold items of the Japanese calibration round (demo_guidelines opens the round).
    _import(project=project, lines=_gold_lines(UDHR_JA_GOLD, lines), lead=lead)
    return project


def mlqe_pool_project(*, lead: User, size: int) -> Project:
    """Rating, 0–100, for active learning: MLQE-PE items that stay in the pool until a lead
    runs a round; a third of them carry the data set's historical judgments (labels)."""
    languages = sorted({mlqe_target_language(pair) for pair in POOL_PAIRS})
    project = _project(
        lead=lead,
        slug="mlqe-pool",
        task_type=TaskType.RATING,
        languages=languages,
        name="MLQE-PE active-learning pool",
        schema=MLQE_SCHEMA,
        queue_on_import=False,
        description="Machine translations waiting in the pool: an active-learning round scores them by "
        "uncertainty and queues the most informative ones per language. MLQE-PE (CC0 1.0).",
    )
    labelled = max(1, size // 3)
    for pair in POOL_PAIRS:
        lines = list(islice(mlqe_items(pair), POOL_OFFSET, POOL_OFFSET + size))
        _import(project=project, lines=lines, lead=lead)
        ids = {line["external_id"] for line in lines[:labelled]}
        judged = (
            line
            for line in mlqe_judgments(pair, POOL_OFFSET + labelled)
            if line["item_external_id"] in ids
        )
        _import_judgments(project=project, lines=judged, lead=lead)
    return project


DEMO_THREADS = 8


def demo_serve(*, port: int) -> int:
    """Serve the demo through gunicorn (one process, DEMO_THREADS threads) on 127.0.0.1.

    Not `runserver`: its kept-alive connections stall about 40 ms a request, and it serves
    one request at a time per connection. On SQLite the threads read side by side (WAL
    journal, settings.DATABASES) while writers take turns; the same configuration file as
    production (deploy/gunicorn.conf.py), only bound to loopback."""
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": str(DEMO_THREADS),
        "GUNICORN_LOG_LEVEL": "warning",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(settings.BASE_DIR / "deploy" / "gunicorn.conf.py"),
        "--access-logfile",
        "/dev/null",
        "parity.wsgi:application",
    ]
    try:
        return subprocess.run(command, cwd=settings.BASE_DIR, env=env, check=False).returncode
    except KeyboardInterrupt:
        return 0

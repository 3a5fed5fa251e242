#!/usr/bin/env python
"""Progress-report benchmark: quality per language across model versions and weeks, with
bootstrap CIs, the CI of every change and every gap, breakdowns, alpha per language, and
(pairwise) Bradley–Terry strengths.

Two parts, each step printed with its seconds and the process's peak memory:

1. arrays: J judgments (default 1,000,000; 3 per item) in L languages (10) of V model
   versions (20), judged over W weeks (26), generated in memory with known effects and
   held as arrays — what the report has once the judgments are loaded. Timed: one score
   per item from its judgments, the series by model version and by week
   (annotation.progress.stats.progress_series), a breakdown, alpha with its CI per
   language (annotation.agreement.alpha_with_ci), and for a pairwise project the
   Bradley–Terry strengths of the V versions per language with CIs. All with R
   resamples (1,000). Target on the 2-core machine: under 5 s in all (rating project).
2. database: the real path. A rating and a pairwise project of J_db judgments each
   (default 1,000,000 on PostgreSQL, 100,000 on SQLite) with dated model versions, written
   by COPY into a scratch PostgreSQL database (--database-url; bulk_create into a SQLite
   file without it), then, in a fresh process, what a pipeline gets:
   GET /api/v1/projects/<slug>/parity/?by=model|period (Django's test client) and
   `manage.py parity --by model|period --json`, --runs times each: the median and p95 of
   the wall clock, the CPU seconds of the process and of its PostgreSQL backend, the load
   average, and the process's peak memory. --keep-db keeps the database
   (parity_bench_progress_kept) and --reuse-db times it again without seeding.

    .venv/bin/python bench/progress.py --runs 5 \
        --database-url postgres://postgres@127.0.0.1:5432/postgres     # both parts
    .venv/bin/python bench/progress.py --skip-db                        # part 1 only
    .venv/bin/python bench/progress.py --skip-arrays --db-judgments 30000 --runs 1 \
        --database-url postgres://postgres@127.0.0.1:5432/postgres     # a small part 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._util import (  # noqa: E402
    LANGUAGES,
    django_setup,
    machine_description,
    measure,
    peak_memory_mb,
    require_postgres,
    scratch_database,
)

START_DAY = "2025-01-06"  # a Monday
KEPT_DB = "parity_bench_progress_kept"


def _generate(args: argparse.Namespace) -> dict[str, Any]:
    """Items with language, version, week, domain; three ratings each around a quality that
    rises with the version and differs by language."""
    import numpy as np

    rng = np.random.default_rng(args.seed)
    n_items = args.judgments // args.raters
    language = rng.integers(0, args.languages, n_items)
    version = rng.integers(0, args.versions, n_items)
    # Later versions are released later: their items are judged later.
    week = np.minimum(
        args.weeks - 1, (version * args.weeks) // args.versions + rng.integers(0, 3, n_items)
    )
    domain = rng.integers(0, 5, n_items)
    quality = 2.5 + 1.5 * version / max(1, args.versions - 1) - 0.08 * language
    truth = np.clip(np.round(quality[None, :] + rng.normal(0, 0.8, (args.raters, n_items))), 1, 5)
    noisy = rng.random((args.raters, n_items)) < 0.2
    ratings = np.where(noisy, rng.integers(1, 6, (args.raters, n_items)), truth).astype(np.int64)
    return {
        "language": language,
        "version": version,
        "week": week,
        "domain": domain,
        "ratings": ratings,
        "n_items": n_items,
    }


def part_arrays(args: argparse.Namespace) -> None:
    import numpy as np

    from annotation.agreement import alpha_with_ci
    from annotation.progress.stats import (
        bootstrap_group_means,
        bradley_terry_bootstrap,
        progress_series,
    )

    data = _generate(args)
    n_items = data["n_items"]
    print(
        f"\n1. arrays: {n_items * args.raters:,} judgments on {n_items:,} items, {args.languages} languages, "
        f"{args.versions} model versions, {args.weeks} weeks, {args.resamples:,} resamples"
    )
    # The judgments as the database gives them: one row per judgment (item, rater, score).
    item = np.tile(np.arange(n_items), args.raters)
    score = data["ratings"].ravel()
    totals: list[tuple[float, float]] = []
    per_item, _ = measure(
        "one score per item (mean of its judgments)",
        lambda: (
            np.bincount(item, weights=score, minlength=n_items)
            / np.bincount(item, minlength=n_items)
        ),
        totals=totals,
    )
    L, V, W = args.languages, args.versions, args.weeks
    by_model, _ = measure(
        f"series by model version ({L}×{V} groups, changes, gaps)",
        lambda: progress_series(
            data["language"],
            data["version"],
            per_item,
            n_languages=L,
            n_keys=V,
            resamples=args.resamples,
            seed=args.seed,
        ),
        totals=totals,
    )
    measure(
        f"series by week ({L}×{W} groups, changes, gaps)",
        lambda: progress_series(
            data["language"],
            data["week"],
            per_item,
            n_languages=L,
            n_keys=W,
            resamples=args.resamples,
            seed=args.seed,
        ),
        totals=totals,
    )
    measure(
        f"breakdown by domain ({L}×5 groups)",
        lambda: bootstrap_group_means(
            data["language"] * 5 + data["domain"],
            per_item,
            n_groups=L * 5,
            resamples=args.resamples,
            seed=args.seed,
        ),
        totals=totals,
    )

    def alphas() -> list[Any]:
        out = []
        lang_of_judgment = np.tile(data["language"], args.raters)
        for lang in range(L):
            mask = lang_of_judgment == lang
            out.append(
                alpha_with_ci(
                    unit=item[mask],
                    value=score[mask] - 1,
                    domain=[1, 2, 3, 4, 5],
                    level="ordinal",
                    resamples=args.resamples,
                    seed=args.seed,
                    package=False,
                )
            )
        return out

    results, _ = measure(f"alpha with CI per language ({L} languages)", alphas, totals=totals)
    print(
        f"   rating project, all steps: {sum(t[0] for t in totals):.3f} s wall, "
        f"{sum(t[1] for t in totals):.3f} s CPU"
    )
    changes = by_model.change_verdict[:, 1:]
    print(
        f"   {int((changes == 1).sum())} of {changes.size} version-to-version changes called better, "
        f"{int((changes == -1).sum())} worse; alpha of {LANGUAGES[0]}: {results[0].alpha:.3f} "
        f"[{results[0].ci[0]:.3f}, {results[0].ci[1]:.3f}]"
    )

    # Pairwise: each item compares two versions; the later one tends to win.
    rng = np.random.default_rng(args.seed + 7)
    left = data["version"]
    right = (left + rng.integers(1, V, n_items)) % V
    p_left = 1 / (1 + np.exp(-(left - right) * 0.15))
    share = (rng.random((args.raters, n_items)) < p_left).mean(axis=0)

    def bt_all() -> list[Any]:
        return [
            bradley_terry_bootstrap(
                left[m], right[m], share[m], n_models=V, resamples=args.resamples, seed=args.seed
            )
            for m in (data["language"] == lang for lang in range(L))
        ]

    fits, _ = measure(
        f"pairwise: Bradley–Terry per language ({V} versions, CIs)", bt_all, totals=totals
    )
    print(
        f"   pairwise project (all steps above and Bradley–Terry): {sum(t[0] for t in totals):.3f} s wall, "
        f"{sum(t[1] for t in totals):.3f} s CPU"
    )
    print(
        f"   {LANGUAGES[0]}: strongest version v{int(np.nanargmax(fits[0].strength))}, "
        f"strength CI width {float(np.nanmean(fits[0].ci[:, 1] - fits[0].ci[:, 0])):.3f}"
    )


def _setup_django(database_url: str | None, sqlite_path: str) -> None:
    """Django with the production settings (bench._util.django_setup); the API is timed
    through Django's test client, whose host is "testserver"."""
    # WhiteNoise warns once per process about the static folder a bench does not build: an
    # empty one, made by the first process, shared with the report process, removed at exit.
    if "STATIC_ROOT" not in os.environ:
        import atexit
        import shutil

        os.environ["STATIC_ROOT"] = tempfile.mkdtemp(prefix="parity-bench-static-")
        atexit.register(shutil.rmtree, os.environ["STATIC_ROOT"], True)
    django_setup(database_url, sqlite_path, ALLOWED_HOSTS="localhost,testserver")


def _constants(model: Any, template: Any, varying: Sequence[str]) -> tuple[list[str], str]:
    """The columns of `model` other than `varying` (and the id the database assigns), and
    the COPY text of `template`'s values for them: the defaults every row shares."""
    columns = [
        f.column
        for f in model._meta.concrete_fields
        if f.column not in varying and not (f.primary_key and "id" not in varying)
    ]
    fields = {f.column: f for f in model._meta.concrete_fields}
    from annotation.imports.pg_copy import _copy_text

    return columns, "\t".join(_copy_text(getattr(template, fields[c].attname)) for c in columns)


def _project_seed(args: argparse.Namespace, task_type: str) -> Any:
    """A project of `args.db_judgments` judgments (args.raters per item) with known
    effects: items and historical judgments written by COPY on PostgreSQL (bulk_create on
    SQLite), model versions registered with release dates, then VACUUM ANALYZE, as
    autovacuum would leave the tables a minute after an import."""
    import datetime

    import numpy as np
    from django.db import connection, transaction

    from annotation.model_versions import model_versions_register
    from annotation.models import ExternalRater, Item, Judgment, ModelVersion, TaskType
    from annotation.projects import project_create_or_update

    sub = argparse.Namespace(**{**vars(args), "judgments": args.db_judgments})
    data = _generate(sub)
    n_items, raters = data["n_items"], args.raters
    tags = list(LANGUAGES[: args.languages])
    pairwise = task_type == TaskType.PAIRWISE
    slug = f"bench-progress-{task_type}"
    project, _ = project_create_or_update(
        slug=slug,
        task_type=task_type,
        languages=tags,
        schema={"issues": []}
        if pairwise
        else {"scale": {"min": 1, "max": 5, "labels": {}}, "issues": []},
        overlap=raters,
    )
    language_ids = {lang.tag: lang.pk for lang in project.languages.all()}
    lang_id = np.array([language_ids[t] for t in tags])[data["language"]]
    names = [f"model-v{v:02d}" for v in range(args.versions)]
    model_versions_register(project=project, names=names)
    for v, name in enumerate(names):
        ModelVersion.objects.filter(project=project, name=name).update(
            released_on=datetime.date(2024, 1, 1) + datetime.timedelta(days=20 * v)
        )
    rng = np.random.default_rng(args.seed + 7)
    version = data["version"]
    if pairwise:
        # Each item compares its version with another; the later one tends to win, by
        # language; one judgment in ten is a tie.
        other = (version + rng.integers(1, args.versions, n_items)) % args.versions
        p_a = 1 / (1 + np.exp(-(version - other) * 0.15 + 0.05 * data["language"]))
        wins = rng.random((raters, n_items)) < p_a
        tie = rng.random((raters, n_items)) < 0.1
        choice = np.where(tie, 2, np.where(wins, 0, 1))
        strength = rng.integers(1, 3, (raters, n_items))
        values = [
            '{"choice": "a", "strength": 1}',
            '{"choice": "a", "strength": 2}',
            '{"choice": "b", "strength": 1}',
            '{"choice": "b", "strength": 2}',
            '{"choice": "tie"}',
            '{"choice": "tie"}',
        ]
        value_code = choice * 2 + strength - 1
    else:
        values = [f'{{"score": {s}}}' for s in range(6)]
        value_code = data["ratings"]
    start = datetime.datetime.fromisoformat(START_DAY).replace(tzinfo=datetime.UTC)
    rater_rows = ExternalRater.objects.bulk_create(
        [ExternalRater(project=project, external_id=f"r{k}") for k in range(raters)]
    )
    week = data["week"]

    def models_of(u: int) -> tuple[str, str, str]:
        if pairwise:
            return "", names[int(version[u])], names[int(other[u])]
        return names[int(version[u])], "", ""

    if connection.vendor != "postgresql":
        with transaction.atomic():
            chunk = 20_000
            for lo in range(0, n_items, chunk):
                hi = min(n_items, lo + chunk)
                items = Item.objects.bulk_create(
                    [
                        Item(
                            project=project,
                            language_id=int(lang_id[u]),
                            external_id=f"u{u}",
                            response="…",
                            content_hash=f"{u:064x}",
                            status="done",
                            open_slots=0,
                            model=models_of(u)[0],
                            model_a=models_of(u)[1],
                            model_b=models_of(u)[2],
                            metadata={"domain": f"d{int(data['domain'][u])}"},
                        )
                        for u in range(lo, hi)
                    ],
                    batch_size=2000,
                )
                import json

                Judgment.objects.bulk_create(
                    [
                        Judgment(
                            item=it,
                            external_rater=rater_rows[r],
                            kind="historical",
                            value=json.loads(values[int(value_code[r, u])]),
                            created_at=start
                            + datetime.timedelta(weeks=int(week[u]), hours=r, minutes=u % 60),
                        )
                        for it, u in zip(items, range(lo, hi), strict=True)
                        for r in range(raters)
                    ],
                    batch_size=5000,
                )
        return project

    # PostgreSQL: COPY. The columns every row shares come from an unsaved template row
    # (the model's defaults), so a new column with a default needs no change here.
    now = datetime.datetime.now(datetime.UTC)
    item_varying = ("id", "language_id", "external_id", "model", "model_a", "model_b")
    item_varying += ("metadata", "content_hash")
    template = Item(project=project, response="…", status="done", open_slots=0, created_at=now)
    template.updated_at = now
    item_columns, item_constants = _constants(Item, template, item_varying)
    judgment_varying = ("item_id", "external_rater_id", "value", "created_at")
    judgment_columns, judgment_constants = _constants(
        Judgment, Judgment(kind="historical"), judgment_varying
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotation_item")
        first_id = int(cursor.fetchone()[0]) + 1
    ids = first_id + np.arange(n_items)
    domains = [f'{{"domain": "d{k}"}}' for k in range(5)]
    week_start = [(start + datetime.timedelta(weeks=w)) for w in range(args.weeks)]
    raw = connection.connection  # the psycopg connection under Django's
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
        with raw.cursor() as cursor:
            copy_sql = "COPY annotation_item ({}) FROM STDIN"
            with cursor.copy(copy_sql.format(", ".join([*item_varying, *item_columns]))) as copy:
                for lo in range(0, n_items, 50_000):
                    lines = []
                    for u in range(lo, min(n_items, lo + 50_000)):
                        model, model_a, model_b = models_of(u)
                        lines.append(
                            f"{ids[u]}\t{lang_id[u]}\tu{u}\t{model}\t{model_a}\t{model_b}\t"
                            f"{domains[data['domain'][u]]}\t{u:064x}\t{item_constants}\n"
                        )
                    copy.write("".join(lines))
            columns = ", ".join([*judgment_varying, *judgment_columns])
            with cursor.copy(f"COPY annotation_judgment ({columns}) FROM STDIN") as copy:
                for lo in range(0, n_items, 50_000):
                    lines = []
                    for u in range(lo, min(n_items, lo + 50_000)):
                        when = week_start[week[u]] + datetime.timedelta(minutes=u % 600)
                        for r in range(raters):
                            lines.append(
                                f"{ids[u]}\t{rater_rows[r].pk}\t{values[value_code[r, u]]}\t"
                                f"{(when + datetime.timedelta(hours=r)).isoformat()}\t"
                                f"{judgment_constants}\n"
                            )
                    copy.write("".join(lines))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('annotation_item', 'id'), "
                "(SELECT max(id) FROM annotation_item))"
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE annotation_item")
        cursor.execute("VACUUM ANALYZE annotation_judgment")
    return project


def _report_runs(args: argparse.Namespace) -> None:
    """In a fresh process (so that its peak memory is the report's, not the seeding's):
    the report as the API and the command give it, --runs times each, by model version
    and by week. Prints each run's wall-clock seconds, the median and p95, the median CPU
    seconds of this process and of the database server's backend (its parallel workers,
    if the planner starts any, are not counted), the load average, and the peak memory."""
    import io
    import json
    import statistics

    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from annotation.models import Project
    from annotation.tokens import api_token_create
    from bench._util import cpu_used_between, percentile, processes_cpu

    project = Project.objects.get(slug=args.report_child)
    _, token = api_token_create(project=project, scope="read", name="bench")
    client = Client(headers={"authorization": f"Bearer {token}"})
    url = reverse("api:parity", args=[project.slug])
    database = connection.settings_dict["NAME"]
    postgres = connection.vendor == "postgresql"

    def server_cpu() -> dict[int, float]:
        if not postgres:
            return {}
        return processes_cpu(cmdline_contains=f" {database} ", starts_with="postgres:")

    def loads() -> str:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())

    print(f"   load average before: {loads()}", flush=True)
    for by in ("model", "period"):
        for path in ("api", "command"):
            times, cpus, servers, load = [], [], [], []
            for _run in range(args.runs):
                before = server_cpu()
                started, cpu_started = time.perf_counter(), time.process_time()
                if path == "api":
                    # secure: production settings redirect plain HTTP to HTTPS.
                    response = client.get(url, {"by": by, "resamples": args.resamples}, secure=True)
                    if response.status_code != 200:
                        sys.exit(
                            f"the API answered {response.status_code}: {response.content[:300]!r}"
                        )
                    report = json.loads(response.content)
                else:
                    out = io.StringIO()
                    call_command(
                        "parity",
                        project=project.slug,
                        by=by,
                        json=True,
                        resamples=args.resamples,
                        stdout=out,
                    )
                    report = json.loads(out.getvalue())
                times.append(time.perf_counter() - started)
                cpus.append(time.process_time() - cpu_started)
                servers.append(cpu_used_between(before, server_cpu()))
                load.append(os.getloadavg()[0])
            label = (
                f"GET /api/v1/projects/{project.slug}/parity/?by={by}"
                if path == "api"
                else f"manage.py parity --by {by} --json"
            )
            print(
                f"   {label:<64} median {statistics.median(times):5.2f} s  p95 "
                f"{percentile(times, 95):5.2f} s  CPU {statistics.median(cpus):4.2f} s + server "
                f"{statistics.median(servers):4.2f} s  load {min(load):.1f}–{max(load):.1f}  "
                f"(runs: {', '.join(f'{t:.2f}' for t in times)})",
                flush=True,
            )
        row = report["languages"][0]
        last = row["series"][-1]

        def fmt(x: float | None) -> str:
            return "—" if x is None else f"{x:.3f}"

        print(
            f"     {row['language']}: {len(report['keys'])} keys, latest {last['key']} quality "
            f"{fmt(last['value'])} [{fmt(last['ci'][0])}, {fmt(last['ci'][1])}]"
            + (
                f"; strongest {row['bradley_terry'][0]['model']}"
                if row.get("bradley_terry")
                else ""
            )
        )
    print(f"   load average after:  {loads()}")
    print(f"   peak resident memory of the report process: {peak_memory_mb():.0f} MiB", flush=True)


def part_db(args: argparse.Namespace, database_url: str | None, sqlite_path: str) -> None:
    from django.core.management import call_command

    print(
        f"\n2. database: {args.db_judgments:,} judgments per project, {args.languages} languages, "
        f"{args.versions} model versions ({'PostgreSQL' if database_url else 'SQLite'}), "
        f"{args.resamples:,} resamples, {args.runs} runs per path",
        flush=True,
    )
    call_command("migrate", interactive=False, verbosity=0)
    for task_type in ("rating", "pairwise"):
        project, _ = measure(
            f"setup: {task_type} project, seeded (not the measure)",
            lambda task_type=task_type: _project_seed(args, task_type),
        )
        _report_child(args, project.slug, database_url, sqlite_path)


def _report_child(
    args: argparse.Namespace, slug: str, database_url: str | None, sqlite_path: str
) -> None:
    import subprocess

    command = [sys.executable, str(Path(__file__).resolve()), "--report-child", slug]
    command += ["--runs", str(args.runs), "--resamples", str(args.resamples)]
    if database_url:
        command += ["--database-url", database_url]
    else:
        command += ["--sqlite-path", sqlite_path]
    finished = subprocess.run(command, check=False)
    if finished.returncode:
        print(f"   the report process for {slug} failed (exit code {finished.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--judgments", type=int, default=1_000_000, help="part 1 judgments (default 1000000)"
    )
    parser.add_argument(
        "--db-judgments",
        type=int,
        help="part 2 judgments per project (default 1000000 on PostgreSQL, 100000 on SQLite)",
    )
    parser.add_argument("--raters", type=int, default=3, help="judgments per item (default 3)")
    parser.add_argument(
        "--languages", type=int, default=10, help=f"languages (1–{len(LANGUAGES)}, default 10)"
    )
    parser.add_argument("--versions", type=int, default=20, help="model versions (default 20)")
    parser.add_argument("--weeks", type=int, default=26, help="weeks of judging (default 26)")
    parser.add_argument(
        "--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)"
    )
    parser.add_argument("--runs", type=int, default=3, help="part 2 runs per path (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-db", action="store_true", help="part 1 only")
    parser.add_argument("--skip-arrays", action="store_true", help="part 2 only")
    parser.add_argument(
        "--database-url", help="PostgreSQL server for part 2 (a scratch database is created)"
    )
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="keep the scratch database (parity_bench_progress_kept) after the run",
    )
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="time the report on the database a --keep-db run left, without seeding again",
    )
    # Internal: the report process part 2 starts on the seeded database.
    parser.add_argument("--report-child", help=argparse.SUPPRESS)
    parser.add_argument("--sqlite-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report_child:
        _setup_django(args.database_url, args.sqlite_path or "")
        _report_runs(args)
        return
    if args.db_judgments is None:
        args.db_judgments = 1_000_000 if args.database_url else 100_000
    if (
        args.judgments < 100
        or args.db_judgments < 100
        or args.raters < 2
        or args.versions < 2
        or args.weeks < 2
        or args.resamples < 0
        or args.runs < 1
        or not 1 <= args.languages <= len(LANGUAGES)
    ):
        parser.error(
            "need ≥ 100 judgments, ≥ 2 raters, versions and weeks, ≥ 0 resamples, ≥ 1 run, "
            f"1–{len(LANGUAGES)} languages"
        )
    print(f"bench/progress.py on {machine_description()}")
    with tempfile.TemporaryDirectory(prefix="parity-bench-progress-") as tmp:
        if args.database_url and not args.skip_db:
            server = require_postgres(args.database_url, script="bench/progress.py --database-url")
            if args.reuse_db:
                from bench._util import url_with_database

                for slug in ("bench-progress-rating", "bench-progress-pairwise"):
                    _report_child(args, slug, url_with_database(server, KEPT_DB), "")
                return
            name = KEPT_DB if args.keep_db else f"parity_bench_progress_{os.getpid()}"
            with scratch_database(server, name, keep=args.keep_db) as url:
                _setup_django(url, "")
                if not args.skip_arrays:
                    part_arrays(args)
                part_db(args, url, "")
                # The report process's connections must be gone before the drop (it has
                # exited); this process's own one closes here.
                from django.db import connections

                connections.close_all()
        else:
            sqlite_path = str(Path(tmp) / "bench.sqlite3")
            _setup_django(None, sqlite_path)
            if not args.skip_arrays:
                part_arrays(args)
            if not args.skip_db:
                part_db(args, None, sqlite_path)
    print(f"\npeak resident memory of the process: {peak_memory_mb():.0f} MiB")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Incremental preference pulls (`since`) against full exports, on PostgreSQL.

1. a small pairwise project (100 items × 4 raters = 400 judgments) imported through the
   services (`items_import`, `judgments_import`) into the new database; then a pairwise
   project of N items with three historical judgments each, in set-based SQL (INSERT …
   SELECT FROM generate_series, and bench/import_export.py's judgments), with autovacuum
   held off the item and judgment tables: the state right after a bulk import;
2. **judgment export right after an import**: at once, before any ANALYZE, the small
   project's `judgment_export` (what GET …/export/judgments/ streams) timed, and the
   export's query read through a cursor with PostgreSQL's default `cursor_tuple_fraction`
   (0.1) and with 1.0, with both plans; the same again after the ANALYZE of the item table that
   `items_import` runs when an import at least doubles it (the SQL load bypassed it); then
   VACUUM ANALYZE and autovacuum back on (what autovacuum does within a minute or two);
3. **first export**: a full pull, which marks all N pairs;
4. then, R times: **change** 10 % of the items (another tenth each round) by importing one
   more historical judgment per item through the real service
   (`annotation.imports.judgments_import`, which bumps each item's label version as every
   write does): a 2:1 split becomes a 2:2 tie (its line is retracted: ties are excluded by
   default), a 3:0 item becomes 3:1; then the **since pull**: the lines
   (`preference_export(since=C)`) and the retractions (`preference_retractions(since=C)`)
   from the previous cursor, and a **full export** (`preference_export()`) for comparison.
   With `--sweep`, the background sweep's marking (`export_marks_refresh`, what Celery
   beat runs every minute) runs after each change, timed on its own, so the since pull
   finds its marks made.

Exports run in this process through the same code the API streams (service → JSON Lines
writer), so the figures are the export's own cost without HTTP. Each phase reports
seconds, lines/s, the time to the first line (marking), and this process's resident
memory (RSS, sampled every 20 ms) before, at 50 % and at the end, with its peak.

It creates its own database (parity_bench_<pid>, dropped at the end). See bench/README.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/export_since.py --pairs 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, where bench/queue.py would
# hide the standard library's `queue` (which psycopg imports).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._util import (  # noqa: E402
    django_setup,
    machine_description,
    peak_memory_mb,
    percentile,
    require_postgres,
    scratch_database,
)

LANGUAGES = ("de", "sw", "ar")
SMALL_SLUG = "bench-judgments"


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Sampler(threading.Thread):
    """This process's RSS every 20 ms, beside how many lines the phase has written."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.progress = 0
        self.samples: list[tuple[int, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((self.progress, _rss_mib()))
            self.stopped.wait(0.02)

    def at(self, fraction: float, total: int) -> float:
        for progress, rss in self.samples:
            if progress >= fraction * total:
                return rss
        return self.samples[-1][1] if self.samples else 0.0


def _timed_pull(start: Callable[[], Any]) -> dict[str, Any]:
    """Start a pull (marking happens here), stream it through the JSON Lines writer and
    count what it wrote; returns the figures."""
    from annotation.exports import jsonl_stream

    sampler = _Sampler()
    before = _rss_mib()
    sampler.start()
    began = time.perf_counter()
    pull = start()
    started = time.perf_counter() - began
    lines = size = 0
    rows: Iterator[Any] = pull.rows if hasattr(pull, "rows") else pull
    for chunk in jsonl_stream(rows):
        size += len(chunk)
        lines += chunk.count(b"\n")
        sampler.progress = lines
    seconds = time.perf_counter() - began
    sampler.stopped.set()
    sampler.join()
    return {
        "lines": lines,
        "bytes": size,
        "seconds": seconds,
        "start_seconds": started,
        "lines_per_second": lines / seconds if seconds else 0.0,
        "cursor": getattr(pull, "cursor", None),
        "rss_mib": {
            "before": before,
            "at_50%": sampler.at(0.5, lines),
            "at_100%": sampler.at(1.0, lines),
            "peak": max((rss for _, rss in sampler.samples), default=before),
        },
    }


def _build(pairs: int) -> dict[str, float]:
    """The project, N items in one INSERT … SELECT, three judgments each (import_export's
    helper), statistics left as a bulk load leaves them: autovacuum is held off the item and
    judgment tables until `_settle` (step 4 measures the window before its first ANALYZE)."""
    from django.db import connection

    from annotation.models import (
        Item,
        ItemSource,
        ItemStatus,
        Judgment,
        Language,
        Selection,
    )
    from annotation.projects import project_create_or_update
    from bench.import_export import PROJECT_SLUG, TEXT, _judge_all

    project, _ = project_create_or_update(
        slug=PROJECT_SLUG, task_type="pairwise", languages=list(LANGUAGES)
    )
    language_ids = [Language.objects.get(tag=tag).pk for tag in LANGUAGES]
    began = time.perf_counter()
    with connection.cursor() as cursor:
        for model in (Item, Judgment):
            cursor.execute(f"ALTER TABLE {model._meta.db_table} SET (autovacuum_enabled = off)")
        cursor.execute(
            f"""INSERT INTO {Item._meta.db_table}
                   (project_id, language_id, external_id, prompt, response, response_a, response_b, model,
                    model_a, model_b, prompt_id, metadata, source, language_flagged, is_gold, status, selection,
                    priority, open_slots, label_version, content_hash, created_at, updated_at, reward_a, reward_b)
               SELECT %s, (%s::bigint[])[g %% 3 + 1], 'bench-' || g, 'Prompt ' || g || ': translate the sentence.',
                      '', (%s::text[])[g %% 3 + 1], (%s::text[])[g %% 3 + 1], '', 'model-a', 'model-b', '',
                      '{{"dataset": "bench", "licence": "CC0-1.0"}}'::jsonb, %s, false, false, %s, %s,
                      0, 0, 0, lpad(to_hex(g), 64, '0'), now(), now(), (g %% 97) / 97.0, (g %% 89) / 89.0
               FROM generate_series(0, %s - 1) g""",  # noqa: S608 - table name from the model
            [
                project.pk,
                language_ids,
                [TEXT[t][0] for t in LANGUAGES],
                [TEXT[t][1] for t in LANGUAGES],
                ItemSource.IMPORT,
                ItemStatus.QUEUED,
                Selection.DIRECT,
                pairs,
            ],
        )
    items_seconds = time.perf_counter() - began
    judgments_seconds = _judge_all(analyze=False)
    return {"items_seconds": items_seconds, "judgments_seconds": judgments_seconds}


def _settle() -> float:
    """What autovacuum does within a minute or two of a bulk load (statistics, hint bits,
    the visibility map), before the export phases; autovacuum back on."""
    from django.db import connection

    from annotation.models import Item, Judgment

    began = time.perf_counter()
    with connection.cursor() as cursor:
        for model in (Item, Judgment):
            cursor.execute(f"ALTER TABLE {model._meta.db_table} RESET (autovacuum_enabled)")
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - began


def _change(*, project: Any, pairs: int, round_: int, fraction: float) -> dict[str, float]:
    """One more historical judgment ("b") on another `fraction` of the items each round (a
    fixed shuffle, so splits and unanimous items both get one), through the import service."""
    from annotation.imports import judgments_import

    size = int(pairs * fraction)
    order = list(range(pairs))
    random.Random(20261205).shuffle(order)
    chosen = sorted(order[round_ * size : (round_ + 1) * size])
    records = [
        (
            n,
            {
                "item_external_id": f"bench-{g}",
                "rater": f"bench-change-{round_}",
                "value": {"choice": "b", "strength": 1},
            },
        )
        for n, g in enumerate(chosen, start=1)
    ]
    began = time.perf_counter()
    result = judgments_import(project=project, records=records, max_lines=len(records))
    return {"judgments": result.created, "seconds": time.perf_counter() - began}


def _small_project() -> Any:
    """A pairwise project of 100 items and 400 judgments, imported through the services into
    the new database (the item import analyses the item table: it had no statistics)."""
    from annotation.imports import items_import, judgments_import
    from annotation.projects import project_create_or_update

    project, _ = project_create_or_update(slug=SMALL_SLUG, task_type="pairwise", languages=["de"])
    items_import(
        project=project,
        records=[
            (
                n,
                {
                    "external_id": f"small-{n}",
                    "language": "de",
                    "prompt": f"Prompt {n}",
                    "response_a": "Ja.",
                    "response_b": "Nein.",
                    "model_a": "a",
                    "model_b": "b",
                },
            )
            for n in range(1, 101)
        ],
    )
    judgments_import(
        project=project,
        records=[
            (
                n,
                {
                    "item_external_id": f"small-{n % 100 + 1}",
                    "rater": f"r{n // 100}",
                    "value": {"choice": "a" if n % 3 else "b", "strength": 1},
                },
            )
            for n in range(400)
        ],
    )
    return project


def _judgment_export_after_import(*, project: Any, repeats: int) -> dict[str, Any]:
    """The small project's judgment export in the state the database is in now, and its
    query as a cursor under each setting, with the plans."""
    from django.db import connection, transaction

    from annotation.exports import judgment_export
    from annotation.models import COUNTED_JUDGMENT_KINDS, Judgment

    times = []
    lines = 0
    for _ in range(repeats):
        figures = _timed_pull(lambda: judgment_export(project=project))
        times.append(figures["seconds"])
        lines = figures["lines"]
    # The plan of the export's query as a cursor, under each setting (EXPLAIN DECLARE).
    qs = Judgment.objects.filter(
        item__project=project, is_current=True, kind__in=COUNTED_JUDGMENT_KINDS
    )
    sql, params = (
        qs.order_by("id")
        .values_list(
            "id",
            "item__external_id",
            "item__language__tag",
            "evaluator__evaluator_profile__pseudonym",
            "external_rater__external_id",
            "kind",
            "value",
            "seconds",
            "guideline_version",
            "revision",
            "too_fast",
            "created_at",
        )
        .query.sql_with_params()
    )
    import psycopg

    # The export's query as a cursor under each setting, read to the end in chunks as the
    # export reads it: PostgreSQL's default (0.1, a plan for a fast first tenth) and 1.0
    # (what annotation.exports.rows.export_cursor_plan sets). DECLARE takes no bound
    # parameters: the values go into the text.
    connection.ensure_connection()
    declared = psycopg.ClientCursor(connection.connection).mogrify(
        f"DECLARE bench_plan CURSOR FOR {sql}", params
    )
    plans: dict[str, list[str]] = {}
    cursor_seconds: dict[str, list[float]] = {}
    for fraction in ("0.1", "1.0"):
        cursor_seconds[fraction] = []
        for _ in range(repeats):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL cursor_tuple_fraction = {fraction}")
                began = time.perf_counter()
                cursor.execute(declared)
                while True:
                    cursor.execute("FETCH 2000 FROM bench_plan")
                    if not cursor.fetchall():
                        break
                cursor_seconds[fraction].append(time.perf_counter() - began)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL cursor_tuple_fraction = {fraction}")
            cursor.execute(f"EXPLAIN {declared}")
            # The node that reads the judgments: what decides the cost.
            plans[fraction] = [
                row[0].strip()
                for row in cursor.fetchall()
                if "annotation_judgment " in row[0] and ("Scan" in row[0])
            ]
    return {"judgments": lines, "seconds": times, "plans": plans, "cursor_seconds": cursor_seconds}


def _judgment_exports(*, project: Any, pairs: int, repeats: int) -> dict[str, Any]:
    """Step 2: right after the bulk load, as SQL left it (the item table's statistics still
    describe the small project alone), then after the ANALYZE that `items_import` runs
    when an import at least doubles the item table (`items_statistics_refresh`), which
    the SQL load bypassed."""
    from annotation.imports import items_statistics_refresh

    stale = _judgment_export_after_import(project=project, repeats=repeats)
    refreshed = items_statistics_refresh(created=pairs)
    return {
        "stale": stale,
        "items_statistics_refreshed": refreshed,
        "after_refresh": _judgment_export_after_import(project=project, repeats=repeats),
    }


def _explain_marking(*, project: Any) -> list[tuple[str, list[str]]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement a since pull's marking
    (`export_marks_advance(thorough=False)`) sends now, as it sends them (captured in a transaction that is rolled back, then replayed in another
    that is rolled back too): nothing is marked."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from annotation.exports.marks import export_marks_advance

    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        export_marks_advance(project=project, thorough=False)
        transaction.set_rollback(True)
    explained = []
    with transaction.atomic(), connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"]
            explainable = sql.startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")) or (
                sql.startswith("CREATE TEMPORARY TABLE") and " AS " in sql
            )
            if explainable and "FOR NO KEY" not in sql:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
                explained.append((sql, [row[0] for row in cursor.fetchall()]))
            else:
                cursor.execute(sql)  # SET LOCAL, DROP, ANALYZE: as the marking runs them
        transaction.set_rollback(True)
    return explained


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pairs", type=int, default=1_000_000, help="pairwise items (default 1,000,000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="change + since pull + full export rounds (default 3)"
    )
    parser.add_argument(
        "--fraction", type=float, default=0.1, help="share of items changed per round (default 0.1)"
    )
    parser.add_argument(
        "--judgment-repeats",
        type=int,
        default=5,
        help="timed judgment exports of the small project (default 5; 0 skips the step)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL server (default: $DATABASE_URL); a scratch database is made on it",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print EXPLAIN (ANALYZE, BUFFERS) of the marking statements before the last since pull",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="after each change, run the background sweep's marking (export_marks_refresh, "
        "timed on its own) before the since pull, as Celery beat does every minute",
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the scratch database for inspection"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.pairs < 10 or args.rounds < 1 or not 0 < args.fraction <= 0.5:
        parser.error("--pairs at least 10, --rounds at least 1, --fraction in (0, 0.5]")
    if args.rounds > round(1 / args.fraction):
        parser.error(
            "--rounds: each round changes another share of the items; at most 1/fraction rounds"
        )
    return args


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    return {
        "runs": len(runs),
        "lines": [r["lines"] for r in runs],
        "median_seconds": statistics.median(seconds),
        "p95_seconds": percentile(seconds, 95),
        "median_start_seconds": statistics.median(r["start_seconds"] for r in runs),
        "median_lines_per_second": statistics.median(r["lines_per_second"] for r in runs),
        "rss_mib": {
            key: max(r["rss_mib"][key] for r in runs)
            for key in ("before", "at_50%", "at_100%", "peak")
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    server_url = require_postgres(args.database_url, script="bench/export_since.py")
    with scratch_database(server_url, f"parity_bench_{os.getpid()}", keep=args.keep_db) as url:
        django_setup(url, CELERY_BROKER_URL="", PARITY_LANGUAGE_CHECK="0")
        from django.core.management import call_command
        from django.db import connection

        from annotation.exports import (
            export_marks_refresh,
            preference_export,
            preference_retractions,
        )
        from annotation.models import Project
        from bench.import_export import PROJECT_SLUG

        call_command("migrate", verbosity=0)
        small = _small_project() if args.judgment_repeats else None
        built = _build(args.pairs)
        judgment = (
            _judgment_exports(project=small, pairs=args.pairs, repeats=args.judgment_repeats)
            if small
            else None
        )
        built["settle_seconds"] = _settle()
        project = Project.objects.get(slug=PROJECT_SLUG)
        first = _timed_pull(lambda: preference_export(project=project))
        cursor = first["cursor"]
        changes, since_lines, since_retractions, since_total, fulls = [], [], [], [], []
        explained: list[tuple[str, list[str]]] = []
        for round_ in range(args.rounds):
            changes.append(
                _change(project=project, pairs=args.pairs, round_=round_, fraction=args.fraction)
            )
            if args.sweep:
                began = time.perf_counter()
                export_marks_refresh()
                changes[-1]["sweep_seconds"] = time.perf_counter() - began
            if args.explain and round_ == args.rounds - 1:
                explained = _explain_marking(project=project)
            lines = _timed_pull(lambda c=cursor: preference_export(project=project, since=c))
            retractions = _timed_pull(
                lambda c=cursor: preference_retractions(project=project, since=c)
            )
            since_lines.append(lines)
            since_retractions.append(retractions)
            since_total.append(
                {
                    "lines": lines["lines"] + retractions["lines"],
                    "seconds": lines["seconds"] + retractions["seconds"],
                    "start_seconds": lines["start_seconds"] + retractions["start_seconds"],
                    "lines_per_second": (lines["lines"] + retractions["lines"])
                    / (lines["seconds"] + retractions["seconds"]),
                    "rss_mib": {
                        k: max(lines["rss_mib"][k], retractions["rss_mib"][k])
                        for k in lines["rss_mib"]
                    },
                }
            )
            cursor = lines["cursor"]
            fulls.append(_timed_pull(lambda: preference_export(project=project)))
        server_version = connection.cursor().connection.info.server_version
        connection.close()
    result = {
        "machine": machine_description(),
        "postgres": server_version,
        "pairs": args.pairs,
        "rounds": args.rounds,
        "fraction": args.fraction,
        "build": built,
        "first_export": first,
        "changes": changes,
        "since_lines": _summary(since_lines),
        "since_retractions": _summary(since_retractions),
        "since_pull": _summary(since_total),
        "full_export": _summary(fulls),
        "speedup": statistics.median(f["seconds"] for f in fulls)
        / statistics.median(s["seconds"] for s in since_total),
        "judgment_export": judgment,
        "peak_rss_mib": peak_memory_mb(),
        "explain_marking": explained,
    }
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    print(f"machine: {result['machine']}; PostgreSQL {server_version}")
    print(
        f"build  : {args.pairs:,} pairwise items in {built['items_seconds']:.1f} s (SQL), 3 judgments each in "
        f"{built['judgments_seconds']:.1f} s; VACUUM ANALYZE (after step 4) {built['settle_seconds']:.1f} s"
    )

    def line(name: str, s: dict[str, Any]) -> None:
        rss = s["rss_mib"]
        print(
            f"{name:<22} lines {'/'.join(f'{n:,}' for n in s['lines'])}: median {s['median_seconds']:.2f} s, "
            f"p95 {s['p95_seconds']:.2f} s, {s['median_lines_per_second']:,.0f} lines/s, marking/start "
            f"{s['median_start_seconds']:.2f} s; RSS MiB before {rss['before']:.0f}, at 50% {rss['at_50%']:.0f}, "
            f"end {rss['at_100%']:.0f}, peak {rss['peak']:.0f}"
        )

    f = first
    print(
        f"first export (marks all): {f['lines']:,} lines in {f['seconds']:.2f} s = {f['lines_per_second']:,.0f} "
        f"lines/s (marking {f['start_seconds']:.2f} s); RSS MiB before {f['rss_mib']['before']:.0f}, "
        f"peak {f['rss_mib']['peak']:.0f}"
    )
    print(
        "change : "
        + ", ".join(
            f"{c['judgments']:,} judgments imported in {c['seconds']:.1f} s"
            + (f" + background marking {c['sweep_seconds']:.2f} s" if "sweep_seconds" in c else "")
            for c in changes
        )
    )
    line("since pull: lines", result["since_lines"])
    line("since pull: retractions", result["since_retractions"])
    line("since pull: both", result["since_pull"])
    line("full export", result["full_export"])
    print(
        f"since pull (lines + retractions) is {result['speedup']:.1f}x faster than a full export (target ≥ 5x)"
    )
    if judgment:
        for state, title in (
            ("stale", "right after the bulk load (no ANALYZE)"),
            ("after_refresh", "after the item import's ANALYZE (items_statistics_refresh)"),
        ):
            j = judgment[state]
            t = j["seconds"]
            print(
                f"judgment export of a {j['judgments']}-judgment project, {title}: first {t[0] * 1000:.1f} ms, "
                f"median {statistics.median(t) * 1000:.1f} ms, p95 {percentile(t, 95) * 1000:.1f} ms"
            )
            for fraction, plan in j["plans"].items():
                c = j["cursor_seconds"][fraction]
                print(
                    f"    its cursor with cursor_tuple_fraction = {fraction}: median {statistics.median(c) * 1000:.1f} ms, "
                    f"p95 {percentile(c, 95) * 1000:.1f} ms; reads judgments by: {'; '.join(plan)}"
                )
    print(f"peak RSS of this process: {result['peak_rss_mib']:.0f} MiB")
    for sql, plan in explained:
        print(f"\nmarking statement: {sql[:400]}")
        print("\n".join(f"    {row}" for row in plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())

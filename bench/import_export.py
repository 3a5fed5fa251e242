#!/usr/bin/env python
"""Bulk import and preference export over HTTP, on PostgreSQL.

1. import N pairwise items through POST /api/v1/projects/{slug}/items/ (JSON Lines, in
   batches, from --clients concurrent connections) into a gunicorn this script starts;
2. give every item three historical judgments (SQL, not measured), so all are exportable;
3. export them through GET …/export/preferences/ as JSON Lines and as Parquet, counting
   lines as they stream, while a sampler reads the resident memory (RSS) of the gunicorn
   workers every 50 ms: the RSS at 10 %, 50 % and 100 % of the export shows whether the
   server's memory stays flat as the export grows;
4. time the language check (lingua) per item, which runs after an import commits.

It creates its own database (parity_bench_<pid>, dropped at the end) and prints figures;
see bench/README.md. Targets on the reference machine: ≥ 20,000 items/s imported,
≥ 50,000 lines/s exported.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/import_export.py --items 20000 --batch 5000
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, where bench/queue.py would
# hide the standard library's `queue` (which psycopg imports).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._util import (  # noqa: E402
    cpu_busy_since,
    cpu_busy_start,
    gunicorn_serving,
    machine_description,
    processes_cpu_seconds,
    require_postgres,
    scratch_database,
    served_environment,
)

PROJECT_SLUG = "bench-import-export"
LANGUAGES = ("de", "sw", "ar")
# Real sentences, so the language check sees text in the declared language.
TEXT = {
    "de": (
        "Die Katze sitzt auf der Matte und schaut aus dem Fenster in den Garten.",
        "Morgen wird es in den meisten Regionen sonnig und warm bleiben.",
    ),
    "sw": (
        "Paka ameketi juu ya mkeka na anaangalia nje ya dirisha kuelekea bustanini.",
        "Kesho hali ya hewa itakuwa ya jua katika maeneo mengi ya nchi.",
    ),
    "ar": (
        "القطة تجلس على الحصيرة وتنظر من النافذة إلى الحديقة.",
        "سيكون الطقس مشمسا غدا في معظم المناطق.",
    ),
}


def _environment(database_url: str) -> dict[str, str]:
    """The served environment (bench._util.served_environment) for an import run."""
    return served_environment(
        database_url,
        # Measured on its own below; in production it runs after the import commits.
        PARITY_LANGUAGE_CHECK="0",
        API_TOKEN_RATE="1000000/min",
    )


def _batch(start: int, size: int) -> bytes:
    lines = []
    for i in range(start, start + size):
        tag = LANGUAGES[i % len(LANGUAGES)]
        a, b = TEXT[tag]
        lines.append(
            json.dumps(
                {
                    "external_id": f"bench-{i}",
                    "language": tag,
                    "prompt": f"Prompt {i}: translate the sentence.",
                    "response_a": a,
                    "response_b": b,
                    "model_a": "model-a",
                    "model_b": "model-b",
                    "reward_a": (i % 97) / 97,
                    "reward_b": (i % 89) / 89,
                    "metadata": {"dataset": "bench", "licence": "CC0-1.0"},
                },
                ensure_ascii=False,
            )
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


def _worker_pids(master: int) -> list[int]:
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _Sampler(threading.Thread):
    """RSS of the busiest gunicorn worker every 50 ms, beside the export's progress."""

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.progress = 0
        self.samples: list[tuple[float, int, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            rss = max((_rss_mib(pid) for pid in _worker_pids(self.master)), default=0.0)
            self.samples.append((time.perf_counter(), self.progress, rss))
            self.stopped.wait(0.05)

    def at(self, fraction: float, total: int) -> float:
        """RSS at the first sample where the export had reached this fraction of its total."""
        goal = fraction * total
        for _, progress, rss in self.samples:
            if progress >= goal:
                return rss
        return self.samples[-1][2] if self.samples else 0.0


def _cpu_split(database: str, port: int) -> dict[str, float]:
    """CPU seconds so far of the gunicorn serving `port`, of PostgreSQL's backends on
    `database`, and of PostgreSQL's own background processes (WAL writer, checkpointer,
    background writer), which bulk writes keep busy."""
    return {
        "gunicorn": processes_cpu_seconds(cmdline_contains=f"127.0.0.1:{port}"),
        "postgres backends": processes_cpu_seconds(
            cmdline_contains=f" {database} ", starts_with="postgres:"
        ),
        "postgres background": sum(
            processes_cpu_seconds(cmdline_contains=name, starts_with="postgres:")
            for name in ("walwriter", "checkpointer", "background writer", "autovacuum")
        ),
    }


def _import(
    *, port: int, token: str, items: int, batch: int, clients: int
) -> tuple[float, list[str], list[float]]:
    """Post every batch; returns the wall time, any errors and when each batch was answered
    (seconds from the start, in order of answer)."""
    starts = list(range(0, items, batch))
    errors: list[str] = []
    answered: list[float] = []
    lock = threading.Lock()
    # The client's own work stays small: one batch is rendered once, and every batch is
    # that text with its own external_id prefix (a byte replace), so the 2 cores go to
    # the server and the database, as they would with the pipeline on another machine.
    template = _batch(0, batch)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
        while True:
            with lock:
                if not starts or errors:
                    return
                start = starts.pop(0)
            size = min(batch, items - start)
            if size == batch:
                body = template.replace(
                    b'"external_id": "bench-', f'"external_id": "b{start}-'.encode()
                )
            else:
                body = _batch(start, size)
            conn.request(
                "POST",
                f"/api/v1/projects/{PROJECT_SLUG}/items/",
                body=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/x-ndjson",
                },
            )
            response = conn.getresponse()
            payload = response.read()
            with lock:
                answered.append(time.perf_counter() - began)
                if response.status != 200:
                    errors.append(f"batch at {start}: HTTP {response.status} {payload[:300]!r}")
            # A sync gunicorn worker closes the connection after each response.
            conn.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, errors, answered


def _rate_by_tenth(answered: list[float], batch: int) -> list[float]:
    """Items/s over each tenth of the batches, in order: flat means the import does not
    slow down as the table and its indexes grow."""
    tenth = max(1, len(answered) // 10)
    rates, previous = [], 0.0
    for end in range(tenth, len(answered) + 1, tenth):
        rates.append(tenth * batch / max(1e-9, answered[end - 1] - previous))
        previous = answered[end - 1]
    return rates


def _judge_all(*, analyze: bool = True) -> float:
    """Three historical judgments per item, written in SQL, then VACUUM ANALYZE (set-up for
    the export, timed apart; `analyze=False` leaves the statistics as a bulk import does
    until autovacuum comes by)."""
    from django.db import connection

    from annotation.models import ExternalRater, Project

    project = Project.objects.get(slug=PROJECT_SLUG)
    began = time.perf_counter()
    raters = [
        ExternalRater.objects.create(project=project, external_id=f"bench-r{k}") for k in range(3)
    ]
    with connection.cursor() as cursor:
        for k, rater in enumerate(raters):
            # Two of three raters agree on most items; every fifth item splits 2:1 the other way.
            cursor.execute(
                """INSERT INTO annotation_judgment
                       (item_id, external_rater_id, kind, value, guideline_version, revision, is_current,
                        too_fast, created_at)
                   SELECT id, %s, 'historical',
                          CASE WHEN (id + %s) %% 5 = 0 THEN '{"choice": "b", "strength": 1}'::jsonb
                               ELSE '{"choice": "a", "strength": 2}'::jsonb END,
                          '1.0.0', 1, true, false, now()
                   FROM annotation_item WHERE project_id = %s""",
                [rater.pk, k, project.pk],
            )
        # What autovacuum does within a minute or two of a bulk load: statistics, hint bits
        # and the visibility map. Without it the first export would pay for setting the
        # hint bit on every row it reads (a write per page), which is no export's cost.
        if analyze:
            cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - began


def _export(
    *, port: int, token: str, fmt: str, master: int, expected: int, method: str = "majority"
) -> dict[str, Any]:
    sampler = _Sampler(master)
    baseline = max((_rss_mib(pid) for pid in _worker_pids(master)), default=0.0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    sampler.start()
    began = time.perf_counter()
    conn.request(
        "GET",
        f"/api/v1/projects/{PROJECT_SLUG}/export/preferences/?format={fmt}&method={method}",
        headers={"Authorization": f"Bearer {token}"},
    )
    response = conn.getresponse()
    if response.status != 200:
        sampler.stopped.set()
        raise RuntimeError(f"export {fmt}: HTTP {response.status} {response.read()[:300]!r}")
    first_byte = time.perf_counter() - began
    lines = 0
    size = 0
    parquet = io.BytesIO() if fmt == "parquet" else None
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if parquet is not None:
            parquet.write(chunk)
            # Progress for Parquet: bytes so far against the JSON Lines size per line.
            sampler.progress = size
        else:
            lines += chunk.count(b"\n")
            sampler.progress = lines
    elapsed = time.perf_counter() - began
    sampler.stopped.set()
    sampler.join()
    conn.close()
    total = lines
    if parquet is not None:
        import pyarrow.parquet as pq

        total = pq.ParquetFile(io.BytesIO(parquet.getvalue())).metadata.num_rows
    progress_total = size if parquet is not None else total
    return {
        "format": fmt,
        "method": method,
        "lines": total,
        "expected_lines": expected,
        "bytes": size,
        "seconds": elapsed,
        "first_byte_seconds": first_byte,
        "lines_per_second": total / elapsed if elapsed else 0.0,
        "rss_mib": {
            "before": baseline,
            "at_10%": sampler.at(0.10, progress_total),
            "at_50%": sampler.at(0.50, progress_total),
            "at_100%": sampler.at(1.00, progress_total),
            "peak": max((s[2] for s in sampler.samples), default=0.0),
        },
    }


def _language_check_rate(sample: int) -> dict[str, float]:
    from annotation.language_check import language_check_items
    from annotation.models import Item

    ids = list(
        Item.objects.filter(project__slug=PROJECT_SLUG)
        .order_by("id")
        .values_list("id", flat=True)[:sample]
    )
    Item.objects.filter(pk__in=ids).update(language_check=None)
    # The first call builds the detector and loads its models once per process.
    language_check_items(item_ids=ids[:10])
    Item.objects.filter(pk__in=ids[:10]).update(language_check=None)
    began = time.perf_counter()
    checked = language_check_items(item_ids=ids)
    elapsed = time.perf_counter() - began
    return {
        "items": checked,
        "seconds": elapsed,
        "items_per_second": checked / elapsed if elapsed else 0.0,
    }


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--items",
        type=int,
        default=1_000_000,
        help="items to import and export (default 1,000,000)",
    )
    parser.add_argument(
        "--batch", type=int, default=10_000, help="items per import request (default 10,000)"
    )
    parser.add_argument(
        "--clients", type=int, default=2, help="concurrent import connections (default 2)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn worker processes (default 2)"
    )
    parser.add_argument(
        "--language-check-sample",
        type=int,
        default=2000,
        help="items whose language check is timed (default 2,000; 0 skips it)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL server (default: $DATABASE_URL); a scratch database is made on it",
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the scratch database for inspection"
    )
    parser.add_argument(
        "--import-only", action="store_true", help="only the import (no judgments, no export)"
    )
    parser.add_argument(
        "--dawid-skene",
        action="store_true",
        help="also export JSON Lines aggregated by Dawid-Skene (fitted over the whole project first)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.items < 1 or args.batch < 1 or args.clients < 1 or args.workers < 1:
        parser.error("--items, --batch, --clients and --workers must be at least 1")
    if args.batch > 100_000:
        parser.error("--batch: the API takes at most 100,000 lines per request")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    server_url = require_postgres(args.database_url, script="bench/import_export.py")
    with scratch_database(server_url, f"parity_bench_{os.getpid()}", keep=args.keep_db) as url:
        env = _environment(url)
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        from annotation.projects import project_create_or_update
        from annotation.tokens import api_token_create

        call_command("migrate", verbosity=0)
        project, _ = project_create_or_update(
            slug=PROJECT_SLUG, task_type="pairwise", languages=list(LANGUAGES)
        )
        import_token = api_token_create(project=project, scope="import", name="bench")[1]
        export_token = api_token_create(project=project, scope="export", name="bench")[1]
        from django.db import connection

        connection.close()  # gunicorn and this process must not share a connection
        with gunicorn_serving(
            workers=args.workers, env=env, ready_path="/api/v1/schema/", timeout=900
        ) as (port, server):
            database = connection.settings_dict["NAME"]
            cpu_before, busy = _cpu_split(database, port), cpu_busy_start()
            seconds, errors, answered = _import(
                port=port,
                token=import_token,
                items=args.items,
                batch=args.batch,
                clients=args.clients,
            )
            machine_busy = cpu_busy_since(busy)
            import_cpu = {k: v - cpu_before[k] for k, v in _cpu_split(database, port).items()}
            if errors:
                print("import failed:\n  " + "\n  ".join(errors[:5]), file=sys.stderr)
                return 1
            judge_seconds = None if args.import_only else _judge_all()
            exports = (
                []
                if args.import_only
                else [
                    _export(
                        port=port,
                        token=export_token,
                        fmt=fmt,
                        master=server.pid,
                        expected=args.items,
                    )
                    for fmt in ("jsonl", "parquet")
                ]
            )
            if args.dawid_skene and not args.import_only:
                exports.append(
                    _export(
                        port=port,
                        token=export_token,
                        fmt="jsonl",
                        master=server.pid,
                        expected=args.items,
                        method="dawid_skene",
                    )
                )
        language_check = (
            _language_check_rate(args.language_check_sample) if args.language_check_sample else None
        )
        connection.close()
    result = {
        "machine": machine_description(),
        "items": args.items,
        "batch": args.batch,
        "clients": args.clients,
        "workers": args.workers,
        "import": {
            "seconds": seconds,
            "items_per_second": args.items / seconds,
            "items_per_second_by_tenth": _rate_by_tenth(answered, args.batch),
            "cpu_seconds": import_cpu,
            "machine_cpu_busy": machine_busy,
        },
        "setup_judgments_seconds": judge_seconds,
        "exports": exports,
        "language_check": language_check,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}")
    print(
        f"import : {args.items:,} items in batches of {args.batch:,} over {args.clients} connection(s), "
        f"gunicorn {args.workers} workers: {seconds:.1f} s = {args.items / seconds:,.0f} items/s (target ≥ 20,000)"
    )
    by_tenth = result["import"]["items_per_second_by_tenth"]
    print("         items/s by tenth of the run: " + ", ".join(f"{r:,.0f}" for r in by_tenth))
    print(
        "         CPU per 1,000 items: "
        + ", ".join(f"{name} {cpu / args.items * 1000:.2f} s" for name, cpu in import_cpu.items())
        + f"; machine CPU {machine_busy:.0%} busy"
    )
    for e in exports:
        rss = e["rss_mib"]
        label = e["format"] if e["method"] == "majority" else f"{e['format']}, {e['method']}"
        print(
            f"export : {label:<7} {e['lines']:,} lines ({e['bytes'] / 2**20:,.1f} MiB) in {e['seconds']:.1f} s "
            f"= {e['lines_per_second']:,.0f} lines/s (target ≥ 50,000); first byte after {e['first_byte_seconds']:.1f} s"
        )
        print(
            f"         worker RSS MiB: before {rss['before']:.0f}, at 10% {rss['at_10%']:.0f}, at 50% {rss['at_50%']:.0f}, "
            f"at 100% {rss['at_100%']:.0f}, peak {rss['peak']:.0f}"
        )
        if e["lines"] != e["expected_lines"]:
            print(
                f"         (expected {e['expected_lines']:,} lines: every fifth item splits 2:1 the other way, "
                "which still exports)"
            )
    if language_check:
        print(
            f"lingua : {language_check['items']:,} items checked in {language_check['seconds']:.2f} s = "
            f"{language_check['items_per_second']:,.0f} items/s (runs after the import commits)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Queue benchmark: C concurrent evaluators claim and submit on N items, on PostgreSQL.

Two modes, each with its own evaluators on the same project:

- service: C processes call annotation.queue.item_claim_next + judgment_submit directly;
- http: C processes log in at /accounts/login/ and drive the evaluator pages of a gunicorn
  this script starts on 127.0.0.1 (GET /p/<slug>/work/ claims, POST
  /assignments/<id>/submit/ submits; with --htmx the submit returns the next card, as the
  browser does);
- rest: C processes log in the same way and drive the REST endpoints with their session
  (POST /api/v1/projects/<slug>/queue/claim/, then POST /api/v1/assignments/<id>/judgment/,
  JSON with the CSRF header), two requests per judgment. The per-user API rate limit is
  lifted for this run (API_USER_RATE): it measures the server, not the throttle.

It creates its own database (parity_bench_<pid>, dropped at the end), loads the items
with COPY, and prints the setup, claims/s, submits/s and p50/p95/p99 latencies, then
checks the queue's invariants on what was written. See bench/README.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/queue.py --items 5000 --evaluators 8 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the standard library's `queue` (which psycopg and multiprocessing import).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._util import (  # noqa: E402
    cpu_busy_since,
    cpu_busy_start,
    cpu_used_between,
    django_setup,
    format_latency,
    gunicorn_serving,
    latency_summary,
    machine_description,
    peak_memory_mb,
    processes_cpu,
    require_postgres,
    scratch_database,
)
from bench.queue_seed import (  # noqa: E402
    MODES,
    explain_claim,
    invariants,
    queries_per_operation,
    queue_environment,
    seed,
    stored_judgments,
)
from bench.queue_workers import http_worker, rest_worker, service_worker  # noqa: E402

# ---------------------------------------------------------------------------------------
# Running a mode
# ---------------------------------------------------------------------------------------


def _watched_cpu(what: str) -> dict[int, float]:
    """A database name → its PostgreSQL backends; anything else → processes naming it."""
    if what.startswith("parity_bench") or not what.startswith("127.0.0.1"):
        return processes_cpu(cmdline_contains=f" {what} ", starts_with="postgres:")
    return processes_cpu(cmdline_contains=what)


def _run_processes(
    target: Any, args_for: list[tuple[Any, ...]], *, seconds: float, watch: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], float, dict[str, float]]:
    """Start the evaluator processes, release them together, collect what they measured;
    and the CPU seconds the processes matching each `watch` string used in the timed window."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(args_for) + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(*args, barrier, results), daemon=True) for args in args_for
    ]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=300)
    except Exception:
        for p in procs:
            p.kill()
        raise RuntimeError("the evaluator processes did not all start within 300 s") from None
    t0 = time.perf_counter()
    cpu_start = {w: _watched_cpu(w) for w in watch}
    # Sampled at the end of the timed window, before the processes close their connections.
    time.sleep(max(0.0, seconds - (time.perf_counter() - t0)))
    cpu = {w: cpu_used_between(cpu_start[w], _watched_cpu(w)) for w in watch}
    out = [results.get(timeout=900) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=30)
    return out, wall, cpu


def _report(
    mode: str,
    out: list[dict[str, Any]],
    wall: float,
    *,
    cpu: float,
    claim_name: str,
    submit_name: str,
    cpu_of: dict[str, float],
) -> dict[str, Any]:
    claims = [x for r in out for x in r["claims"]]
    served = sum(r.get("served", len(r["claims"])) for r in out)
    submits = [x for r in out for x in r["submits"]]
    errors: dict[str, int] = {}
    for r in out:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    elapsed = max((r["elapsed"] for r in out), default=wall)
    claim_summary, submit_summary = latency_summary(claims), latency_summary(submits)
    print(f"\n[{mode}] {len(out)} evaluators, {elapsed:.1f} s, machine CPU {cpu:.0%} busy")
    print(
        f"  claims/s  {served / elapsed:8.1f}   submits/s {len(submits) / elapsed:8.1f}   (judgments stored/s)"
    )
    print("  " + format_latency(claim_name, claim_summary))
    print("  " + format_latency(submit_name, submit_summary))
    cpu_of = {"evaluator processes": sum(r.get("cpu", 0.0) for r in out), **cpu_of}
    per_judgment = {k: v / len(submits) * 1000 for k, v in cpu_of.items()} if submits else {}
    if per_judgment:
        print(
            "  CPU per judgment: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in per_judgment.items())
            + f"  (2 cores ÷ the sum ≈ {2000 / sum(per_judgment.values()):.0f} judgments/s if nothing else ran)"
        )
    if errors:
        print("  errors: " + "; ".join(f"{k} ×{v}" for k, v in sorted(errors.items())))
    return {
        "evaluators": len(out),
        "seconds": elapsed,
        "claims": served,
        "submits": len(submits),
        "claims_per_s": served / elapsed,
        "submits_per_s": len(submits) / elapsed,
        "claim": claim_summary,
        "submit": submit_summary,
        "errors": errors,
        "cpu_busy": cpu,
        "cpu_ms_per_judgment": per_judgment,
    }


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--items", type=int, default=100_000, help="items in the queue (default 100000)"
    )
    parser.add_argument(
        "--evaluators", type=int, default=32, help="concurrent evaluator processes (default 32)"
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="timed run per mode (default 30)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=200.0,
        help="judgments/s in total for the paced service run; 0 skips it (default 200)",
    )
    parser.add_argument("--overlap", type=int, default=3, help="judgments per item, k (default 3)")
    parser.add_argument(
        "--languages",
        default="de,ar,zh,hi",
        help="item languages, comma-separated (default de,ar,zh,hi)",
    )
    parser.add_argument(
        "--languages-per-evaluator",
        type=int,
        default=1,
        help="qualified languages per evaluator; above 1 they claim across all of them (default 1)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--service-only", action="store_true", help="only the service-layer run")
    mode.add_argument(
        "--http-only", action="store_true", help="only the HTTP runs (pages and REST)"
    )
    parser.add_argument(
        "--no-rest", action="store_true", help="HTTP: the pages only, not the REST endpoints"
    )
    parser.add_argument(
        "--htmx",
        action="store_true",
        help="HTTP: submit as htmx does, getting the next card in the same response",
    )
    # As deploy/gunicorn.conf.py: one sync worker per core, plus one that runs while
    # another waits on the database (2 cores: 206 judgments/s with 3 workers, 200 with 2,
    # 174 with 2 × 4 threads; 157 with 5).
    parser.add_argument(
        "--workers",
        type=int,
        default=(os.cpu_count() or 1) + 1,
        help="gunicorn worker processes (default: cores + 1, as deploy/gunicorn.conf.py)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per gunicorn worker (>1: gthread)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL server to create the bench database on (default $DATABASE_URL)",
    )
    parser.add_argument(
        "--db-name", default=f"parity_bench_{os.getpid()}", help="bench database name"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE of the claim query"
    )
    parser.add_argument(
        "--json", action="store_true", help="also print the figures as one JSON line"
    )
    args = parser.parse_args(argv)
    for name in ("items", "evaluators", "overlap", "workers", "threads", "languages_per_evaluator"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.rate < 0:
        parser.error("--rate must be 0 (skip the paced run) or positive")
    args.language_tags = [t.strip() for t in args.languages.split(",") if t.strip()]
    if not args.language_tags:
        parser.error("--languages needs at least one tag")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    server_url = require_postgres(args.database_url, script="bench/queue.py")
    with scratch_database(server_url, args.db_name, keep=args.keep) as bench_url:
        env = queue_environment(bench_url)
        os.environ.update(env)  # the spawned evaluator processes inherit it
        django_setup()
        from django.core.exceptions import ValidationError
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            (pg_version,) = cursor.fetchone()
            cursor.execute("SHOW max_connections")
            max_connections = int(cursor.fetchone()[0])
        # Each evaluator process holds a connection, as does each gunicorn worker and this script.
        needed = args.evaluators + (0 if args.service_only else args.workers * args.threads) + 2
        if needed > max_connections:
            sys.exit(
                f"--evaluators {args.evaluators} with {args.workers} gunicorn workers needs about {needed} "
                f"database connections; the server allows {max_connections} (max_connections)."
            )
        try:
            seeded = seed(
                items=args.items,
                languages=args.language_tags,
                evaluators=args.evaluators,
                overlap=args.overlap,
                per_evaluator=args.languages_per_evaluator,
            )
        except ValidationError as exc:
            sys.exit(f"--languages: {' '.join(exc.messages)}")
        roster = seeded["roster"]
        probe_tag = roster["service"][0]["tag"] or args.language_tags[0]
        q_claim, q_submit = queries_per_operation(seeded["project_id"], probe_tag)
        print("queue benchmark")
        print(
            f"  items N={args.items}  evaluators C={args.evaluators}  overlap k={args.overlap}  "
            f"languages={','.join(args.language_tags)} ({args.languages_per_evaluator} per evaluator)  "
            f"{args.seconds:g} s per mode"
        )
        print(
            f"  database PostgreSQL {pg_version} ({args.db_name}); machine {machine_description()}"
        )
        print(
            f"  set-up: migrate {seeded['t_migrate']:.1f} s, {args.items} items loaded (COPY) in {seeded['t_items']:.1f} s"
        )
        print(f"  SQL statements: claim {q_claim}, submit {q_submit}")
        connection.close()

        figures: dict[str, Any] = {
            "items": args.items,
            "evaluators": args.evaluators,
            "overlap": args.overlap,
            "postgres": pg_version,
            "cores": os.cpu_count(),
        }
        if not args.http_only:
            cpu = cpu_busy_start()
            out, wall, cpu_of = _run_processes(
                service_worker,
                [
                    (i, ev, seeded["project_id"], args.seconds, 0.0)
                    for i, ev in enumerate(roster["service"])
                ],
                seconds=args.seconds,
                watch=(args.db_name,),
            )
            figures["service"] = _report(
                "service, back to back",
                out,
                wall,
                cpu=cpu_busy_since(cpu),
                cpu_of={"PostgreSQL": cpu_of[args.db_name]},
                claim_name="claim (item_claim_next)",
                submit_name="submit (judgment_submit)",
            )
            if args.rate > 0:
                cpu = cpu_busy_start()
                out, wall, cpu_of = _run_processes(
                    service_worker,
                    [
                        (i, ev, seeded["project_id"], args.seconds, args.rate / args.evaluators)
                        for i, ev in enumerate(roster["paced"])
                    ],
                    seconds=args.seconds,
                    watch=(args.db_name,),
                )
                figures["paced"] = _report(
                    f"service, paced at {args.rate:g} judgments/s in total",
                    out,
                    wall,
                    cpu_of={"PostgreSQL": cpu_of[args.db_name]},
                    cpu=cpu_busy_since(cpu),
                    claim_name="claim (item_claim_next)",
                    submit_name="submit (judgment_submit)",
                )
        if not args.service_only:
            kind = f"gunicorn {args.workers} workers" + (
                f" × {args.threads} threads" if args.threads > 1 else ""
            )
            with gunicorn_serving(
                workers=args.workers,
                threads=args.threads,
                env=env,
                ready_path="/accounts/login/",
                timeout=120,
                backlog=2048,
            ) as (port, _server):
                watch = (f"127.0.0.1:{port}", args.db_name)
                cpu = cpu_busy_start()
                out, wall, cpu_of = _run_processes(
                    http_worker,
                    [(i, ev, port, args.seconds, args.htmx) for i, ev in enumerate(roster["http"])],
                    seconds=args.seconds,
                    watch=watch,
                )
                label = "http+htmx" if args.htmx else "http"
                figures["http"] = _report(
                    f"{label}, {kind}",
                    out,
                    wall,
                    cpu=cpu_busy_since(cpu),
                    cpu_of={"gunicorn": cpu_of[watch[0]], "PostgreSQL": cpu_of[watch[1]]},
                    claim_name="claim (GET work)" if not args.htmx else "first card (GET work)",
                    submit_name="submit (POST, 302)" if not args.htmx else "submit + next card",
                )
                if not args.no_rest:
                    cpu = cpu_busy_start()
                    out, wall, cpu_of = _run_processes(
                        rest_worker,
                        [(i, ev, port, args.seconds) for i, ev in enumerate(roster["rest"])],
                        seconds=args.seconds,
                        watch=watch,
                    )
                    figures["rest"] = _report(
                        f"REST API, {kind}",
                        out,
                        wall,
                        cpu=cpu_busy_since(cpu),
                        cpu_of={"gunicorn": cpu_of[watch[0]], "PostgreSQL": cpu_of[watch[1]]},
                        claim_name="claim (POST queue/claim/)",
                        submit_name="submit (POST judgment/)",
                    )
        if args.explain:
            # After the runs, so the plans are those of a queue with thousands of assignments.
            print("\nclaim query plans (EXPLAIN ANALYZE):")
            print(explain_claim(seeded["project_id"], roster["service"][0]["id"]))
        problems = invariants(project_id=seeded["project_id"], overlap=args.overlap)
        for mode in MODES:
            if mode in figures and figures[mode]["submits"] != stored_judgments(mode=mode):
                problems.append(
                    f"{mode}: {figures[mode]['submits']} submits answered OK but "
                    f"{stored_judgments(mode=mode)} judgments stored"
                )
        print(
            "\ninvariants: "
            + (
                "ok (≤k production judgments per item, no item judged twice by one "
                "evaluator, slots add up)"
                if not problems
                else "BROKEN: " + "; ".join(problems)
            )
        )
        print(
            f"peak memory: bench {peak_memory_mb():.0f} MiB, largest evaluator process "
            f"{peak_memory_mb(children=True):.0f} MiB"
        )
        figures["invariants_ok"] = not problems
        if args.json:
            print(json.dumps(figures))
        connection.close()
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

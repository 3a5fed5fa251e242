#!/usr/bin/env python
"""CPU time of a full preference export in-process on PostgreSQL: this process and its backend.

Creates a test database (test_hbench_export_<pid>, dropped at the end), a pairwise project of N items
through `items_import`, three historical judgments each (the tree's bench/import_export.py
`_judge_all`, SQL + VACUUM ANALYZE), then runs `preference_export` (JSON Lines, majority,
ties excluded) twice, read through `jsonl_stream`: the first marks all N pairs, the second
finds them marked. For each: lines, wall s, this process's CPU s and its PostgreSQL
backend's CPU s (/proc/<pg_backend_pid>/stat, so the server must run on this machine).
CPU time, not wall time, so the figure holds on a machine busy with other work. Written to
work unchanged on 172a902 (copy it out and put that tree on PYTHONPATH). See bench/README.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/export_cpu.py --pairs 100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/queue.py would
# hide the standard library's `queue`.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--pairs", type=int, default=100_000, help="pairwise items (default 100,000)"
    )
    n = parser.parse_args().pairs
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parity.settings_test")
    os.environ["PARITY_LANGUAGE_CHECK"] = "0"
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"test_hbench_export_{os.getpid()}"
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        from annotation.exports import jsonl_stream, preference_export
        from annotation.imports import items_import
        from annotation.projects import project_create_or_update
        from bench.import_export import PROJECT_SLUG, TEXT, _judge_all

        tags = ("de", "sw", "ar")
        project, _ = project_create_or_update(
            slug=PROJECT_SLUG,
            name=PROJECT_SLUG,
            task_type="pairwise",
            languages=list(tags),
            schema=None,
        )
        records = [
            (
                i + 1,
                {
                    "external_id": f"bench-{i}",
                    "language": tags[i % 3],
                    "prompt": f"Prompt {i}: translate the sentence.",
                    "response_a": TEXT[tags[i % 3]][0],
                    "response_b": TEXT[tags[i % 3]][1],
                    "model_a": "model-a",
                    "model_b": "model-b",
                    "reward_a": (i % 97) / 97,
                    "reward_b": (i % 89) / 89,
                    "metadata": {"dataset": "bench", "licence": "CC0-1.0"},
                },
            )
            for i in range(n)
        ]
        began = time.perf_counter()
        for start in range(0, n, 10_000):
            items_import(project=project, records=records[start : start + 10_000])
        setup = {
            "items_s": round(time.perf_counter() - began, 1),
            "judgments_s": round(_judge_all(), 1),
        }
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        results = {}
        for name in ("first (marks all)", "second (all marked)"):
            wall, cpu, pg = time.perf_counter(), time.process_time(), _backend_cpu(backend)
            export = preference_export(project=project)
            lines = size = 0
            for chunk in jsonl_stream(export.rows):
                lines += chunk.count(b"\n")
                size += len(chunk)
            wall = time.perf_counter() - wall
            cpu = time.process_time() - cpu
            pg = _backend_cpu(backend) - pg
            results[name] = {
                "lines": lines,
                "MiB": round(size / 2**20, 1),
                "wall_s": round(wall, 2),
                "lines_per_s": round(lines / wall),
                "process_cpu_s": round(cpu, 2),
                "pg_backend_cpu_s": round(pg, 2),
                "cpu_us_per_line": {
                    "process": round(cpu / lines * 1e6, 1),
                    "pg": round(pg / lines * 1e6, 1),
                },
            }
        print(json.dumps({"pairs": n, "setup": setup, "exports": results}))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()

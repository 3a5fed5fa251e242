#!/usr/bin/env python
"""CPU time of the import services in-process: validation and writing without HTTP.

Creates a throwaway SQLite test database (the test settings), imports N rating items
(`items_import`), N historical judgments with comments (`judgments_import`) and the same N
items again (all unchanged), and prints the process CPU seconds of each. CPU time, not wall
time, so the figure holds on a machine busy with other work. See bench/README.md.

    .venv/bin/python bench/import_cpu.py --items 20000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/queue.py would
# hide the standard library's `queue`.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def _cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return round(time.process_time() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--items", type=int, default=20_000, help="items, and judgments (default 20,000)"
    )
    n = parser.parse_args().items
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parity.settings_test")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    from annotation.imports import items_import, judgments_import
    from annotation.projects import project_create_or_update

    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    project, _ = project_create_or_update(
        slug="b", name="b", task_type="rating", languages=["de", "ar"], schema=None
    )
    items = [
        (
            i + 1,
            {
                "external_id": f"i{i}",
                "language": "de" if i % 2 else "ar",
                "prompt": "Übersetze: The cat sits.",
                "response": "Die Katze sitzt auf der Matte – schön.",
                "model": "m1",
                "metadata": {"k": "wért"},
            },
        )
        for i in range(n)
    ]
    judgments = [
        (
            i + 1,
            {
                "item_external_id": f"i{i}",
                "rater": f"r{i % 3}",
                "value": {"score": 1 + i % 5, "comment": "gut ê"},
            },
        )
        for i in range(n)
    ]
    figures = {
        "items": n,
        "items_import_cpu_s": _cpu(lambda: items_import(project=project, records=items)),
        "judgments_import_cpu_s": _cpu(
            lambda: judgments_import(project=project, records=judgments)
        ),
        "reimport_unchanged_cpu_s": _cpu(lambda: items_import(project=project, records=items)),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""The embedded default's speed: one demo evaluator's submit-and-next latency against a
running `make demo` (gunicorn with threads on SQLite in WAL mode), one request at a time.

    make demo      # in another terminal (or: DEBUG=1 .venv/bin/python manage.py demo --serve)
    .venv/bin/python bench/demo_latency.py [--url http://127.0.0.1:8000] [--judgments 40]

Logs in as `greta` (password parity-demo), opens her German queue of mlqe-da and submits a
score for each card; each submit returns the next card (htmx), as in the browser. Prints
n, median and p95. It writes real judgments into the demo database.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import percentile  # noqa: E402

SUBMIT = re.compile(rb"/assignments/(\d+)/submit/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--judgments", type=int, default=40)
    parser.add_argument("--user", default="greta")
    args = parser.parse_args(argv)
    session = requests.Session()
    session.get(args.url + "/accounts/login/", timeout=30)
    login = session.post(
        args.url + "/accounts/login/",
        allow_redirects=False,
        timeout=30,
        data={
            "username": args.user,
            "password": "parity-demo",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
    )
    if login.status_code != 302:
        raise SystemExit(f"login of {args.user} failed: HTTP {login.status_code}")
    hx = {"HX-Request": "true"}
    card = session.get(args.url + "/p/mlqe-da/work/?language=de", headers=hx, timeout=30).content
    times: list[float] = []
    while len(times) < args.judgments and (found := SUBMIT.search(card)):
        start = time.perf_counter()
        response = session.post(
            args.url + f"/assignments/{found.group(1).decode()}/submit/",
            headers=hx,
            timeout=30,
            data={
                "score": 3,
                "seconds": 20,
                "language": "de",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
        )
        times.append((time.perf_counter() - start) * 1000)
        card = response.content
    if not times:
        raise SystemExit("nothing waited in greta's German queue")
    print(
        f"demo submit+next against {args.url}: n={len(times)} median={statistics.median(times):.1f} ms "
        f"p95={percentile(times, 95):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Load test: evaluators (locust users) working the queue through the pages and the REST
API of a real gunicorn on PostgreSQL, for a bounded time; prints throughput, p50/p95/p99
per request kind and the errors, then checks the queue's invariants.

Half the users work through the pages as a browser does with htmx (GET the work page
once, then each submit returns the next card: "submit+next"), half through the REST API
(claim, then submit). Between judgments a user thinks for an exponentially distributed
time averaging --think seconds (people read before they rate); --think 0 is saturation.

It creates its own database parity_load_<pid> on the server in DATABASE_URL, seeds it
as the queue benchmark does (bench/queue_seed.py: N items by COPY, k overlap, the
evaluators), starts --instances gunicorns on free loopback ports (users are spread over
them, as behind a load balancer; all share the one database) and drops the database at
the end.

    # 50 evaluators pausing as people do, 60 s (about 2 minutes with set-up)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/load.py

    # saturation: no pauses
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/load.py --think 0 --seconds 30

    # two gunicorn instances on one database (the web tier scales out)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/load.py --instances 2 --think 0

Nothing here asserts a time; the figures go to bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and bench/queue.py would hide
# the standard library's `queue` (which psycopg imports).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._util import (  # noqa: E402
    django_setup,
    gunicorn_serving,
    machine_description,
    require_postgres,
    scratch_database,
)
from bench.queue_seed import (  # noqa: E402
    PASSWORD,
    PROJECT_SLUG,
    invariants,
    queue_environment,
    seed,
    stored_judgments,
)
from bench.queue_workers import ASSIGNMENT_IN_CARD  # noqa: E402


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--users", type=int, default=50, help="evaluators at once (half pages, half REST)"
    )
    parser.add_argument("--seconds", type=float, default=60, help="measured time (at most 150)")
    parser.add_argument(
        "--think", type=float, default=5.0, help="mean think time between judgments, s (0: none)"
    )
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--languages", default="de,ar,zh,sw")
    parser.add_argument(
        "--instances", type=int, default=1, help="gunicorn instances on one database"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=(os.cpu_count() or 1) + 1,
        help="gunicorn workers per instance",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per worker (gthread when > 1)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as one JSON object too"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 150:
        parser.error("--seconds must be between 1 and 150 (runs stay under 3 minutes)")
    if args.users < 2 or args.instances < 1:
        parser.error("--users must be at least 2 and --instances at least 1")
    return args


def _locust_run(
    *,
    hosts: list[str],
    roster: dict[str, list[dict[str, Any]]],
    users: int,
    seconds: float,
    think: float,
) -> tuple[Any, dict[str, int], float]:
    """Run the users for `seconds`; returns locust's stats, the acknowledged judgments per
    kind and the measured wall time."""
    # Imported here: locust patches the standard library (gevent) when imported, and the
    # seeding above ran with the plain one.
    import gevent
    from locust import FastHttpUser, task
    from locust.env import Environment
    from locust.log import setup_logging

    setup_logging("WARNING")

    acknowledged = {"pages": 0, "rest": 0}
    signed_in = [0]
    pages = iter(roster["http"])
    rest = iter(roster["rest"])
    host_cycle = itertools.cycle(hosts)
    slug = PROJECT_SLUG

    def wait(user: Any) -> float:
        return random.expovariate(1 / think) if think > 0 else 0.0

    class Evaluator(FastHttpUser):
        """A person at a browser: logs in once (PBKDF2, outside the measured window), then
        judges with a pause between judgments."""

        abstract = True
        wait_time = wait

        def cookie(self, name: str) -> str:
            return next((c.value for c in self.client.cookiejar if c.name == name), "") or ""

        def on_start(self) -> None:
            self.client.base_url = self.host = next(host_cycle)
            self.evaluator = next(self.accounts)
            self.client.get("/accounts/login/", name="login page")
            response = self.client.post(
                "/accounts/login/",
                name="login",
                data={
                    "username": self.evaluator["username"],
                    "password": PASSWORD,
                    "csrfmiddlewaretoken": self.cookie("csrftoken"),
                },
                allow_redirects=False,
            )
            if response.status_code != 302:
                raise RuntimeError(
                    f"login of {self.evaluator['username']}: HTTP {response.status_code}"
                )
            self.csrf = self.cookie("csrftoken")
            self.rng = random.Random(self.evaluator["id"])
            signed_in[0] += 1

    class PageEvaluator(Evaluator):
        accounts = pages
        card: bytes | None = None

        @task
        def judge(self) -> None:
            hx = {"HX-Request": "true"}
            if self.card is None:
                self.card = self.client.get(
                    f"/p/{slug}/work/?language={self.evaluator['tag']}",
                    headers=hx,
                    name="page: work",
                ).content
            found = ASSIGNMENT_IN_CARD.search(self.card or b"")
            if found is None:
                self.card = None
                return
            with self.client.post(
                f"/assignments/{found.group(1).decode()}/submit/",
                name="page: submit+next",
                headers=hx,
                data={
                    "score": self.rng.randint(1, 5),
                    "seconds": round(self.rng.uniform(5, 60), 1),
                    "language": self.evaluator["tag"],
                    "csrfmiddlewaretoken": self.csrf,
                },
                catch_response=True,
            ) as response:
                if response.status_code == 200:
                    acknowledged["pages"] += 1
                    self.card = response.content
                else:
                    response.failure(f"HTTP {response.status_code}")
                    self.card = None

    class RestEvaluator(Evaluator):
        accounts = rest

        @task
        def judge(self) -> None:
            headers = {"X-CSRFToken": self.csrf}
            claimed = self.client.post(
                f"/api/v1/projects/{slug}/queue/claim/",
                json={"language": self.evaluator["tag"]},
                headers=headers,
                name="api: claim",
            )
            if claimed.status_code != 200:
                return
            with self.client.post(
                f"/api/v1/assignments/{claimed.json()['id']}/judgment/",
                name="api: submit",
                headers=headers,
                json={
                    "value": {"score": self.rng.randint(1, 5)},
                    "seconds": round(self.rng.uniform(5, 60), 1),
                },
                catch_response=True,
            ) as response:
                if response.status_code == 201:
                    acknowledged["rest"] += 1
                else:
                    response.failure(f"HTTP {response.status_code}")

    env = Environment(user_classes=[PageEvaluator, RestEvaluator], host=hosts[0])
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    # Logins hash passwords (PBKDF2): measured from when every user has logged in.
    deadline = time.monotonic() + 120
    while signed_in[0] < users and time.monotonic() < deadline:
        gevent.sleep(0.2)
    gevent.sleep(1)
    env.stats.reset_all()
    for kind in acknowledged:
        acknowledged[kind] = 0
    start = time.perf_counter()
    gevent.sleep(seconds)
    wall = time.perf_counter() - start
    measured = dict(acknowledged)
    runner.quit()
    return env.stats, measured, wall


def _report(stats: Any, acknowledged: dict[str, int], wall: float) -> dict[str, Any]:
    out: dict[str, Any] = {"seconds": round(wall, 1), "requests": {}}
    print(
        f"\n{'request':<20}{'n':>8}{'fail':>6}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    for (name, _method), entry in sorted(stats.entries.items()):
        if name.startswith("login") or not entry.num_requests:
            continue
        row = {
            "n": entry.num_requests,
            "failures": entry.num_failures,
            "rps": round(entry.num_requests / wall, 1),
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p95_ms": entry.get_response_time_percentile(0.95),
            "p99_ms": entry.get_response_time_percentile(0.99),
            "max_ms": round(entry.max_response_time or 0, 1),
        }
        out["requests"][name] = row
        print(
            f"{name:<20}{row['n']:>8}{row['failures']:>6}{row['rps']:>8}{row['p50_ms']:>9}{row['p95_ms']:>9}"
            f"{row['p99_ms']:>9}{row['max_ms']:>9}"
        )
    judged = sum(acknowledged.values())
    out["judgments"] = acknowledged
    out["judgments_per_s"] = round(judged / wall, 1)
    out["errors"] = {
        f"{name}: {error.error}": error.occurrences
        for error in stats.errors.values()
        for name in [error.name]
    }
    print(
        f"\njudgments acknowledged: {judged} in {wall:.1f} s = {out['judgments_per_s']}/s "
        f"(pages {acknowledged['pages']}, REST {acknowledged['rest']})"
    )
    print(
        f"errors: {sum(out['errors'].values())}"
        + "".join(f"\n  {k} ×{v}" for k, v in out["errors"].items())
    )
    return out


def _locust_child(config_path: str) -> int:
    """The load itself, in a process of its own: locust's gevent patches the standard
    library, which Django's database connections in the parent must not see."""
    config = json.loads(Path(config_path).read_text())
    stats, acknowledged, wall = _locust_run(
        hosts=config["hosts"],
        roster=config["roster"],
        users=config["users"],
        seconds=config["seconds"],
        think=config["think"],
    )
    out = _report(stats, acknowledged, wall)
    Path(config_path).write_text(json.dumps(out))
    return 0


def _locust_in_child(**config: Any) -> dict[str, Any]:
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    try:
        subprocess.run(
            [sys.executable, __file__, "--locust-child", handle.name],
            check=True,
            env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        )
        return json.loads(Path(handle.name).read_text())
    finally:
        os.unlink(handle.name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--locust-child"]:
        return _locust_child(argv[1])
    args = _arguments(argv)
    server_url = require_postgres(args.database_url, script="bench/load.py")
    languages = [tag.strip() for tag in args.languages.split(",") if tag.strip()]
    per_mode = args.users // 2
    with scratch_database(server_url, f"parity_load_{os.getpid()}") as database_url:
        env = {**queue_environment(database_url), "LOG_LEVEL": "ERROR"}
        os.environ.update(env)
        django_setup()
        seeded = seed(
            items=args.items,
            languages=languages,
            evaluators=args.users - per_mode,
            overlap=args.overlap,
            per_evaluator=1,
        )
        from django.db import connections

        connections.close_all()
        print(f"bench/load.py — {machine_description()}")
        print(
            f"  {args.users} evaluators ({per_mode} pages with htmx, {args.users - per_mode} REST), "
            f"think {args.think:g} s mean, {args.seconds:g} s measured; {args.items} items in "
            f"{len(languages)} languages, k={args.overlap}; {args.instances} gunicorn instance(s) × "
            f"{args.workers} workers × {args.threads} threads, PostgreSQL; client and server on this machine"
        )
        with ExitStack() as servers:
            ports = [
                servers.enter_context(
                    gunicorn_serving(
                        workers=args.workers,
                        threads=args.threads,
                        env=env,
                        ready_path="/healthz",
                        timeout=120,
                        backlog=2048,
                    )
                )[0]
                for _ in range(args.instances)
            ]
            out = _locust_in_child(
                hosts=[f"http://127.0.0.1:{port}" for port in ports],
                roster=seeded["roster"],
                users=args.users,
                seconds=args.seconds,
                think=args.think,
            )
        acknowledged = out["judgments"]
        problems = invariants(project_id=seeded["project_id"], overlap=args.overlap)
        stored = stored_judgments(mode="http") + stored_judgments(mode="rest")
        # Every acknowledged judgment is stored (some stored ones were acknowledged after the
        # measured window closed, or before it opened).
        if stored < sum(acknowledged.values()):
            problems.append(
                f"{sum(acknowledged.values())} judgments acknowledged but {stored} stored"
            )
        out["invariants"] = problems or "ok"
        print(
            "invariants: "
            + (
                "ok (no item over k, none judged twice, slots add up, "
                "every acknowledged judgment stored)"
                if not problems
                else "; ".join(problems)
            )
        )
        connections.close_all()
        if args.json:
            print(json.dumps(out))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

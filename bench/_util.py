"""Small helpers the benchmarks in bench/ share: percentiles, a latency summary, a timed
step, peak memory, the machine's description, Django on a scratch database (PostgreSQL, or
a SQLite file in a temporary folder), the production settings a bench serves with, and a
gunicorn to measure against.

Benchmarks print figures; nothing here asserts a time.
"""

from __future__ import annotations

import http.client
import math
import os
import platform
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent

# Languages the benchmarks spread synthetic data over; --languages N takes the first N.
LANGUAGES = (
    "de",
    "fr",
    "es",
    "zh",
    "ar",
    "hi",
    "sw",
    "ja",
    "ru",
    "pt",
    "tr",
    "ko",
    "he",
    "th",
    "vi",
    "id",
)


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation between closest ranks
    (numpy's default), of samples that need not be sorted; NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p95, p99 and max of latencies given in seconds, reported in ms."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "mean_ms": sum(ms) / len(ms) if ms else math.nan,
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
    }


def format_latency(name: str, summary: dict[str, float]) -> str:
    return (
        f"{name:<22} n={summary['n']:<7} p50={summary['p50_ms']:7.1f} ms  p95={summary['p95_ms']:7.1f} ms  "
        f"p99={summary['p99_ms']:7.1f} ms  max={summary['max_ms']:7.1f} ms"
    )


def measure(
    label: str,
    fn: Callable[[], Any],
    *,
    width: int = 58,
    trace: bool = False,
    totals: list[tuple[float, float]] | None = None,
) -> tuple[Any, float]:
    """Run fn and print its wall-clock seconds, the CPU seconds of this process (on a shared
    machine the wall clock also counts other people's work) and the peak resident memory so
    far; return its result and its seconds. With `trace`, run it a second time under
    tracemalloc for the peak of what this step allocated (tracing slows Python code down, so
    the seconds come from the untraced run). `totals` collects (wall, CPU) of each step."""
    before = peak_memory_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    after = peak_memory_mb()
    if totals is not None:
        totals.append((seconds, cpu))
    line = (
        f"{label:<{width}} {seconds:8.3f} s wall {cpu:8.3f} s CPU   "
        f"peak RSS {after:7.0f} MiB (+{after - before:.0f})"
    )
    if trace:
        tracemalloc.start()
        fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        line += f"   peak allocated {peak / 2**20:7.1f} MiB"
    print(line, flush=True)
    return result, seconds


def peak_memory_mb(*, children: bool = False) -> float:
    """Peak resident memory of this process (or of its waited-for children), in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    kib = resource.getrusage(who).ru_maxrss  # KiB on Linux
    return kib / 1024


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}, {platform.system()} {platform.release()}"


def require_postgres(url: str | None, *, script: str) -> str:
    """The PostgreSQL server URL to use, or exit with the reason SQLite will not do."""
    if not url or not url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            f"{script} needs PostgreSQL: set DATABASE_URL=postgres://USER@HOST:PORT/DB (or pass --database-url). "
            "On SQLite every writer waits for the one before it, so concurrent evaluators would "
            "measure the file lock, not the queue."
        )
    return url


def django_setup(database_url: str | None = None, sqlite_path: str = "", **extra: str) -> None:
    """Set Django up in this process with the production settings module: on
    `database_url`, or else on the SQLite file `sqlite_path`; `extra` sets further
    environment variables first. With neither, the environment as it is (a child process
    that inherited its parent's)."""
    if database_url or sqlite_path:
        os.environ.setdefault("SECRET_KEY", "bench-not-a-secret")
        os.environ.setdefault("DEBUG", "0")
        os.environ["ALLOWED_HOSTS"] = "localhost"
        if database_url:
            os.environ["DATABASE_URL"] = database_url
        else:
            os.environ.pop("DATABASE_URL", None)
            os.environ["SQLITE_PATH"] = sqlite_path
        os.environ["DJANGO_SETTINGS_MODULE"] = "parity.settings"
    os.environ.update(extra)
    import django

    django.setup()


@contextmanager
def django_on_scratch_database(
    database_url: str | None, *, name: str, script: str, **extra: str
) -> Iterator[None]:
    """Django set up on a scratch PostgreSQL database `parity_bench_<name>_<pid>` on the
    server at `database_url` (dropped afterwards), or, without one, on a SQLite file in a
    temporary folder."""
    with tempfile.TemporaryDirectory(prefix=f"parity-bench-{name}-") as tmp:
        if database_url:
            server = require_postgres(database_url, script=f"{script} --database-url")
            with scratch_database(server, f"parity_bench_{name}_{os.getpid()}") as url:
                django_setup(url, **extra)
                yield
        else:
            django_setup(None, str(Path(tmp) / "bench.sqlite3"), **extra)
            yield


def served_environment(database_url: str, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG off) against the bench database, served over plain HTTP
    on loopback, no broker; `extra` adds or overrides variables."""
    return {
        "DJANGO_SETTINGS_MODULE": "parity.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "STATIC_MANIFEST": "0",
        # An empty folder, so whitenoise does not warn in every process that it is missing.
        "STATIC_ROOT": tempfile.mkdtemp(prefix="parity-bench-static-"),
        "WHITENOISE_USE_FINDERS": "1",
        "CELERY_BROKER_URL": "",
        **extra,
    }


def url_with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextmanager
def scratch_database(server_url: str, name: str, *, keep: bool = False) -> Iterator[str]:
    """Create database `name` on the server, yield its URL, drop it afterwards (even after
    an error or Ctrl-C) unless `keep`."""
    import psycopg

    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name {name!r}: use letters, digits and underscores only")
    # Query options in the URL (e.g. server_side_binding) are Django's, not libpq's.
    admin_url = urlunsplit(urlsplit(server_url)._replace(query=""))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url_with_database(server_url, name)
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_busy_start() -> tuple[int, int]:
    """Mark the start of a stretch whose whole-machine CPU use `cpu_busy_since` reports."""
    return _cpu_times()


def cpu_busy_since(start: tuple[int, int]) -> float:
    """Share of the machine's CPU time (all cores, every process) that was busy since `start`."""
    busy, total = _cpu_times()
    return (busy - start[0]) / max(1, total - start[1])


def processes_cpu(*, cmdline_contains: str, starts_with: str = "") -> dict[int, float]:
    """CPU seconds (user + system) used so far by each live process whose command line
    starts with `starts_with` and contains `cmdline_contains`, by pid: PostgreSQL backends
    are titled "postgres: …" and show their database."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not command.startswith(starts_with) or cmdline_contains not in command:
                continue
            # Fields after the command name, which is in parentheses and may hold spaces.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


def processes_cpu_seconds(*, cmdline_contains: str, starts_with: str = "") -> float:
    """The sum of `processes_cpu` now."""
    return sum(processes_cpu(cmdline_contains=cmdline_contains, starts_with=starts_with).values())


def cpu_used_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two `processes_cpu` snapshots by the processes alive at the
    second: a process that started in between counts from zero, and one that ended in
    between (a database connection renewed, say) does not make the sum negative."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn_serving(
    *,
    workers: int,
    env: dict[str, str],
    ready_path: str,
    timeout: int,
    threads: int = 1,
    backlog: int | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """gunicorn serving Parity on a free loopback port (sync workers, or gthread when
    `threads` > 1) in its own process group: yields (port, server) once `ready_path` answers
    200, and stops it afterwards, even after an error."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "parity.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--timeout",
        str(timeout),
    ]
    if backlog is not None:
        cmd += ["--backlog", str(backlog)]
    if threads > 1:
        cmd += ["--worker-class", "gthread", "--threads", str(threads)]
    server = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, start_new_session=True)
    try:
        _wait_until_ready(server, port=port, ready_path=ready_path)
        yield port, server
    finally:
        gunicorn_stop(server)


def _wait_until_ready(server: subprocess.Popen[bytes], *, port: int, ready_path: str) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {server.returncode} before serving")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", ready_path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer within 60 s")


def gunicorn_stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the gunicorn and its workers (SIGTERM, then SIGKILL after 20 s)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

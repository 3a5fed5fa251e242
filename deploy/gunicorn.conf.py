"""gunicorn settings for Parity, from the environment (see deploy/.env.example).

Requests are short (claim, submit) except bulk imports and exports, which stream; the
timeout is sized for a 100,000-line import on one worker. Nothing in a web process holds
state another process needs, so workers are recycled freely.
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a whole number") from None


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# The evaluator pages are CPU-bound (claim + submit + render): one sync worker per core,
# plus one that runs while another waits on the database or on a long import or export
# (bench/queue.py --htmx on 2 cores: 206 judgments/s with 3 workers, 200 with 2, 157 with 5).
workers = _int("GUNICORN_WORKERS", multiprocessing.cpu_count() + 1)
threads = _int("GUNICORN_THREADS", 1)
worker_class = "gthread" if threads > 1 else "sync"
timeout = _int("GUNICORN_TIMEOUT", 180)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycle workers now and then so a slow leak never builds up; jitter keeps them from
# restarting all at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 5000)
max_requests_jitter = max_requests // 10
# Heartbeat files in memory: a container's overlay filesystem can stall the worker check.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# nginx in front sets X-Forwarded-Proto; trust it from the container network.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "*")
# Load the app (and every view's imports, parity/wsgi.py) once in the master: workers
# fork ready to serve, a recycled or replaced worker too. No connection is opened there.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# One JSON object per request, with the id the app put on its own log lines (X-Request-ID).
access_log_format = (
    '{"time": "%(t)s", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", "status": %(s)s, '
    '"bytes": "%(B)s", "ms": %(M)s, "request_id": "%({x-request-id}o)s", "agent": "%(a)s"}'
)


# Prometheus counters of every worker process add up at /metrics when
# PROMETHEUS_MULTIPROC_DIR names a folder: emptied at start, a dead worker's files retired.
def on_starting(server):  # noqa: ANN001, ANN201
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith(".db"):
                os.remove(os.path.join(folder, name))


def child_exit(server, worker):  # noqa: ANN001, ANN201
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

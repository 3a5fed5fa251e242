"""A real gunicorn on loopback serving the test database, for fault tests and bench/load.py:
what a deployment runs (close_old_connections per request, worker processes), unlike the
test client."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveGunicorn:
    def __init__(
        self,
        *,
        database_url: str,
        workers: int = 2,
        threads: int = 1,
        env: dict[str, str] | None = None,
        log: Any = subprocess.DEVNULL,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "parity.settings",
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            # The test process's key: sessions it makes (evaluator_session) must verify there.
            "SECRET_KEY": settings.SECRET_KEY,
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "STATIC_MANIFEST": "0",
            "WHITENOISE_USE_FINDERS": "1",
            "CELERY_BROKER_URL": "",
            "LOG_LEVEL": "ERROR",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_THREADS": str(threads),
            "GUNICORN_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveGunicorn:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(ROOT / "deploy" / "gunicorn.conf.py"),
                "--access-logfile",
                "/dev/null",
                "parity.wsgi:application",
            ],
            cwd=str(ROOT),
            env=self.env,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited at start")
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer /healthz within 60 s")

    def worker_pids(self) -> list[int]:
        import psutil

        assert self.process is not None
        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def evaluator_session(user: Any, base_url: str) -> requests.Session:
    """An HTTP session logged in as `user` (a database session, as the login form makes),
    with a CSRF token as the pages give one."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = requests.Session()
    csrf = secrets.token_hex(16)  # 32 characters: a valid unmasked CSRF secret
    host = base_url.split("//", 1)[1].split(":")[0]
    session.cookies.set("sessionid", client.cookies["sessionid"].value, domain=host)
    session.cookies.set("csrftoken", csrf, domain=host)
    session.headers.update({"X-CSRFToken": csrf, "Referer": base_url + "/"})
    return session

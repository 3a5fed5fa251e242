"""A private redis-server for tests that stop and start the broker (never the shared one)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from kombu import pools

from parity.celery import app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """redis-server on a free loopback port, in memory only, stopped and started at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="parity-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


def _pools_reset() -> None:
    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()  # kombu's process-wide producer pools, keyed by connection


@contextlib.contextmanager
def celery_broker(url: str, **conf: object) -> Iterator[None]:
    """Point the Celery app at `url` (not eager) for the block; connection pools are
    rebuilt on the way in and out so no connection to another broker is reused."""
    keys = ("broker_url", "task_always_eager", *conf)
    saved = {key: app.conf[key] for key in keys}
    _pools_reset()
    app.conf.update(broker_url=url, task_always_eager=False, **conf)
    try:
        yield
    finally:
        _pools_reset()
        app.conf.update(**saved)

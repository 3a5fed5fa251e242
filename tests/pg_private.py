"""A private PostgreSQL server for tests that restart or crash the database (never the shared
one at 127.0.0.1:5432): its own data directory in a temporary folder, its own loopback port."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dj_database_url
import psycopg
from django.conf import settings
from django.db import connection
from psycopg import sql

from tests.redis_private import free_port

# PostgreSQL refuses to run as root (CI runs the suite as root): the server and its tools
# then run as this operating-system user, who owns the data directory.
OWNER = "postgres"


def _version(bindir: str) -> tuple[int, ...]:
    found = re.search(r"/postgresql/([\d.]+)/", bindir)
    return tuple(int(part) for part in found.group(1).split(".")) if found else ()


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: pg_config's answer, else the newest Debian-style
    /usr/lib/postgresql/<version>/bin (neither is on PATH on Debian and Ubuntu)."""
    candidates: list[str] = []
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(
                subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
                ).stdout.strip()
            )
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for candidate in candidates:
        bindir = Path(candidate)
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def postgres_available() -> bool:
    return postgres_bindir() is not None


class PrivatePostgres:
    """postgres on a free loopback port with trust authentication, restarted or crashed at
    will. Commits are durable as in production (fsync, synchronous_commit and full-page
    writes on): what a test checks after a crash is what a deployment keeps."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="parity-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.running = False
        if os.geteuid() == 0:
            owner = pwd.getpwnam(OWNER)
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _tool(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", OWNER, "--", *command]
        # cwd: the owner may not be allowed into the caller's folder.
        done = subprocess.run(
            command, cwd=self.dir, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip()}\n{log}")

    def _pg_ctl(self, action: str, *options: str) -> None:
        self._tool("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-w", *options)

    def start(self) -> None:
        if not self.data.exists():
            # --no-sync: only initdb's own flush of a cluster thrown away after the test; the
            # server below runs with fsync on.
            self._tool(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"listen_addresses = '127.0.0.1'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "shared_buffers = 16MB\n"
                    "max_connections = 40\n"
                    "fsync = on\n"
                    "synchronous_commit = on\n"
                    "full_page_writes = on\n"
                )
        self._pg_ctl("start", "-t", "60")
        self.running = True

    def restart(self, *, mode: str) -> None:
        """`pg_ctl restart -m fast` (backends told to end, a checkpoint) or `-m immediate`
        (every process killed, no checkpoint: the start is a crash recovery)."""
        self._pg_ctl("restart", "-m", mode, "-t", "60")

    def stop(self, *, mode: str = "fast") -> None:
        if self.running:
            self._pg_ctl("stop", "-m", mode, "-t", "60")
            self.running = False

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            self.stop(mode="immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def database_migrated(self, name: str) -> str:
        """A new database `name` with Parity's migrations applied (as a deployment applies
        them, `manage.py migrate` in a process of its own); returns its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = self.url(name)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=settings.BASE_DIR,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "parity.settings_test",
                "DATABASE_URL": url,
            },
            check=True,
            timeout=120,
        )
        return url


@contextlib.contextmanager
def default_database(url: str) -> Iterator[None]:
    """This thread's default connection points at `url` for the block: the ORM, factories and
    sessions made with the test client read and write that database; the test database is
    back afterwards. (Other threads keep their own connections.)"""
    connection.close()
    saved = connection.settings_dict
    parsed = dj_database_url.parse(url)
    connection.settings_dict = {
        **saved,
        **{key: parsed[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")},
    }
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict = saved

"""A throw-away PostgreSQL server for tests: its own data dir, a free port on 127.0.0.1,
run as an unprivileged user (initdb refuses root), stopped by pg_ctl in a finalizer."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve import free_port

USER = "bootfleet-pgtest"


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin that has initdb and pg_ctl."""
    found = []
    for cand in glob.glob("/usr/lib/postgresql/*/bin"):
        bindir = Path(cand)
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            with contextlib.suppress(ValueError):
                found.append((int(bindir.parent.name), bindir))
    return max(found)[1] if found else None


def ensure_user() -> tuple[int, int]:
    """The uid/gid to run PostgreSQL as: ourselves, or a dedicated system user when root."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.uid, self.gid = ensure_user()
        self.root = Path(tempfile.mkdtemp(prefix="bootfleet-pg-"))
        os.chown(self.root, self.uid, self.gid)
        self.data = self.root / "data"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-U", "bootfleet", "--auth=trust", "-E", "UTF8")
        self.started = False
        self._dbs = 0

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        as_user: dict[str, object] = {}
        if os.geteuid() == 0:  # drop to the unprivileged user in the child (initdb refuses root)
            as_user = {"user": self.uid, "group": self.gid, "extra_groups": []}
        return subprocess.run(  # type: ignore[call-overload,no-any-return]
            [str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=120,
            **as_user,
        )

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self.started = True

    def stop(self) -> None:
        if self.started or (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
            self.started = False

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://bootfleet@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        self._dbs += 1
        name = f"test{self._dbs}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=bootfleet dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        """Stop the server (pg_ctl, else SIGKILL to its own postmaster PID) and delete it."""
        try:
            self.stop()
        except (subprocess.SubprocessError, OSError):
            pid = self.postmaster_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running() -> Iterator[PgServer]:
    """A PostgreSQL server of the caller's own, started and at the end stopped; the test is
    skipped where no server binaries exist, and fails in CI (.ci/debian-packages.txt has
    them)."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries missing (.ci/debian-packages.txt has them)")
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    server = PgServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.close()

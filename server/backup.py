"""Backups and moves of the registry.

- backup/restore: a whole SQLite database, online and consistent (SQLite's backup API copies
  a snapshot while the service keeps serving). PostgreSQL has pg_dump/pg_restore for that.
- export/import: the registry's configuration as JSON (profiles, groups, clients with their
  variables and groups), for moving to a fresh database or keeping under version control.
  Not exported, by design: admin tokens (secrets, even hashed, do not belong in a file that
  travels; make new ones), install history, events and client states (runtime data; an
  imported client starts idle).

A restore does not re-arm reinstalls: installs that were pending, booting or installing when
the backup was taken are cancelled, each with an event, unless the operator keeps them
(`--keep-pending`). Since the backup, those machines may have been installed and put to use;
a reinstall re-armed without warning would wipe one at its next network boot.

A running `bootfleet serve` holds a shared lock on <data_dir>/serve.lock (with its PID in
it). Restore needs the exclusive lock, so it refuses while any server runs on the data dir,
and a server does not start during a restore. The kernel drops the lock when the process
dies, even by kill -9, so a stale file never blocks anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from server.checks import Checks
from server.errors import BootfleetError, Conflict, InvalidInput, describe
from server.lifecycle import ACTIVE
from server.models import Client, ClientCreate, GroupCreate, ProfileCreate
from server.registry import clients, groups, installs, profiles
from server.registry.database import make_engine, session_scope
from server.registry.migrations import SCHEMA_VERSION, migrate

LOCK_NAME = "serve.lock"
EXPORT_FORMAT = 1
TAKEN_AT = "backup_taken_at"  # a meta key each backup file carries


class ServiceRunning(Conflict):
    code = "service_running"


class NotSqlite(BootfleetError):
    code = "not_sqlite"
    status = 400


def sqlite_path(db_url: str) -> Path:
    if not db_url.startswith("sqlite:///") or db_url in {"sqlite://", "sqlite:///:memory:"}:
        raise NotSqlite(
            "the registry is not a SQLite file; back up PostgreSQL with its own tools: "
            "pg_dump --format=custom --file=FILE DBNAME (restore with pg_restore)"
        )
    return Path(db_url.split("///", 1)[1])


# --- the serve lock ----------------------------------------------------------------------------


@contextlib.contextmanager
def serving_lock(data_dir: Path) -> Iterator[None]:
    """Held by `serve` for its lifetime: shared (several servers may share a data dir)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServiceRunning(f"a restore is in progress in {data_dir}; try again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """No server runs on `data_dir` while this is held; ServiceRunning if one does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ServiceRunning(
                f"bootfleet serve is running on {data_dir} (pid {pid}); stop it first"
            ) from None
        yield
    finally:
        os.close(fd)


# --- backup and restore -----------------------------------------------------------------------


def _copy(src: Path, dest: Path, *, stamp: bool = False) -> None:
    """A consistent snapshot of database `src` into a new file `dest`, atomically; `stamp`
    records the time of the snapshot in the copy's meta table."""
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(src, timeout=30)  # read-write open: it may need the WAL index
    try:
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)  # a read transaction: writers go on, the copy is one snapshot
            if stamp:
                with target:
                    target.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        (TAKEN_AT, f"{datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}"),
                    )
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
    finally:
        source.close()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)


def check_database(path: Path) -> int:
    """Integrity and schema version of a database file; InvalidInput if it is not usable."""
    if not path.is_file():
        raise InvalidInput("PATH", f"{path} is not a file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if conn.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
                raise InvalidInput("PATH", f"{path} fails SQLite's integrity check")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise InvalidInput("PATH", f"{path} is not a Bootfleet database: {exc}") from None
    version = int(row[0]) if row else 0
    if not 1 <= version <= SCHEMA_VERSION:
        raise InvalidInput(
            "PATH", f"{path} has schema version {version}; this release reads 1..{SCHEMA_VERSION}"
        )
    return version


def backup(db_url: str, dest: Path) -> Path:
    """Copy the live registry to `dest` (a file, or a folder for a time-stamped name)."""
    src = sqlite_path(db_url)
    if not src.exists():
        raise InvalidInput("database", f"no database at {src}")
    if dest.is_dir():
        dest = dest / f"bootfleet-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.db"
    _copy(src, dest, stamp=True)
    check_database(dest)
    return dest


def taken_at(path: Path) -> str:
    """When backup `path` was taken: its stamp, or (a backup made before stamps) its mtime."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (TAKEN_AT,)).fetchone()
    finally:
        conn.close()
    if row:
        return str(row[0])
    return f"{datetime.fromtimestamp(path.stat().st_mtime, UTC):%Y-%m-%d %H:%M:%SZ}"


@dataclass
class Restored:
    kept: Path | None  # where the replaced database was kept
    taken_at: str  # when the backup was taken
    cancelled: list[str] = field(default_factory=list)  # MACs whose reinstall was not re-armed
    armed: list[str] = field(default_factory=list)  # MACs still pending (--keep-pending)


def restore(db_url: str, data_dir: Path, src: Path, *, keep_pending: bool = False) -> Restored:
    """Replace the registry with backup `src`; the replaced one is kept beside it. Refused
    while a server runs on `data_dir`. Reinstalls active in the backup are cancelled unless
    `keep_pending`."""
    target = sqlite_path(db_url)
    check_database(src)
    done = Restored(kept=None, taken_at=taken_at(src))
    with exclusive(data_dir):
        kept = None
        if target.exists():
            kept = target.with_name(
                f"{target.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
            )
            _copy(target, kept)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            dest = sqlite3.connect(target)
            try:
                # page by page inside one transaction of the target: its WAL stays coherent
                source.backup(dest)
            finally:
                dest.close()
        finally:
            source.close()
        done.kept = kept
        _disarm(db_url, done, keep_pending)  # still under the lock: no server boots one first
    return done


def _disarm(db_url: str, done: Restored, keep_pending: bool) -> None:
    """Cancel each install the backup left active (or, keep_pending, list them)."""
    engine = make_engine(db_url)
    try:
        migrate(engine)  # a backup of an older release: its schema, brought up to date
        with session_scope(engine, write=True) as session:
            stmt = select(Client).where(col(Client.state).in_(ACTIVE)).order_by(col(Client.mac))
            for client in session.exec(stmt):
                if keep_pending:
                    done.armed.append(client.mac)
                    continue
                why = f"restored from backup of {done.taken_at}: reinstall not re-armed"
                installs.cancel(session, client, "restore", detail=why)
                done.cancelled.append(client.mac)
    finally:
        engine.dispose()


# --- export and import ------------------------------------------------------------------------


def export(session: Session) -> dict[str, Any]:
    """The registry's configuration, in a stable order (so two exports compare with diff)."""
    out_profiles = [
        {
            "name": p.name,
            "kernel": p.kernel,
            "initrd": list(p.initrd),
            "cmdline": p.cmdline,
            "answer_template": p.answer_template,
            "variables": p.variables,
        }
        for p in profiles.list_all(session)
    ]
    out_groups = [
        {"name": g.name, "description": g.description, "variables": g.variables}
        for g in groups.list_all(session)
    ]
    rows = list(session.exec(select(Client).order_by(col(Client.mac))))
    out_clients = [
        {
            "mac": c.mac,
            "hostname": c.hostname,
            "profile": c.profile,
            "groups": c.groups,
            "variables": c.variables,
        }
        for c in clients.publics(session, rows)
    ]
    return {
        "bootfleet_export": EXPORT_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "profiles": out_profiles,
        "groups": out_groups,
        "clients": out_clients,
    }


def dump(data: dict[str, Any], out: IO[str]) -> None:
    json.dump(data, out, indent=2, sort_keys=True, ensure_ascii=False)
    out.write("\n")


def import_(session: Session, data: Any, checks: Checks, actor: str | None) -> dict[str, int]:
    """Create everything in an export, validated as the API would; all or nothing (the
    caller's transaction). Anything that exists already is a Conflict naming it. Each
    client gets its "registered" event, naming `actor`."""
    if not isinstance(data, dict) or data.get("bootfleet_export") != EXPORT_FORMAT:
        raise InvalidInput("file", f"not a Bootfleet export (format {EXPORT_FORMAT})")
    counts = {"profiles": 0, "groups": 0, "clients": 0}
    for key, model, create in (
        ("profiles", ProfileCreate, lambda d: profiles.create(session, d, checks)),
        ("groups", GroupCreate, lambda d: groups.create(session, d)),
        ("clients", ClientCreate, lambda d: clients.create(session, d, checks, actor)),
    ):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise InvalidInput(key, "must be a list")
        for n, item in enumerate(items):
            try:
                create(model.model_validate_json(json.dumps(item)))
            except ValidationError as exc:
                bad = describe(exc)
                raise InvalidInput(f"{key}[{n}].{bad.field}", bad.detail) from None
            except BootfleetError as exc:
                raise InvalidInput(f"{key}[{n}]", exc.message) from None
            counts[key] += 1
    return counts

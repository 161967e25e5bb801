"""The engine, its SQLite pragmas and sessions (the schema steps: registry/migrations.py).

SQLite is the default (one file, WAL mode so readers never block the writer, a busy timeout
so concurrent writers wait instead of failing). Any SQLAlchemy URL works; PostgreSQL is the
choice when several boot servers share one registry.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from server.errors import Unavailable

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000
BUSY = "the registry database is busy or unreachable; retry shortly"


def make_engine(url: str, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Engine:
    """Create an engine for `url`; for SQLite, create the folder and set WAL + busy timeout
    (how long a write waits for another writer's lock before the request answers 503)."""
    if url.startswith("sqlite"):
        memory = url in {"sqlite://", "sqlite:///:memory:"}
        if not memory:
            Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        # A file database keeps a connection per busy thread (16 HTTP threads, TFTP, the
        # reaper): past the default pool of 5, every request opened and closed a connection
        # and re-ran the pragmas below.
        pool: dict[str, Any] = (
            {"poolclass": StaticPool} if memory else {"pool_size": 32, "max_overflow": 32}
        )
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            **pool,
        )
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_timeout_ms))
        _WRITERS[engine] = _Writer(threading.RLock(), busy_timeout_ms / 1000)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so that a
        # read-then-write transaction takes the write lock up front (BEGIN IMMEDIATE) when
        # asked to, and never fails half-way with "database is locked".
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        # Sessions in UTC, whatever the server's or database's time zone: a naive value then
        # means UTC both ways, also in a `timestamp without time zone` column (the schema an
        # older sqlmodel made) and in comparisons with it. See models.UtcTimestamp.
        connect_args["options"] = "-c timezone=UTC"
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args
    )


def _sqlite_pragmas(busy_timeout_ms: int, dbapi_conn: object, _record: object) -> None:
    dbapi_conn.isolation_level = None  # type: ignore[attr-defined]
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


@dataclass(frozen=True)
class _Writer:
    lock: threading.RLock
    timeout: float  # seconds


# One writer lock per SQLite engine, living exactly as long as the engine: keyed weakly by
# the engine itself, never by id(), which a later engine may reuse and so inherit a lock.
_WRITERS: weakref.WeakKeyDictionary[Engine, _Writer] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()


def _writer(engine: Engine) -> _Writer:
    with _WRITERS_GUARD:
        found = _WRITERS.get(engine)
        if found is None:  # an SQLite engine not made by make_engine
            found = _WRITERS[engine] = _Writer(threading.RLock(), SQLITE_BUSY_TIMEOUT_MS / 1000)
        return found


def busy_timeout(engine: Engine) -> float:
    """Seconds a write waits for the write lock before giving up (the engine's setting)."""
    return _writer(engine).timeout


@contextmanager
def sqlite_writer(engine: Engine) -> Iterator[None]:
    """Queue this process's SQLite writers on a lock before BEGIN IMMEDIATE.

    SQLite's own busy handler makes a waiting writer sleep and poll (1, 2, 5, 10... ms),
    which under a burst of boot requests turns a 100 us transaction into tens of ms of
    latency. Waiting on a lock hands the database over as soon as it is free. Other
    processes (the CLI) still meet the busy timeout. The wait is bounded by the same
    timeout, and ends as Unavailable like a locked database would.
    """
    writer = _writer(engine)
    lock = writer.lock
    if not lock.acquire(timeout=writer.timeout):
        raise Unavailable(BUSY)
    try:
        yield
    finally:
        lock.release()


def _immediate(engine: Engine) -> Engine:
    """`engine` whose transactions begin IMMEDIATE (SQLite), made once per engine: making
    one costs more than the short write on the boot path it is for."""
    found: Engine | None = getattr(engine, "_bootfleet_immediate", None)
    if found is None:
        found = engine.execution_options(sqlite_begin="IMMEDIATE")
        engine._bootfleet_immediate = found  # type: ignore[attr-defined]
    return found


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    `write=True` takes SQLite's write lock at BEGIN, so compare-and-set sequences never
    deadlock between readers that upgrade. A locked or unreachable database is Unavailable.
    """
    if write and engine.dialect.name == "sqlite":
        with (
            sqlite_writer(engine),
            _session(_immediate(engine)) as s,
        ):
            yield s
    else:
        with _session(engine) as s:
            yield s


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection in a write transaction (like session_scope(write=True), without
    the ORM's per-transaction bookkeeping): for the short statements of the boot path."""
    lock = sqlite_writer(engine) if engine.dialect.name == "sqlite" else nullcontext()
    bind = engine
    if engine.dialect.name == "sqlite":
        bind = _immediate(engine)
    try:
        with lock, bind.begin() as conn:
            yield conn
    except OperationalError as exc:
        log.warning("database unavailable: %s", exc.orig)
        raise Unavailable(BUSY) from exc


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection in a read transaction (in WAL mode it never waits for a writer)."""
    try:
        with engine.connect() as conn:
            yield conn
    except OperationalError as exc:
        log.warning("database unavailable: %s", exc.orig)
        raise Unavailable(BUSY) from exc


@contextmanager
def _session(bind: Engine) -> Iterator[Session]:
    try:
        with Session(bind, expire_on_commit=False) as session:
            yield session
            session.commit()
    except OperationalError as exc:
        log.warning("database unavailable: %s", exc.orig)
        raise Unavailable(BUSY) from exc

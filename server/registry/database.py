"""The engine, its SQLite pragmas, sessions, and the versioned schema migrations.

SQLite is the default (one file, WAL mode so readers never block the writer, a busy timeout
so concurrent writers wait instead of failing). Any SQLAlchemy URL works; PostgreSQL is the
choice when several boot servers share one registry.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, create_engine, select

from server import models
from server.errors import Unavailable
from server.registry import hooks

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000


def make_engine(url: str, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Engine:
    """Create an engine for `url`; for SQLite, create the folder and set WAL + busy timeout
    (how long a write waits for another writer's lock before the request answers 503)."""
    hooks.install_outbox()
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
        raise Unavailable("the registry database is busy or unreachable; retry shortly")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    `write=True` takes SQLite's write lock at BEGIN, so compare-and-set sequences never
    deadlock between readers that upgrade. A locked or unreachable database is Unavailable.
    """
    if write and engine.dialect.name == "sqlite":
        with (
            sqlite_writer(engine),
            _session(engine.execution_options(sqlite_begin="IMMEDIATE")) as s,
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
        bind = engine.execution_options(sqlite_begin="IMMEDIATE")
    try:
        with lock, bind.begin() as conn:
            yield conn
    except OperationalError as exc:
        log.warning("database unavailable: %s", exc.orig)
        raise Unavailable("the registry database is busy or unreachable; retry shortly") from exc


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection in a read transaction (in WAL mode it never waits for a writer)."""
    try:
        with engine.connect() as conn:
            yield conn
    except OperationalError as exc:
        log.warning("database unavailable: %s", exc.orig)
        raise Unavailable("the registry database is busy or unreachable; retry shortly") from exc


@contextmanager
def _session(bind: Engine) -> Iterator[Session]:
    try:
        with Session(bind, expire_on_commit=False) as session:
            yield session
            session.commit()
    except OperationalError as exc:
        log.warning("database unavailable: %s", exc.orig)
        raise Unavailable("the registry database is busy or unreachable; retry shortly") from exc


# --- migrations -------------------------------------------------------------------------------
# Each step moves the schema from version N-1 to N. Add steps, never edit a released one.


def _v1_initial(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


def _v2_hooks_waves_wake(conn: Connection) -> None:
    """Webhooks and their outbox, waves and their members (new tables); a group's
    Wake-on-LAN address, and the facts a machine reports when it asks to be registered
    (new nullable columns)."""
    new = [models.Hook, models.Delivery, models.Wave, models.WaveMember]
    SQLModel.metadata.create_all(conn, tables=[m.__table__ for m in new])  # type: ignore[attr-defined]
    # v1 is `create_all` of the current models: a database made fresh has the columns.
    _add_columns(conn, "clientgroup", {"wake_address": "VARCHAR(15)"})
    fact = f"VARCHAR({models.FACT_MAX})"
    stamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    _add_columns(
        conn,
        "discovered",
        {
            "requested_at": stamp,
            "manufacturer": fact,
            "product": fact,
            "serial": fact,
            "uuid": fact,
        },
    )


def _add_columns(conn: Connection, table: str, columns: dict[str, str]) -> None:
    """ALTER TABLE ADD COLUMN for each nullable column `table` does not have yet."""
    have = {c["name"] for c in inspect(conn).get_columns(table)}
    for name, sql_type in columns.items():
        if name not in have:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))


MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial, _v2_hooks_waves_wake]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(engine: Engine) -> int:
    # Ask the catalogue rather than catch the failed SELECT: PostgreSQL reports a missing
    # table as ProgrammingError (not OperationalError) and aborts the transaction with it.
    if not inspect(engine).has_table("meta"):
        return 0
    with Session(engine) as session:
        row = session.exec(select(models.Meta).where(models.Meta.key == "schema_version")).first()
        return int(row.value) if row else 0


def migrate(engine: Engine) -> int:
    """Bring the schema to SCHEMA_VERSION; refuse a database made by a newer release."""
    found = current_version(engine)
    if found > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {found} is newer than this release ({SCHEMA_VERSION})"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with engine.begin() as conn:
            MIGRATIONS[version - 1](conn)
            SQLModel.metadata.create_all(conn, tables=[models.Meta.__table__])  # type: ignore[attr-defined]
            with Session(conn) as session:
                session.merge(models.Meta(key="schema_version", value=str(version)))
                session.commit()
        log.info("database migrated to schema version %s", version)
    return SCHEMA_VERSION

"""The registry side of the boot path: a machine's state, and when it was last seen.

A classroom that powers on at once sends hundreds of boot requests in a second, each a
lookup by MAC and a "last seen" write. The lookup is one SELECT on a pooled connection (on
SQLite straight through the driver: the ORM and Core layers cost five times the query). The
writes are group-committed: each caller still waits until its own row is committed, but the
callers that arrive while one transaction commits are written together by the next one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Engine

from server.errors import Unavailable
from server.models import Client
from server.registry.database import (
    busy_timeout,
    read_connection,
    sqlite_writer,
    write_connection,
)

_CLIENT = Client.__table__  # type: ignore[attr-defined]
_FIND = select(_CLIENT.c.id, _CLIENT.c.state).where(_CLIENT.c.mac == bindparam("b_mac"))
# COALESCE: a request without a peer or an arch keeps the stored one; written in SQL so a
# concurrent writer's newer value is never replaced by a stale read.
_SEEN = (
    update(_CLIENT)
    .where(_CLIENT.c.id == bindparam("b_id"))
    .values(
        last_ip=func.coalesce(bindparam("b_ip", type_=_CLIENT.c.last_ip.type), _CLIENT.c.last_ip),
        last_arch=func.coalesce(
            bindparam("b_arch", type_=_CLIENT.c.last_arch.type), _CLIENT.c.last_arch
        ),
        last_seen_at=bindparam("b_seen", type_=_CLIENT.c.last_seen_at.type),
    )
)
BUSY = "the registry database is busy or unreachable; retry shortly"


class _Sqlite:
    """_FIND and _SEEN compiled once for the SQLite driver, with their bind processing."""

    def __init__(self, engine: Engine) -> None:
        find = _FIND.compile(dialect=engine.dialect)
        seen = _SEEN.compile(dialect=engine.dialect)
        self.find_sql = str(find)
        self.seen_sql = str(seen)
        self.seen_order: list[str] = list(seen.positiontup or [])
        seen_type = _CLIENT.c.last_seen_at.type.dialect_impl(engine.dialect)
        to_db = seen_type.bind_processor(engine.dialect)  # the format the ORM writes
        self.seen_at: Callable[[datetime], Any] = to_db or (lambda v: v)


@dataclass
class _Entry:
    params: dict[str, Any]
    done: bool = False
    error: BaseException | None = None


class BootRegistry:
    """lookup() and seen() for one engine; shared by every thread of the process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = _Sqlite(engine) if engine.dialect.name == "sqlite" else None
        self._queue: list[_Entry] = []
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()

    def lookup(self, mac: str) -> tuple[int, str] | None:
        """(id, state) of the client with this canonical MAC, or None."""
        if self._sqlite is None:
            with read_connection(self.engine) as conn:
                row = conn.execute(_FIND, {"b_mac": mac}).first()
            return (row[0], row[1]) if row is not None else None
        try:
            raw = self.engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute(self._sqlite.find_sql, (mac,))
                found = cur.fetchone()
                cur.close()
            finally:
                raw.close()  # back to the pool
        except sqlite3.OperationalError as exc:
            raise Unavailable(BUSY) from exc
        return (found[0], found[1]) if found is not None else None

    def seen(self, client_id: int, ip: str | None, arch: str | None, at: datetime) -> None:
        """Store last_ip/last_arch/last_seen_at of one client; returns once committed."""
        entry = _Entry(
            {"b_id": client_id, "b_ip": ip or None, "b_arch": arch or None, "b_seen": at}
        )
        with self._queue_lock:
            self._queue.append(entry)
        if not self._leader.acquire(timeout=busy_timeout(self.engine)):
            raise Unavailable(BUSY)
        try:
            if not entry.done:  # nobody took it along: lead, and take everyone waiting
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    self._write([e.params for e in batch])
                except BaseException as exc:
                    for e in batch:
                        e.error = exc
                    raise
                finally:
                    for e in batch:
                        e.done = True
        finally:
            self._leader.release()
        if entry.error is not None:
            raise Unavailable(BUSY)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if self._sqlite is None:
            with write_connection(self.engine) as conn:
                conn.execute(_SEEN, rows)
            return
        q = self._sqlite
        args = []
        for params in rows:
            params = {**params, "b_seen": q.seen_at(params["b_seen"])}
            args.append(tuple(params[name] for name in q.seen_order))
        with sqlite_writer(self.engine):
            try:
                raw = self.engine.raw_connection()
                try:
                    cur = raw.cursor()
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        cur.executemany(q.seen_sql, args)
                        cur.execute("COMMIT")
                    except BaseException:
                        cur.execute("ROLLBACK")
                        raise
                    finally:
                        cur.close()
                finally:
                    raw.close()
            except sqlite3.OperationalError as exc:
                raise Unavailable(BUSY) from exc

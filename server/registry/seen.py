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

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Engine

from server.errors import Unavailable
from server.models import Client, Discovered, Event
from server.registry.database import (
    busy_timeout,
    read_connection,
    sqlite_writer,
    write_connection,
)
from server.registry.events import DISCOVERED_DETAIL

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
_DISC = Discovered.__table__  # type: ignore[attr-defined]
_EVENT = Event.__table__  # type: ignore[attr-defined]
_REGISTERED = select(_CLIENT.c.id).where(_CLIENT.c.mac == bindparam("b_mac"))
# events.seen_unregistered, statement by statement: a known MAC counts one more boot...
_DISC_AGAIN = (
    update(_DISC)
    .where(_DISC.c.mac == bindparam("b_mac"))
    .values(
        last_seen_at=bindparam("b_seen", type_=_DISC.c.last_seen_at.type),
        last_ip=func.coalesce(bindparam("b_ip", type_=_DISC.c.last_ip.type), _DISC.c.last_ip),
        last_arch=func.coalesce(
            bindparam("b_arch", type_=_DISC.c.last_arch.type), _DISC.c.last_arch
        ),
        boots=_DISC.c.boots + 1,
    )
)
# ... a new one gets its row and a "discovered" event.
_DISC_NEW = insert(_DISC).values(
    mac=bindparam("b_mac"),
    first_seen_at=bindparam("b_seen", type_=_DISC.c.first_seen_at.type),
    last_seen_at=bindparam("b_seen", type_=_DISC.c.last_seen_at.type),
    last_ip=bindparam("b_ip", type_=_DISC.c.last_ip.type),
    last_arch=bindparam("b_arch", type_=_DISC.c.last_arch.type),
    boots=1,
)
_DISC_EVENT = insert(_EVENT).values(
    mac=bindparam("b_mac"),
    at=bindparam("b_seen", type_=_EVENT.c.at.type),
    kind="discovered",
    detail=DISCOVERED_DETAIL,
    source=bindparam("b_ip", type_=_EVENT.c.source.type),
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
        self.unreg = [
            _Compiled(engine, stmt) for stmt in (_REGISTERED, _DISC_AGAIN, _DISC_NEW, _DISC_EVENT)
        ]
        seen_type = _CLIENT.c.last_seen_at.type.dialect_impl(engine.dialect)
        to_db = seen_type.bind_processor(engine.dialect)  # the format the ORM writes
        self.seen_at: Callable[[datetime], Any] = to_db or (lambda v: v)


class _Compiled:
    """One statement as SQL text for the driver, and its parameter order."""

    def __init__(self, engine: Engine, stmt: Any) -> None:
        compiled = stmt.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.order: list[str] = list(compiled.positiontup or [])
        self.fixed: dict[str, Any] = dict(compiled.params)  # literals: kind, boots + 1, ...

    def args(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params[n] if n in params else self.fixed[n] for n in self.order)


@dataclass
class _Entry:
    params: dict[str, Any]
    unregistered: bool = False  # a sighting of an unknown MAC, not of a client
    registered: bool = False  # ... which turned out to be registered by now
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
        self._commit(entry)

    def unregistered(self, mac: str, ip: str | None, arch: str | None, at: datetime) -> bool:
        """Record a boot of a MAC no client has, as events.seen_unregistered does, in the
        group commit; False if a client with that MAC exists by then (nothing written: the
        caller decides again). Only on SQLite; elsewhere False, and the ORM path does it."""
        if self._sqlite is None:
            return False
        params = {"b_mac": mac, "b_ip": ip or None, "b_arch": arch or None, "b_seen": at}
        entry = _Entry(params, unregistered=True)
        self._commit(entry)
        return not entry.registered

    def _commit(self, entry: _Entry) -> None:
        with self._queue_lock:
            self._queue.append(entry)
        if not self._leader.acquire(timeout=busy_timeout(self.engine)):
            raise Unavailable(BUSY)
        try:
            if not entry.done:  # nobody took it along: lead, and take everyone waiting
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    self._write(batch)
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

    def _write(self, batch: list[_Entry]) -> None:
        if self._sqlite is None:  # only sightings of clients come here (see unregistered)
            with write_connection(self.engine) as conn:
                conn.execute(_SEEN, [e.params for e in batch])
            return
        q = self._sqlite
        args = []
        unknown = []
        for e in batch:
            params = {**e.params, "b_seen": q.seen_at(e.params["b_seen"])}
            if e.unregistered:
                unknown.append((e, params))
            else:
                args.append(tuple(params[name] for name in q.seen_order))
        with sqlite_writer(self.engine):
            try:
                raw = self.engine.raw_connection()
                try:
                    cur = raw.cursor()
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        if args:
                            cur.executemany(q.seen_sql, args)
                        for e, params in unknown:
                            self._unregistered(cur, e, params)
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

    def _unregistered(self, cur: Any, e: _Entry, params: dict[str, Any]) -> None:
        registered, again, new, event = self._sqlite.unreg  # type: ignore[union-attr]
        cur.execute(registered.sql, registered.args(params))
        if cur.fetchone() is not None:
            e.registered = True
            return
        cur.execute(again.sql, again.args(params))
        if cur.rowcount == 0:
            cur.execute(new.sql, new.args(params))
            cur.execute(event.sql, event.args(params))

"""The registry side of the boot path: a machine's state, and when it was last seen.

A classroom that powers on at once sends hundreds of boot requests in a second, each a
lookup by MAC and a "last seen" write. The lookup is one SELECT on a pooled connection (on
SQLite straight through the driver: the ORM and Core layers cost five times the query).

The sighting of a registered client (last_ip, last_arch, last_seen_at) is written behind:
the boot answer does not wait for it. A writer thread gathers sightings for FLUSH_SECONDS,
keeps the newest per client, and writes them in one transaction; a sighting that cannot be
written (a busy database) stays queued for the next round, and close() writes what is left.
The queue holds at most one entry per registered client. Sightings of unregistered MACs
(a "discovered" row and event) are still written before the answer, group-committed: the
callers that arrive while one transaction commits are written together by the next one.
"""

from __future__ import annotations

import logging
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
# The MAC too: a sighting queued for a client deleted meanwhile must not land on another
# client that reuses its id.
_SEEN = (
    update(_CLIENT)
    .where(_CLIENT.c.id == bindparam("b_id"), _CLIENT.c.mac == bindparam("b_mac"))
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
FLUSH_SECONDS = 0.1  # how long a sighting waits to be written with others

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Sighting:
    mac: str
    ip: str | None
    arch: str | None
    at: datetime

    def then(self, newer: _Sighting) -> _Sighting:
        """`newer`, keeping the address or arch it lacks from this one (as COALESCE does)."""
        if newer.mac != self.mac:  # the id belongs to another client by now
            return newer
        return _Sighting(newer.mac, newer.ip or self.ip, newer.arch or self.arch, newer.at)

    def params(self, client_id: int) -> dict[str, Any]:
        return {
            "b_id": client_id,
            "b_mac": self.mac,
            "b_ip": self.ip,
            "b_arch": self.arch,
            "b_seen": self.at,
        }


class BootRegistry:
    """lookup() and seen() for one engine; shared by every thread of the process."""

    def __init__(self, engine: Engine, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.engine = engine
        self.flush_seconds = flush_seconds
        self._sqlite = _Sqlite(engine) if engine.dialect.name == "sqlite" else None
        self._queue: list[_Entry] = []
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()
        self._sightings: dict[int, _Sighting] = {}
        self._sightings_lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._writer: threading.Thread | None = None

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

    def seen(
        self, client_id: int, mac: str, ip: str | None, arch: str | None, at: datetime
    ) -> None:
        """Queue last_ip/last_arch/last_seen_at of one client, to be written within about
        flush_seconds by the writer thread (at once after close())."""
        new = _Sighting(mac, ip or None, arch or None, at)
        with self._sightings_lock:
            old = self._sightings.get(client_id)
            self._sightings[client_id] = new if old is None else old.then(new)
            closed = self._closing.is_set()
            if self._writer is None and not closed:
                self._writer = threading.Thread(
                    target=self._write_behind, name="bootfleet-sightings", daemon=True
                )
                self._writer.start()
        if closed:
            self.flush()
        else:
            self._wake.set()

    def flush(self) -> None:
        """Write every sighting queued before this call; returns once they are committed.
        Raises Unavailable (a busy or unreachable database), and then the sightings stay
        queued, merged with any newer ones."""
        with self._flushing:  # a flush under way may hold ours: wait for its end
            with self._sightings_lock:
                taken, self._sightings = self._sightings, {}
            if not taken:
                return
            try:
                self._commit([_Entry(s.params(cid)) for cid, s in taken.items()])
            except BaseException:
                with self._sightings_lock:
                    for cid, s in taken.items():
                        newer = self._sightings.get(cid)
                        self._sightings[cid] = s if newer is None else s.then(newer)
                raise

    def pending(self) -> int:
        """Sightings queued and not yet written."""
        with self._sightings_lock:
            return len(self._sightings)

    def close(self) -> None:
        """Stop the writer thread and write what is still queued (at shutdown)."""
        self._closing.set()
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=busy_timeout(self.engine) + 5)
        try:
            self.flush()
        except Unavailable:
            log.warning(
                "%d client sightings not written: the registry is unavailable", self.pending()
            )

    def _write_behind(self) -> None:
        failing = False
        while True:
            self._wake.wait()
            if self._closing.wait(self.flush_seconds):  # gather others; close() flushes
                return
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # kept queued: try again next round, log once
                if not failing:
                    log.warning("client sightings not written, retrying: %s", exc)
                failing = True
                self._wake.set()
            else:
                if failing:
                    log.info("client sightings written again")
                failing = False

    def unregistered(self, mac: str, ip: str | None, arch: str | None, at: datetime) -> bool:
        """Record a boot of a MAC no client has, as events.seen_unregistered does, in the
        group commit; False if a client with that MAC exists by then (nothing written: the
        caller decides again). Only on SQLite; elsewhere False, and the ORM path does it."""
        if self._sqlite is None:
            return False
        params = {"b_mac": mac, "b_ip": ip or None, "b_arch": arch or None, "b_seen": at}
        entry = _Entry(params, unregistered=True)
        self._commit([entry])
        return not entry.registered

    def _commit(self, entries: list[_Entry]) -> None:
        """Write `entries`, and whatever other threads queued meanwhile, in one transaction;
        returns once they are committed."""
        with self._queue_lock:
            self._queue.extend(entries)
        if not self._leader.acquire(timeout=busy_timeout(self.engine)):
            # Told "unavailable", the caller must not be written later by another leader
            # anyway: withdraw whatever of ours no leader has taken yet.
            with self._queue_lock:
                mine = {id(e) for e in entries}
                self._queue = [e for e in self._queue if id(e) not in mine]
            raise Unavailable(BUSY)
        try:
            # A leader takes the whole queue at once: ours are all done, or none is.
            if not entries[0].done:  # nobody took them along: lead, and take everyone
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
        if entries[0].error is not None:
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

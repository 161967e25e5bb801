"""The registry side of the boot path: a machine's state, and when it was last seen.

A classroom that powers on at once sends hundreds of boot requests in a second, each a
lookup by MAC and a "last seen" write. The lookup is one read-only SELECT on a pooled
connection, and every statement here goes through registry/driver.py (on SQLite straight
through the driver, compiled once: the Core layer's BEGIN, rollback and bookkeeping cost
several times the query). The statements are the registry's own Core statements with their
column types, so no rule about events or timestamps has a second copy here.

The sighting of a registered client (last_ip, last_arch, last_seen_at) is written behind:
the boot answer does not wait for it. A writer thread gathers sightings for FLUSH_SECONDS,
keeps the newest per client, and writes them in one statement; a sighting that cannot
be written (a busy database) stays queued for the next round, and close() writes what is
left. The queue holds at most one entry per registered client. Sightings of unregistered
MACs are still written before the answer, by events.seen_unregistered_many, group-committed:
the callers that arrive while one transaction commits are written together by the next one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Engine

from server.errors import Unavailable
from server.lifecycle import State
from server.models import Client
from server.registry import driver, events
from server.registry.database import BUSY, busy_timeout

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
FLUSH_SECONDS = 0.1  # how long a sighting waits to be written with others

log = logging.getLogger(__name__)


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
        self._queue: list[_Entry] = []
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()
        self._sightings: dict[int, _Sighting] = {}
        self._sightings_lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._writer: threading.Thread | None = None

    def lookup(self, mac: str) -> tuple[int, State] | None:
        """(id, state) of the client with this canonical MAC, or None."""
        with driver.reading(self.engine) as conn:
            row = conn.execute(_FIND, {"b_mac": mac}).first()
        return (row[0], row[1]) if row is not None else None

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
        """Record a boot of a MAC no client has (events.seen_unregistered) in the group
        commit; False if a client with that MAC exists by then (nothing written: the caller
        decides again)."""
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
        sightings = [e.params for e in batch if not e.unregistered]
        unknown = [e for e in batch if e.unregistered]
        with driver.writing(self.engine) as conn:
            if sightings:
                conn.execute(_SEEN, sightings)
            if unknown:
                registered = events.seen_unregistered_many(
                    conn,
                    [
                        events.Sighting(p["b_mac"], p["b_ip"], p["b_arch"], p["b_seen"])
                        for p in (e.params for e in unknown)
                    ],
                )
                for e in unknown:
                    e.registered = e.params["b_mac"] in registered

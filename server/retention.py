"""Retention: the discovered list and the event log stop growing.

Every new MAC that network-boots adds a discovered row and a "discovered" event, and a
client's history grows with each install. The reaper thread prunes, never the boot path:

- discovered: the newest `discovered_max` machines by last boot are kept; an older row goes,
  and the "discovered" event of its MAC with it (unless a client has that MAC by now);
- events: the newest `events_per_mac` of each MAC are kept, and none older than `event_days`.

Deletes go in chunks of CHUNK rows, each its own short write transaction, so a boot that
must record a new machine waits for one chunk at most, not for the whole clean-up.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.engine import Engine

from server.models import Client, Discovered, Event, utcnow
from server.registry.database import read_connection, write_connection

CHUNK = 1000
PRUNE_SECONDS = 300.0  # at most one clean-up per this many seconds (the first one at start)

_DISC = Discovered.__table__  # type: ignore[attr-defined]
_EVENT = Event.__table__  # type: ignore[attr-defined]
_CLIENT = Client.__table__  # type: ignore[attr-defined]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    discovered_max: int = 10_000
    events_per_mac: int = 1_000
    event_days: int = 365


class Retention:
    """Prunes one registry and counts what it dropped (for /metrics)."""

    def __init__(self, engine: Engine, limits: Limits, every: float = PRUNE_SECONDS) -> None:
        self.engine = engine
        self.limits = limits
        self.every = every
        self.discovered_pruned = 0
        self.events_pruned = 0
        self._last: float | None = None
        self._lock = threading.Lock()

    def due(self) -> None:
        """Prune if the last clean-up is `every` seconds old (the reaper calls this)."""
        now = time.monotonic()
        if self._last is None or now - self._last >= self.every:
            self._last = now
            self.prune()

    def prune(self) -> tuple[int, int]:
        """Apply the limits now; (discovered rows, events) dropped."""
        with self._lock:
            rows, events = self._discovered()
            events += self._per_mac() + self._too_old()
            self.discovered_pruned += rows
            self.events_pruned += events
        if rows or events:
            log.info("retention: dropped %d discovered machines and %d events", rows, events)
        return rows, events

    def render_prometheus(self) -> str:
        return (
            "# HELP bootfleet_discovered_pruned_total Discovered machines dropped, "
            "oldest first, past the discovered_max newest.\n"
            "# TYPE bootfleet_discovered_pruned_total counter\n"
            f"bootfleet_discovered_pruned_total {self.discovered_pruned}\n"
            "# HELP bootfleet_events_pruned_total Events dropped by events_per_mac, "
            "event_days or with their discovered machine.\n"
            "# TYPE bootfleet_events_pruned_total counter\n"
            f"bootfleet_events_pruned_total {self.events_pruned}\n"
        )

    def _discovered(self) -> tuple[int, int]:
        keep = self.limits.discovered_max
        order = (_DISC.c.last_seen_at.desc(), _DISC.c.mac.desc())
        with read_connection(self.engine) as conn:
            # the oldest row kept: it and everything seen after it stay
            edge = conn.execute(
                select(_DISC.c.last_seen_at, _DISC.c.mac).order_by(*order).offset(keep - 1).limit(1)
            ).first()
        if edge is None:
            return 0, 0
        at, mac = edge
        older = or_(_DISC.c.last_seen_at < at, and_(_DISC.c.last_seen_at == at, _DISC.c.mac < mac))
        rows = events = 0
        while True:
            with write_connection(self.engine) as conn:
                macs = list(conn.execute(select(_DISC.c.mac).where(older).limit(CHUNK)).scalars())
                if not macs:
                    return rows, events
                rows += conn.execute(delete(_DISC).where(_DISC.c.mac.in_(macs))).rowcount
                events += conn.execute(
                    delete(_EVENT).where(
                        _EVENT.c.mac.in_(macs),
                        _EVENT.c.kind == "discovered",
                        _EVENT.c.mac.not_in(select(_CLIENT.c.mac)),
                    )
                ).rowcount

    def _per_mac(self) -> int:
        keep = self.limits.events_per_mac
        with read_connection(self.engine) as conn:
            macs = list(
                conn.execute(
                    select(_EVENT.c.mac).group_by(_EVENT.c.mac).having(func.count() > keep)
                ).scalars()
            )
        dropped = 0
        for mac in macs:
            with read_connection(self.engine) as conn:
                newest = (
                    select(_EVENT.c.id)
                    .where(_EVENT.c.mac == mac)
                    .order_by(_EVENT.c.id.desc())
                    .offset(keep - 1)
                    .limit(1)
                )
                edge = conn.execute(newest).scalar()
            if edge is not None:
                dropped += self._chunks((_EVENT.c.mac == mac) & (_EVENT.c.id < edge))
        return dropped

    def _too_old(self) -> int:
        cutoff = utcnow() - timedelta(days=self.limits.event_days)
        return self._chunks(_EVENT.c.at < cutoff)

    def _chunks(self, where: ColumnElement[bool]) -> int:
        """Delete the events matching `where`, CHUNK per transaction."""
        dropped = 0
        while True:
            with write_connection(self.engine) as conn:
                ids = select(_EVENT.c.id).where(where).limit(CHUNK)
                n = conn.execute(delete(_EVENT).where(_EVENT.c.id.in_(ids))).rowcount
            dropped += n
            if n < CHUNK:
                return dropped

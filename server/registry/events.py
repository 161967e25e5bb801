"""The append-only event log and the list of machines seen without being registered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, func, insert, literal, union_all, update
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session, col, select

from server.models import Client, Discovered, Event, utcnow
from server.registry import hooks
from server.registry.driver import Executes

DISCOVERED_DETAIL = "unregistered machine network-booted: local boot"
_EVENT = Event.__table__  # type: ignore[attr-defined]
_DISC = Discovered.__table__  # type: ignore[attr-defined]
_CLIENT = Client.__table__  # type: ignore[attr-defined]
# Another boot of a known unregistered MAC: one more, and the address or arch it lacks kept
# from before (COALESCE in SQL, so a concurrent writer's newer value is never lost).
_AGAIN = (
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


# Statements built once: on the boot path, making one costs more than running it.
_MACS: BindParameter[str] = bindparam("macs", expanding=True)
# Which of some MACs a client has (True) or the discovered list has (False).
_KNOWN = union_all(
    select(_CLIENT.c.mac, literal(True)).where(_CLIENT.c.mac.in_(_MACS)),
    select(_DISC.c.mac, literal(False)).where(_DISC.c.mac.in_(_MACS)),
)
_NEW_EVENT = insert(_EVENT)
_NEW_DISC = insert(_DISC)


def record(
    session: Session, mac: str, kind: str, detail: str = "", source: str | None = None
) -> None:
    record_many(session, [(mac, kind, detail, source, utcnow())])


def record_many(
    session: Session | Executes, items: Iterable[tuple[str, str, str, str | None, datetime]]
) -> None:
    """Append (mac, kind, detail, source, at) events with one INSERT, however many."""
    values = [
        {"mac": mac, "at": at, "kind": kind, "detail": detail[:2048], "source": source}
        for mac, kind, detail, source, at in items
    ]
    if not values:
        return
    conn: Executes
    if isinstance(session, Session):
        if any(v["kind"] in hooks.HOOKED_KINDS for v in values):
            session.flush()  # the client and install as this event leaves them, for its hooks
        conn = session.connection()
    else:
        conn = session
    conn.execute(_NEW_EVENT, values)
    hooks.enqueue(conn, values)


def list_events(session: Session, mac: str, limit: int = 200) -> list[Event]:
    stmt = select(Event).where(Event.mac == mac).order_by(col(Event.id).desc()).limit(limit)
    return list(session.exec(stmt))


class Sighting(NamedTuple):
    """One network boot of a MAC no client has."""

    mac: str
    ip: str | None
    arch: str | None
    at: datetime


def seen_unregistered(session: Session, mac: str, ip: str | None, arch: str | None) -> None:
    seen_unregistered_many(
        session.connection(), [Sighting(mac, ip or None, arch or None, utcnow())]
    )


def seen_unregistered_many(conn: Executes, sightings: Sequence[Sighting]) -> set[str]:
    """Boots of MACs no client has, oldest first: a MAC's first boot gets its row and a
    "discovered" event, each later one counts. A few statements for the lot, however many
    (the boot path group-commits them). Returns the MACs left out because a client has
    them by now."""
    if not sightings:
        return set()
    found = conn.execute(_KNOWN, {"macs": list({s.mac for s in sightings})}).all()
    registered = {mac for mac, client in found if client}
    known = {mac for mac, client in found if not client}
    new: list[Sighting] = []
    again = []
    for s in sightings:
        if s.mac in registered:
            continue
        if s.mac in known:
            again.append({"b_mac": s.mac, "b_seen": s.at, "b_ip": s.ip, "b_arch": s.arch})
        else:
            known.add(s.mac)
            new.append(s)
    if new:
        rows = [
            {
                "mac": s.mac,
                "first_seen_at": s.at,
                "last_seen_at": s.at,
                "last_ip": s.ip,
                "last_arch": s.arch,
                "boots": 1,
            }
            for s in new
        ]
        conn.execute(_NEW_DISC, rows)
        record_many(conn, [(s.mac, "discovered", DISCOVERED_DETAIL, s.ip, s.at) for s in new])
    if again:
        conn.execute(_AGAIN, again)
    return registered


def list_discovered(session: Session, limit: int = 1000) -> list[Discovered]:
    stmt = select(Discovered).order_by(col(Discovered.last_seen_at).desc()).limit(limit)
    return list(session.exec(stmt))

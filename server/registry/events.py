"""The append-only event log and the list of machines seen without being registered."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session, col, select

from server.models import Discovered, Event, utcnow

DISCOVERED_DETAIL = "unregistered machine network-booted: local boot"


def record(
    session: Session,
    mac: str,
    kind: str,
    detail: str = "",
    source: str | None = None,
    at: datetime | None = None,
) -> None:
    session.add(Event(mac=mac, at=at or utcnow(), kind=kind, detail=detail[:2048], source=source))


def record_many(
    session: Session, items: Iterable[tuple[str, str, str]], source: str | None
) -> None:
    """`record` for many (mac, kind, detail) at once: one INSERT, not one per event."""
    now = utcnow()
    values = [
        {"mac": mac, "kind": kind, "detail": detail[:2048], "source": source, "at": now}
        for mac, kind, detail in items
    ]
    if values:
        session.connection().execute(insert(Event.__table__), values)  # type: ignore[attr-defined]


def list_events(session: Session, mac: str, limit: int = 200) -> list[Event]:
    stmt = select(Event).where(Event.mac == mac).order_by(col(Event.id).desc()).limit(limit)
    return list(session.exec(stmt))


def seen_unregistered(
    session: Session, mac: str, ip: str | None, arch: str | None, at: datetime | None = None
) -> None:
    """A boot of a MAC no client has: its first gets a row and a "discovered" event, each
    later one counts (the address or arch it lacks kept from before)."""
    at = at or utcnow()
    row = session.get(Discovered, mac)
    if row is None:
        session.add(
            Discovered(mac=mac, last_ip=ip, last_arch=arch, first_seen_at=at, last_seen_at=at)
        )
        session.add(Event(mac=mac, at=at, kind="discovered", detail=DISCOVERED_DETAIL, source=ip))
        return
    row.last_seen_at = at
    row.last_ip = ip or row.last_ip
    row.last_arch = arch or row.last_arch
    row.boots += 1
    session.add(row)


def list_discovered(session: Session, limit: int = 1000) -> list[Discovered]:
    stmt = select(Discovered).order_by(col(Discovered.last_seen_at).desc()).limit(limit)
    return list(session.exec(stmt))

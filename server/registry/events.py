"""The append-only event log and the list of machines seen without being registered."""

from __future__ import annotations

from sqlmodel import Session, col, select

from server.models import Discovered, Event, utcnow

DISCOVERED_DETAIL = "unregistered machine network-booted: local boot"


def record(
    session: Session, mac: str, kind: str, detail: str = "", source: str | None = None
) -> None:
    session.add(Event(mac=mac, kind=kind, detail=detail[:2048], source=source))


def list_events(session: Session, mac: str, limit: int = 200) -> list[Event]:
    stmt = select(Event).where(Event.mac == mac).order_by(col(Event.id).desc()).limit(limit)
    return list(session.exec(stmt))


def seen_unregistered(session: Session, mac: str, ip: str | None, arch: str | None) -> None:
    row = session.get(Discovered, mac)
    if row is None:
        session.add(Discovered(mac=mac, last_ip=ip, last_arch=arch))
        record(session, mac, "discovered", DISCOVERED_DETAIL, ip)
        return
    row.last_seen_at = utcnow()
    row.last_ip = ip or row.last_ip
    row.last_arch = arch or row.last_arch
    row.boots += 1
    session.add(row)


def list_discovered(session: Session, limit: int = 1000) -> list[Discovered]:
    stmt = select(Discovered).order_by(col(Discovered.last_seen_at).desc()).limit(limit)
    return list(session.exec(stmt))

"""Retention's statements on both databases: SQLite and a real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from server.app import create_app
from server.config import Settings
from server.fleet import Fleet
from server.models import Discovered, Event, utcnow
from server.registry.database import session_scope
from tests.reliability.figures import FIGURES


def test_prune_on_each_database(settings: Settings, db_url: str) -> None:
    limits = {"discovered_max": 3, "events_per_mac": 2, "event_days": 1}
    fleet = Fleet.open(settings.replace(database_url=db_url, **limits))
    try:
        http = create_app(fleet=fleet, test_config={"TESTING": True}).test_client()
        macs = [f"02:00:00:00:00:{n:02x}" for n in range(6)]
        for m in macs:
            assert http.get(f"/ipxe?mac={m}").status_code == 200
        with session_scope(fleet.engine, write=True) as s:
            for n in range(3):  # three recent events of one MAC, and an old one
                s.add(Event(mac=macs[5], kind="progress", detail=str(n)))
            s.add(Event(mac="02:00:00:00:01:00", kind="installed", at=utcnow() - timedelta(2)))

        pruned = fleet.retention.prune()
        assert pruned == (3, 3 + 2 + 1)  # 3 rows, their events, 2 + 1 events
        db = db_url.split(":")[0]
        FIGURES[f"retention, {db}: discovered rows pruned"] += pruned[0]
        FIGURES[f"retention, {db}: events pruned"] += pruned[1]

        with session_scope(fleet.engine) as s:
            kept = s.exec(select(Discovered.mac).order_by(col(Discovered.mac))).all()
            left = s.exec(select(Event.mac, Event.detail).order_by(col(Event.id))).all()
        assert list(kept) == macs[3:]
        assert [tuple(e) for e in left] == [
            (macs[3], "unregistered machine network-booted: local boot"),
            (macs[4], "unregistered machine network-booted: local boot"),
            (macs[5], "1"),
            (macs[5], "2"),
        ]
    finally:
        fleet.close()

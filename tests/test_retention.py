"""Retention on a real SQLite file: the discovered list keeps its newest N machines and
counts the rest in /metrics; events keep the newest M per MAC and nothing past D days."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlmodel import col, select

from server.config import Settings
from server.errors import InvalidInput
from server.fleet import Fleet
from server.models import Discovered, Event, utcnow
from server.reaper import Reaper
from server.registry.database import session_scope

KEEP = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    env = {
        "BOOTFLEET_DISCOVERED_MAX": str(KEEP),
        "BOOTFLEET_EVENTS_PER_MAC": "3",
        "BOOTFLEET_EVENT_DAYS": "30",
    }
    loaded = Settings.load(env=env)
    return settings.replace(
        discovered_max=loaded.discovered_max,
        events_per_mac=loaded.events_per_mac,
        event_days=loaded.event_days,
    )


def mac(n: int) -> str:
    return f"02:00:00:00:{n // 256:02x}:{n % 256:02x}"


def discovered(fleet: Fleet) -> list[str]:
    with session_scope(fleet.engine) as s:
        rows = s.exec(select(Discovered.mac).order_by(col(Discovered.last_seen_at))).all()
    return list(rows)


def event_macs(fleet: Fleet, kind: str) -> list[str]:
    with session_scope(fleet.engine) as s:
        return list(s.exec(select(Event.mac).where(Event.kind == kind)).all())


def test_discovered_keeps_the_newest_n_and_counts_the_rest(
    client: FlaskClient, fleet: Fleet
) -> None:
    for n in range(12):  # twelve new machines network-boot, the boot path records each
        assert client.get(f"/ipxe?mac={mac(n)}").status_code == 200
    assert client.get(f"/ipxe?mac={mac(3)}").status_code == 200  # seen again: newest now
    assert len(discovered(fleet)) == 12

    Reaper(fleet.engine, 3600, fleet.retention).round()

    newest = [mac(n) for n in range(8, 12)] + [mac(3)]
    assert discovered(fleet) == newest
    assert sorted(event_macs(fleet, "discovered")) == sorted(newest)  # theirs went with them
    metrics = client.get("/metrics").text
    assert "bootfleet_discovered_pruned_total 7\n" in metrics, metrics

    for n in range(12, 14):
        client.get(f"/ipxe?mac={mac(n)}")
    fleet.retention.prune()
    assert discovered(fleet) == [*newest[2:], mac(12), mac(13)]
    assert "bootfleet_discovered_pruned_total 9\n" in client.get("/metrics").text


def test_events_keep_the_newest_per_mac_and_none_past_the_age(
    client: FlaskClient, auth: dict[str, str], registered: str, fleet: Fleet
) -> None:
    for _ in range(4):  # eight events: reinstall, cancel, ...
        assert (
            client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth).status_code < 300
        )
        assert client.post(f"/api/v1/clients/{registered}/cancel", headers=auth).status_code < 300
    gone = "02:00:00:00:99:99"  # a deleted client's history: an old event and a recent one
    with session_scope(fleet.engine, write=True) as s:
        s.add(Event(mac=gone, kind="installed", detail="old", at=utcnow() - timedelta(days=31)))
        s.add(Event(mac=gone, kind="installed", detail="recent", at=utcnow() - timedelta(days=29)))
    before = client.get(f"/api/v1/clients/{registered}/events", headers=auth).json["items"]

    fleet.retention.prune()

    after = client.get(f"/api/v1/clients/{registered}/events", headers=auth).json["items"]
    assert after == before[:3]
    with session_scope(fleet.engine) as s:
        kept = s.exec(select(Event.detail).where(Event.mac == gone)).all()
    assert kept == ["recent"]
    dropped = len(before) - 3 + 1  # the client's older ones, and the 31-day-old one
    assert f"bootfleet_events_pruned_total {dropped}\n" in client.get("/metrics").text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOOTFLEET_DISCOVERED_MAX", "0"),
        ("BOOTFLEET_EVENTS_PER_MAC", "0"),
        ("BOOTFLEET_EVENT_DAYS", "0"),
    ],
)
def test_retention_settings_are_bounded(name: str, value: str) -> None:
    with pytest.raises(InvalidInput, match=name):
        Settings.load(env={name: value})

"""The boot path's fast lane: local-boot decisions on a read, sightings written behind."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from sqlmodel import col, select

from server.fleet import Fleet
from server.models import Client, Discovered, utcnow
from server.registry.database import session_scope


def row(fleet: Fleet, mac: str) -> Client:
    fleet.booter.registry.flush()  # sightings are written behind; tests/registry/test_seen.py
    with session_scope(fleet.engine) as s:
        found = s.exec(select(Client).where(Client.mac == mac)).one()
        s.expunge(found)
        return found


def test_idle_client_boots_locally_and_is_seen(fleet: Fleet, registered: str) -> None:
    before = utcnow()
    spec = fleet.booter.resolve(registered.upper(), "x86_64", "192.0.2.7")
    assert (spec.action, spec.mac, spec.reason) == (
        "local",
        registered,
        "client is idle: local boot",
    )
    seen = row(fleet, registered)
    assert (seen.last_ip, seen.last_arch, seen.state) == ("192.0.2.7", "x86_64", "idle")
    assert seen.last_seen_at is not None
    first = seen.last_seen_at
    fleet.booter.resolve(registered, None, None)  # no arch, no peer: the old ones stay
    again = row(fleet, registered)
    assert (again.last_ip, again.last_arch) == ("192.0.2.7", "x86_64")
    assert again.last_seen_at is not None and again.last_seen_at >= first
    assert again.version == seen.version and again.updated_at == seen.updated_at
    assert within(fleet, Client.last_seen_at, Client.mac, registered, before) == [registered]


def within(fleet: Fleet, column: Any, key: Any, value: str, before: datetime) -> list[str]:
    """Rows whose `column`, compared in SQL, lies between `before` and now: a value written
    by the write-behind path compares like one the ORM writes, on any database."""
    after = utcnow()
    with session_scope(fleet.engine) as s:
        stmt = select(key).where(key == value, col(column) >= before, col(column) <= after)
        return list(s.exec(stmt))


def test_pending_client_gets_its_installer_once_then_grace(
    fleet: Fleet, registered: str, client: FlaskClient, auth: dict[str, str]
) -> None:
    r = client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    assert r.status_code == 200, r.text
    spec = fleet.booter.resolve(registered, "x86_64", "192.0.2.7")
    assert spec.action == "install"
    assert row(fleet, registered).state == "booting"
    assert fleet.booter.resolve(registered, "x86_64", "192.0.2.7").action == "install"  # grace
    r = client.get(f"/ipxe?mac={registered}")
    assert r.status_code == 200 and "kernel " in r.text, r.text


def test_unregistered_and_malformed(fleet: Fleet) -> None:
    spec = fleet.booter.resolve("52:54:00:aa:bb:cc", "x86_64", "192.0.2.9")
    assert (spec.action, spec.reason) == ("local", "unregistered machine: local boot")
    with session_scope(fleet.engine) as s:
        assert s.get(Discovered, "52:54:00:aa:bb:cc") is not None
    assert fleet.booter.resolve("nonsense", None, None).reason == "malformed MAC: local boot"
    assert fleet.booter.resolve(None, None, None).reason == "no MAC in the request"


def test_ipxe_route_answers_local_boot(client: FlaskClient, registered: str) -> None:
    r = client.get(f"/ipxe?mac={registered}&arch=x86_64")
    assert r.status_code == 200, r.text
    assert r.text.startswith("#!ipxe") and "exit" in r.text


def test_concurrent_sightings_are_all_committed(fleet: Fleet) -> None:
    import threading

    from server.registry import clients as registry_clients

    macs = [f"52:54:00:00:01:{i:02x}" for i in range(24)]
    with session_scope(fleet.engine, write=True) as s:
        registry_clients.import_csv(s, "\n".join(macs) + "\n", fleet.checks, "test")

    def boot(mac: str, n: int) -> None:
        for _ in range(5):
            assert fleet.booter.resolve(mac, "x86_64", f"192.0.2.{n}").action == "local"

    threads = [threading.Thread(target=boot, args=(m, i)) for i, m in enumerate(macs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, mac in enumerate(macs):
        seen = row(fleet, mac)
        assert (seen.last_ip, seen.last_arch) == (f"192.0.2.{i}", "x86_64")
        assert seen.last_seen_at is not None


def test_unregistered_boots_are_counted_and_discovered_once(fleet: Fleet) -> None:
    from server.models import Event

    mac = "52:54:00:aa:bb:01"
    before = utcnow()
    for peer, arch in (("192.0.2.5", "x86_64"), (None, None), ("192.0.2.6", None)):
        spec = fleet.booter.resolve(mac, arch, peer)
        assert (spec.action, spec.reason) == ("local", "unregistered machine: local boot")
    with session_scope(fleet.engine) as s:
        found = s.get(Discovered, mac)
        assert found is not None
        assert (found.boots, found.last_ip, found.last_arch) == (3, "192.0.2.6", "x86_64")
        assert found.first_seen_at <= found.last_seen_at
        kinds = [e.kind for e in s.exec(select(Event).where(Event.mac == mac))]
    assert kinds == ["discovered"]
    assert within(fleet, Discovered.first_seen_at, Discovered.mac, mac, before) == [mac]
    assert within(fleet, Discovered.last_seen_at, Discovered.mac, mac, before) == [mac]


def test_a_mac_registered_meanwhile_gets_the_client_path(fleet: Fleet) -> None:
    from server.registry import clients as registry_clients

    mac = "52:54:00:aa:bb:02"
    with session_scope(fleet.engine, write=True) as s:
        registry_clients.import_csv(s, mac + "\n", fleet.checks, "test")
    # as if the lookup had run just before the import: the group commit must notice
    assert fleet.booter.registry.unregistered(mac, "192.0.2.5", None, utcnow()) is False
    with session_scope(fleet.engine) as s:
        assert s.get(Discovered, mac) is None

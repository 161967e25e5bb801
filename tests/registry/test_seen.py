"""The boot fast path (registry/seen.py): lookups and group-committed sightings."""

from __future__ import annotations

from sqlmodel import select

from server.fleet import Fleet
from server.models import Client
from server.registry.database import session_scope


def row(fleet: Fleet, mac: str) -> Client:
    with session_scope(fleet.engine) as s:
        found = s.exec(select(Client).where(Client.mac == mac)).one()
        s.expunge(found)
        return found


def test_idle_client_boots_locally_and_is_seen(fleet: Fleet, registered: str) -> None:
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
    with session_scope(fleet.engine) as s:  # stored as the ORM stores it: SQLite's text form
        stored = s.connection().exec_driver_sql(
            "SELECT last_seen_at, created_at FROM client WHERE mac = ?", (registered,)
        )
        last_seen, created = stored.one()
    assert len(last_seen) == len(created) and last_seen[10] == created[10] == " "


def test_concurrent_sightings_are_all_committed(fleet: Fleet) -> None:
    import threading

    from server.registry import clients as registry_clients

    macs = [f"52:54:00:00:01:{i:02x}" for i in range(24)]
    with session_scope(fleet.engine, write=True) as s:
        registry_clients.import_csv(s, "\n".join(macs) + "\n", fleet.catalog)

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

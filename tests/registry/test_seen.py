"""Client sightings are written behind the boot answer: coalesced per client, retried while
the database is busy, written at close. (The boot decisions themselves: tests/test_booter.py.)"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from server.errors import Unavailable
from server.fleet import Fleet
from server.models import Client, Discovered, utcnow
from server.registry.database import make_engine, session_scope
from server.registry.seen import BootRegistry


def stored(fleet: Fleet, mac: str) -> Client:
    with session_scope(fleet.engine) as s:
        found = s.exec(select(Client).where(Client.mac == mac)).one()
        s.expunge(found)
        return found


def client_id(fleet: Fleet, mac: str) -> int:
    found = stored(fleet, mac).id
    assert found is not None
    return found


def test_writer_thread_writes_without_a_flush(fleet: Fleet, registered: str) -> None:
    reg = BootRegistry(fleet.engine, flush_seconds=0.05)
    try:
        reg.seen(client_id(fleet, registered), registered, "198.18.0.9", "x86_64", utcnow())
        deadline = time.monotonic() + 10
        while stored(fleet, registered).last_ip is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stored(fleet, registered).last_ip == "198.18.0.9"
        assert reg.pending() == 0
    finally:
        reg.close()


def test_sightings_of_one_client_coalesce(fleet: Fleet, registered: str) -> None:
    reg = BootRegistry(fleet.engine, flush_seconds=60)  # only flush() writes here
    try:
        cid = client_id(fleet, registered)
        first = utcnow()
        reg.seen(cid, registered, "198.18.0.9", "x86_64", first)
        reg.seen(cid, registered, None, None, first + timedelta(seconds=1))  # keeps ip, arch
        reg.seen(cid, registered, "198.18.0.10", None, first + timedelta(seconds=2))
        assert reg.pending() == 1
        reg.flush()
        c = stored(fleet, registered)
        assert (c.last_ip, c.last_arch) == ("198.18.0.10", "x86_64")
        assert c.last_seen_at == first + timedelta(seconds=2)
    finally:
        reg.close()


def test_a_sighting_never_lands_on_another_client(fleet: Fleet, registered: str) -> None:
    """Queued for an id whose client was deleted (and the id reused): the MAC must match."""
    reg = BootRegistry(fleet.engine, flush_seconds=60)
    try:
        reg.seen(client_id(fleet, registered), "52:54:00:99:99:99", "198.18.0.9", None, utcnow())
        reg.flush()
        assert stored(fleet, registered).last_ip is None
    finally:
        reg.close()


def test_busy_database_keeps_sightings_queued(fleet: Fleet, registered: str) -> None:
    impatient = make_engine(fleet.settings.db_url, busy_timeout_ms=200)
    reg = BootRegistry(impatient, flush_seconds=60)
    holder = sqlite3.connect(fleet.settings.data_dir / "bootfleet.db", isolation_level=None)
    try:
        cid = client_id(fleet, registered)
        holder.execute("BEGIN IMMEDIATE")  # another process writing for longer than the timeout
        reg.seen(cid, registered, "198.18.0.9", "x86_64", utcnow())
        with pytest.raises(Unavailable):
            reg.flush()
        assert reg.pending() == 1
        reg.seen(cid, registered, "198.18.0.11", None, utcnow())  # a newer one meanwhile
        holder.execute("ROLLBACK")
        reg.flush()
        c = stored(fleet, registered)
        assert (c.last_ip, c.last_arch, reg.pending()) == ("198.18.0.11", "x86_64", 0)
    finally:
        holder.close()
        reg.close()
        impatient.dispose()


def test_close_writes_what_is_queued_and_later_sightings_directly(
    fleet: Fleet, registered: str
) -> None:
    reg = BootRegistry(fleet.engine, flush_seconds=60)
    cid = client_id(fleet, registered)
    reg.seen(cid, registered, "198.18.0.9", "x86_64", utcnow())
    reg.close()
    assert stored(fleet, registered).last_ip == "198.18.0.9"
    reg.seen(cid, registered, "198.18.0.12", None, utcnow())  # a late request at shutdown
    assert stored(fleet, registered).last_ip == "198.18.0.12"


def test_many_threads_many_clients_all_written(fleet: Fleet, registered: str) -> None:
    reg = BootRegistry(fleet.engine, flush_seconds=0.01)
    with session_scope(fleet.engine, write=True) as s:
        for i in range(40):
            s.add(Client(mac=f"52:54:00:00:10:{i:02x}"))
    ids = {
        f"52:54:00:00:10:{i:02x}": client_id(fleet, f"52:54:00:00:10:{i:02x}") for i in range(40)
    }

    def boot(n: int) -> None:
        for mac, cid in ids.items():
            reg.seen(cid, mac, f"198.18.1.{n}", "x86_64", utcnow())

    threads = [threading.Thread(target=boot, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reg.close()
    for mac in ids:
        c = stored(fleet, mac)
        assert c.last_arch == "x86_64" and c.last_ip and c.last_ip.startswith("198.18.1.")


def test_a_caller_told_unavailable_is_not_written_later(fleet: Fleet) -> None:
    """A boot that waited in vain for the group commit's leader got a 503; the next leader
    must not write its discovered row behind its back."""
    impatient = make_engine(fleet.settings.db_url, busy_timeout_ms=200)
    reg = BootRegistry(impatient, flush_seconds=60)
    try:
        assert reg._leader.acquire()  # a leader stuck in a long write
        with pytest.raises(Unavailable):
            reg.unregistered("52:54:00:77:00:01", "198.18.0.9", None, utcnow())
        reg._leader.release()
        assert reg.unregistered("52:54:00:77:00:02", "198.18.0.9", None, utcnow())
        with session_scope(fleet.engine) as s:
            found = s.exec(select(Discovered.mac)).all()
        assert found == ["52:54:00:77:00:02"]
    finally:
        reg.close()
        impatient.dispose()

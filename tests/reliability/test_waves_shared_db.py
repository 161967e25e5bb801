"""Two servers on one registry run the same wave: each member gets one turn and one wake,
and never more than `batch` are in flight, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from server.app import create_app
from server.conductor import Conductor
from server.config import Settings
from server.fleet import Fleet
from server.models import ClientCreate, Event, ProfileCreate, WaveCreate
from server.registry import clients, profiles, waves
from server.registry.database import session_scope
from tests.helpers import boot_installer
from tests.test_conductor import FakeWaker

MACS = [f"52:54:00:00:04:{i:02x}" for i in range(1, 9)]
BATCH = 3


@pytest.fixture
def two_servers(tmp_path: Path, db_url: str) -> Iterator[tuple[Fleet, Fleet]]:
    images = tmp_path / "images"
    (images / "debian").mkdir(parents=True)
    (images / "debian" / "linux").write_bytes(b"k")
    settings = Settings(
        data_dir=tmp_path / "data", images_dir=images, database_url=db_url, advertise="198.18.0.1"
    )
    a, b = Fleet.open(settings), Fleet.open(settings)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def race(fleets: tuple[Fleet, ...], wakers: list[FakeWaker], rounds: int = 5) -> None:
    """Every server runs `rounds` conductor rounds at the same moment as the others."""
    start = threading.Barrier(len(fleets))

    def run(fleet: Fleet, waker: FakeWaker) -> None:
        conductor = Conductor(fleet.engine, fleet.policy, fleet.checks, waker)
        for _ in range(rounds):
            start.wait(10)
            conductor.round()

    threads = [threading.Thread(target=run, args=pair) for pair in zip(fleets, wakers, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def test_two_servers_one_wave(two_servers: tuple[Fleet, Fleet]) -> None:
    a, b = two_servers
    with session_scope(a.engine, write=True) as s:
        profiles.create(s, ProfileCreate(name="p", kernel="debian/linux"), a.checks)
        for mac in MACS:
            clients.create(s, ClientCreate(mac=mac, profile="p", groups=["room"]), a.checks, "test")
    with session_scope(a.engine, write=True) as s:
        wave_id = waves.schedule(s, "room", WaveCreate(batch=BATCH, wake=True), "test").id
    assert wave_id is not None
    wakers = [FakeWaker(), FakeWaker()]
    http = create_app(fleet=a, test_config={"TESTING": True}).test_client()
    finished: list[str] = []
    while len(finished) < len(MACS):
        race((a, b), wakers)
        with session_scope(a.engine) as s:
            running = [c.mac for m, c in waves.members(s, wave_id) if m.state == "running"]
        assert 0 < len(running) <= BATCH
        for mac in running:  # each running member installs; the next round frees its turn
            assert http.post(boot_installer(http, mac) + "/done").status_code == 200
            finished.append(mac)
    race((a, b), wakers)
    woken = [c[0] for w in wakers for c in w.calls]
    assert sorted(woken) == MACS  # one wake each, whichever server gave the turn
    assert sorted(finished) == MACS
    with session_scope(a.engine) as s:
        assert waves.public(s, waves.get(s, wave_id)).state == "done"
        turns = s.exec(select(Event.mac).where(Event.kind == "reinstall")).all()
    assert sorted(turns) == MACS  # one reinstall each

"""Waves: at most `batch` members in flight, the next when one finishes or fails, from the
start time on; pause, resume and cancel; one winner when two servers advance at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from server.errors import Conflict, NotFound
from server.fleet import Fleet
from server.lifecycle import WaveState
from server.models import WaveCreate, utcnow
from server.registry import hooks, waves
from server.registry.database import session_scope
from tests.conftest import PROFILE
from tests.helpers import boot_installer, state

MACS = [f"52:54:00:00:01:{i:02x}" for i in range(1, 6)]


@pytest.fixture
def room(client: FlaskClient, auth: dict) -> list[str]:
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    for i, mac in enumerate(MACS):
        body = {"mac": mac, "hostname": f"pc{i}", "profile": "debian12", "groups": ["room1"]}
        assert client.post("/api/v1/clients", json=body, headers=auth).status_code == 201
    return MACS


def schedule(fleet: Fleet, batch: int = 2, at: object = None) -> int:
    data = WaveCreate(batch=batch, at=at)  # type: ignore[arg-type]
    with session_scope(fleet.engine, write=True) as s:
        wave = waves.schedule(s, "room1", data, "test")
        assert wave.id is not None
        return wave.id


def advance(fleet: Fleet, wave_id: int, now: object = None) -> list[str]:
    with session_scope(fleet.engine, write=True) as s:
        started = waves.advance(s, wave_id, fleet.policy, fleet.checks, now)  # type: ignore[arg-type]
        return [c.mac for c in started]


def progress(fleet: Fleet, wave_id: int) -> tuple[str, int, int, int, int, int]:
    with session_scope(fleet.engine) as s:
        p = waves.public(s, waves.get(s, wave_id))
        return p.state, p.waiting, p.running, p.done, p.failed, p.skipped


def test_at_most_batch_in_flight_and_the_next_when_one_ends(
    fleet: Fleet, client: FlaskClient, auth: dict, room: list[str]
) -> None:
    wave = schedule(fleet, batch=2)
    assert advance(fleet, wave) == room[:2]
    assert [state(client, auth, m) for m in room] == ["pending"] * 2 + ["idle"] * 3
    assert advance(fleet, wave) == []  # both still in flight
    # one installs, one fails: two turns free up
    done_cb = boot_installer(client, room[0])
    assert client.post(done_cb + "/done").status_code == 200
    fail_cb = boot_installer(client, room[1])
    assert (
        client.post(fail_cb + "/failed", json={"log": "x", "message": "no disk"}).status_code == 200
    )
    assert advance(fleet, wave) == room[2:4]
    assert progress(fleet, wave) == ("running", 1, 2, 1, 1, 0)
    for mac in room[2:4]:
        assert client.post(boot_installer(client, mac) + "/done").status_code == 200
    assert advance(fleet, wave) == room[4:]
    assert client.post(boot_installer(client, room[4]) + "/done").status_code == 200
    assert advance(fleet, wave) == []
    assert progress(fleet, wave) == ("done", 0, 0, 4, 1, 0)
    with session_scope(fleet.engine) as s:
        reasons = {c.mac: m.reason for m, c in waves.members(s, wave)}
    assert reasons[room[1]] == "no disk"


def test_nothing_starts_before_the_start_time(fleet: Fleet, room: list[str]) -> None:
    later = utcnow() + timedelta(hours=2)
    wave = schedule(fleet, at=later)
    assert advance(fleet, wave) == []
    with session_scope(fleet.engine) as s:
        assert waves.due(s, utcnow()) == []
        assert waves.due(s, later) == [wave]
    assert advance(fleet, wave, later) == room[:2]


def test_a_member_that_cannot_reinstall_is_skipped_not_stuck(
    fleet: Fleet, client: FlaskClient, auth: dict, room: list[str]
) -> None:
    client.post(f"/api/v1/clients/{room[0]}/reinstall", headers=auth)  # already pending
    wave = schedule(fleet, batch=2)
    assert advance(fleet, wave) == room[1:3]
    assert progress(fleet, wave) == ("running", 2, 2, 0, 0, 1)


def test_pause_resume_cancel(
    fleet: Fleet, client: FlaskClient, auth: dict, room: list[str]
) -> None:
    wave = schedule(fleet, batch=2)
    assert advance(fleet, wave) == room[:2]
    boot_installer(client, room[1])  # booting: it will finish even if the wave is cancelled
    with session_scope(fleet.engine, write=True) as s:
        waves.pause(s, wave)
    assert advance(fleet, wave) == []
    with session_scope(fleet.engine, write=True) as s, pytest.raises(Conflict):
        waves.pause(s, wave)
    with session_scope(fleet.engine, write=True) as s:
        waves.resume(s, wave)
    with session_scope(fleet.engine, write=True) as s:
        waves.cancel(s, wave, "test")
    assert state(client, auth, room[0]) == "idle"  # pending, not yet booted: cancelled
    assert state(client, auth, room[1]) == "booting"
    assert progress(fleet, wave) == ("cancelled", 0, 1, 0, 0, 4)
    assert advance(fleet, wave) == []
    with session_scope(fleet.engine, write=True) as s, pytest.raises(Conflict):
        waves.resume(s, wave)
    with session_scope(fleet.engine) as s, pytest.raises(NotFound):
        waves.get(s, wave + 99)


def test_two_servers_advancing_at_once_one_wins(fleet: Fleet, room: list[str]) -> None:
    """The second advance read the wave before the first committed: its compare-and-set on
    the wave's version fails and it starts no one."""
    wave = schedule(fleet, batch=2)
    with session_scope(fleet.engine) as s:
        stale = waves.get(s, wave)
        s.expunge(stale)
    assert advance(fleet, wave) == room[:2]
    with session_scope(fleet.engine, write=True) as s, pytest.raises(Conflict):
        waves._bump(s, stale, state=WaveState.RUNNING.value)


def test_an_id_past_any_row_is_not_found(fleet: Fleet) -> None:
    """Found by the schemathesis run: 2**72 in a URL was a 500 (SQLite cannot bind it,
    PostgreSQL's INTEGER cannot hold it)."""
    with session_scope(fleet.engine) as s:
        for wave_id in (0, -1, 2**31, 2**72):
            with pytest.raises(NotFound):
                waves.get(s, wave_id)
            with pytest.raises(NotFound):
                hooks.get(s, wave_id)

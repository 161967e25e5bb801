"""The conductor: waves advanced round by round, each member woken at its turn, and a wave
that goes on across a restart of a real `bootfleet serve`."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from server.conductor import Conductor
from server.fleet import Fleet
from server.models import WaveCreate
from server.registry import events, waves
from server.registry.database import session_scope
from tests.conftest import PROFILE
from tests.helpers import cli_profile, install_path
from tests.serve import Served, cli

MACS = ["52:54:00:00:02:01", "52:54:00:00:02:02", "52:54:00:00:02:03"]


class FakeWaker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str | None]] = []

    def __call__(self, mac: str, last_ip: str | None, wake_address: str | None) -> str:
        self.calls.append((mac, last_ip, wake_address))
        return "wake-on-LAN sent to 198.18.9.255"


@pytest.fixture
def room(client: FlaskClient, auth: dict) -> list[str]:
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    group = {"name": "room1", "wake_address": "198.18.9.255"}
    assert client.post("/api/v1/groups", json=group, headers=auth).status_code == 201
    for mac in MACS:
        body = {"mac": mac, "profile": "debian12", "groups": ["room1"]}
        assert client.post("/api/v1/clients", json=body, headers=auth).status_code == 201
    return MACS


def test_each_member_is_woken_when_its_turn_comes(fleet: Fleet, room: list[str]) -> None:
    with session_scope(fleet.engine, write=True) as s:
        waves.schedule(s, "room1", WaveCreate(batch=2, wake=True), "test")
    waker = FakeWaker()
    conductor = Conductor(fleet.engine, fleet.policy, fleet.checks, waker)
    assert conductor.round() == 2
    assert waker.calls == [(room[0], None, "198.18.9.255"), (room[1], None, "198.18.9.255")]
    assert conductor.round() == 0 and len(waker.calls) == 2  # no one woken twice
    with session_scope(fleet.engine) as s:
        kinds = [(e.kind, e.source) for e in events.list_events(s, room[0])]
    assert ("wake", "wave 1") in kinds and ("reinstall", "wave 1") in kinds


def test_a_wave_without_wake_wakes_no_one(fleet: Fleet, room: list[str]) -> None:
    with session_scope(fleet.engine, write=True) as s:
        waves.schedule(s, "room1", WaveCreate(batch=3), "test")
    waker = FakeWaker()
    assert Conductor(fleet.engine, fleet.policy, fleet.checks, waker).round() == 3
    assert waker.calls == []


def test_the_api_schedules_lists_and_cancels(
    client: FlaskClient, auth: dict, room: list[str]
) -> None:
    r = client.post(
        "/api/v1/groups/room1/waves",
        json={"at": "2030-01-01T22:00:00+01:00", "batch": 1, "wake": True},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    wave = r.json
    assert (wave["state"], wave["waiting"], wave["start_at"]) == (
        "scheduled",
        3,
        "2030-01-01T21:00:00Z",
    )
    listed = client.get("/api/v1/waves", headers=auth).json["items"]
    assert [w["id"] for w in listed] == [wave["id"]]
    detail = client.get(f"/api/v1/waves/{wave['id']}", headers=auth).json
    assert [m["mac"] for m in detail["members"]] == room
    r = client.post(f"/api/v1/waves/{wave['id']}/cancel", headers=auth)
    assert r.status_code == 200 and r.json["state"] == "cancelled" and r.json["skipped"] == 3
    assert client.post(f"/api/v1/waves/{wave['id']}/pause", headers=auth).status_code == 409
    assert client.get("/api/v1/waves/999", headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"batch": 0}, "batch"),
        ({"batch": 1001}, "batch"),
        ({"at": "2030-01-01T22:00"}, "at"),  # no zone: ambiguous
        ({"at": "tomorrow"}, "at"),
        ({"wake": "yes"}, "wake"),
        ({"size": 3}, "size"),
    ],
)
def test_bad_waves_are_refused(
    client: FlaskClient, auth: dict, room: list[str], body: dict, field: str
) -> None:
    r = client.post("/api/v1/groups/room1/waves", json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert r.json["error"]["field"] == field


# --- real processes ----------------------------------------------------------------------------


def wave_members(data: Path) -> dict[str, str]:
    out = cli("wave", "show", "1", data_dir=data)
    return dict(re.findall(r"^  (\S+)  (\w+)", out, re.M))


def finish_install(port: int, mac: str) -> None:
    """What the machine would do: fetch its iPXE script, then report success."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ipxe?mac={mac}&arch=x86_64") as r:
        callback = install_path(r.read().decode())
    req = urllib.request.Request(f"http://127.0.0.1:{port}{callback}/done", data=b"", method="POST")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200


def wait_for(data: Path, want: dict[str, str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        got = wave_members(data)
        if got == want or time.monotonic() > deadline:
            assert got == want
            return
        time.sleep(0.5)


def test_a_wave_goes_on_across_a_restart_of_serve(tmp_path: Path) -> None:
    data, img = tmp_path / "data", tmp_path / "img"
    cli_profile(data, img)
    for mac in MACS:
        cli("client", "add", mac, "--profile", "p1", "--group", "room1", data_dir=data)
    said = cli("group", "reinstall", "room1", "--batch", "1", data_dir=data)
    assert said.startswith("wave 1: 3 members of room1 from ")
    m1, m2, m3 = MACS

    with Served(data, img, "--wave-interval", "0.5") as server:
        wait_for(data, {m1: "running", m2: "waiting", m3: "waiting"})
        finish_install(server.port, m1)
        wait_for(data, {m1: "done", m2: "running", m3: "waiting"})
    # stopped mid-wave: the registry holds where it was
    listed = json.loads(cli("wave", "list", "--json", data_dir=data))
    assert (listed[0]["state"], listed[0]["done"], listed[0]["running"]) == ("running", 1, 1)

    with Served(data, img, "--wave-interval", "0.5") as server:
        finish_install(server.port, m2)
        wait_for(data, {m1: "done", m2: "done", m3: "running"})
        finish_install(server.port, m3)
        wait_for(data, {m1: "done", m2: "done", m3: "done"})
    assert json.loads(cli("wave", "list", "--json", data_dir=data))[0]["state"] == "done"

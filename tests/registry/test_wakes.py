"""Wake-on-LAN with a reinstall: the client's last address and its group's wake address
reach the waker, and an event says what was done."""

from __future__ import annotations

from flask.testing import FlaskClient

from server.fleet import Fleet
from server.registry import events
from server.registry.database import session_scope
from tests.test_conductor import FakeWaker


def test_reinstall_with_wake(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    fleet.waker = waker = FakeWaker()
    client.post(
        "/api/v1/groups", json={"name": "far", "wake_address": "198.18.9.255"}, headers=auth
    )
    client.patch(f"/api/v1/clients/{registered}", json={"groups": ["lab", "far"]}, headers=auth)
    r = client.post(f"/api/v1/clients/{registered}/reinstall", json={"wake": True}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json["wake"] == "wake-on-LAN sent to 198.18.9.255"
    assert waker.calls == [(registered, None, "198.18.9.255")]
    with session_scope(fleet.engine) as s:
        (latest, *_) = events.list_events(s, registered)
    assert (latest.kind, latest.detail) == ("wake", "wake-on-LAN sent to 198.18.9.255")


def test_reinstall_without_wake_sends_nothing(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    fleet.waker = waker = FakeWaker()
    r = client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    assert r.status_code == 200 and r.json["wake"] is None
    assert waker.calls == []


def test_group_reinstall_wakes_only_those_requested(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    fleet.waker = waker = FakeWaker()
    other = "52:54:00:00:03:01"
    client.post(
        "/api/v1/clients", json={"mac": other, "groups": ["lab"]}, headers=auth
    )  # no profile
    r = client.post("/api/v1/groups/lab/reinstall", json={"wake": True}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json["requested"] == [registered] and [s["mac"] for s in r.json["skipped"]] == [other]
    assert r.json["woken"] == [{"mac": registered, "wake": "wake-on-LAN sent to 198.18.9.255"}]
    assert [c[0] for c in waker.calls] == [registered]


def test_a_bad_wake_address_is_refused(client: FlaskClient, auth: dict) -> None:
    r = client.post("/api/v1/groups", json={"name": "x", "wake_address": "room-1"}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "wake_address"

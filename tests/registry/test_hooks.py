"""Hooks and their outbox: a delivery is written with each lifecycle event, by whichever code
path records it (the API, the boot path, the installer's callbacks, the reaper)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlmodel import select

from server.errors import NotFound
from server.fleet import Fleet
from server.models import Delivery, HookCreate, utcnow
from server.reaper import reap
from server.registry import hooks
from server.registry.database import session_scope
from tests.helpers import boot_installer
from tests.test_reaper import age_deadline


def add_hook(
    fleet: Fleet, url: str = "http://198.18.0.9/hook", events: list[str] | None = None
) -> int:
    data = HookCreate(url=url) if events is None else HookCreate(url=url, events=events)
    with session_scope(fleet.engine, write=True) as s:
        hook = hooks.add(s, data)
        assert hook.id is not None
        return hook.id


def bodies(fleet: Fleet, hook_id: int | None = None) -> list[dict]:
    with session_scope(fleet.engine) as s:
        stmt = select(Delivery).order_by(Delivery.id)  # type: ignore[arg-type]
        rows = s.exec(stmt).all()
        return [json.loads(r.body) for r in rows if hook_id in (None, r.hook_id)]


def test_every_lifecycle_event_is_owed_to_a_hook(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    add_hook(fleet)
    assert client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth).status_code == 200
    cb = boot_installer(client, registered)
    assert (
        client.post(cb + "/progress", json={"percent": 40, "message": "copying"}).status_code == 200
    )
    assert client.post(cb + "/done").status_code == 200
    got = bodies(fleet)
    assert [b["event"] for b in got] == [
        "pending",
        "booting",
        "installing",
        "progress",
        "installed",
    ]
    last = got[-1]
    assert last["client"] == {"mac": registered, "hostname": "pc01"}
    assert last["state"] == "installed"
    assert last["install"]["state"] == "installed" and last["install"]["progress"] == 100
    assert last["install"]["profile"] == "debian12"
    assert got[3]["install"]["progress"] == 40 and got[3]["install"]["message"] == "copying"
    # never the install token (it is in the callback path) nor the profile's variables
    token = cb.rsplit("/", 1)[-1]
    for body in got:
        assert token not in json.dumps(body) and "en_US" not in json.dumps(body)


def test_failure_carries_a_link_to_its_log(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    add_hook(fleet, events=["failed"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    cb = boot_installer(client, registered)
    assert client.post(cb + "/failed", json={"log": "disk on fire"}).status_code == 200
    (body,) = bodies(fleet)
    assert body["event"] == "failed"
    assert body["failure_log"] == f"/api/v1/clients/{registered}/installs/{body['install']['id']}"
    assert "disk on fire" not in json.dumps(body)  # the log is behind the admin API, not sent


def test_the_reaper_s_failures_are_owed_too(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    add_hook(fleet, events=["failed"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    boot_installer(client, registered)
    age_deadline(fleet, registered)
    assert reap(fleet.engine) == [registered]
    (body,) = bodies(fleet)
    assert body["event"] == "failed" and "deadline" in body["install"]["message"]


def test_each_hook_gets_only_its_events(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    everything = add_hook(fleet)
    only_done = add_hook(fleet, "http://198.18.0.9/done", ["installed"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    client.post(f"/api/v1/clients/{registered}/cancel", headers=auth)
    assert [b["event"] for b in bodies(fleet, everything)] == ["pending", "cancelled"]
    assert bodies(fleet, only_done) == []


def test_no_hook_no_delivery(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    assert bodies(fleet) == []


def test_a_lease_lets_one_courier_take_a_delivery(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    add_hook(fleet, events=["pending"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    now = utcnow()
    with session_scope(fleet.engine, write=True) as s:
        first = hooks.claim(s, now)
    with session_scope(fleet.engine, write=True) as s:
        second = hooks.claim(s, now)
    assert len(first) == 1 and second == []
    # a courier that died: its lease runs out and another takes the delivery
    with session_scope(fleet.engine, write=True) as s:
        assert len(hooks.claim(s, now + hooks.LEASE + timedelta(seconds=1))) == 1


def test_retry_then_give_up_then_remove(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    hook_id = add_hook(fleet, events=["pending"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    now = utcnow()
    with session_scope(fleet.engine, write=True) as s:
        ((delivery, _),) = hooks.claim(s, now)
        assert delivery.id is not None
        hooks.retry_later(s, delivery.id, "HTTP 503", now + timedelta(seconds=30), now)
    with session_scope(fleet.engine, write=True) as s:
        assert hooks.claim(s, now) == []  # not due yet
        ((again, _),) = hooks.claim(s, now + timedelta(seconds=31))
        assert again.attempts == 1 and again.last_error == "HTTP 503"
        hooks.retry_later(s, delivery.id, "HTTP 503", None, now)
    with session_scope(fleet.engine) as s:
        (public,) = hooks.list_hooks(s)
        assert (public.waiting, public.undeliverable) == (0, 1)
    with session_scope(fleet.engine, write=True) as s:
        hooks.remove(s, hook_id)
    assert bodies(fleet) == []
    with session_scope(fleet.engine, write=True) as s, pytest.raises(NotFound):
        hooks.remove(s, hook_id)


def test_delivered_rows_are_pruned_after_their_time(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    add_hook(fleet, events=["pending"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    now = utcnow()
    with session_scope(fleet.engine, write=True) as s:
        ((delivery, _),) = hooks.claim(s, now)
        assert delivery.id is not None
        hooks.delivered(s, delivery.id, now)
        assert hooks.prune_delivered(s, now - timedelta(days=1)) == 0
        assert hooks.prune_delivered(s, now + timedelta(seconds=1)) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"url": "ftp://x/"}, "http:// or https://"),
        ({"url": "http://x/", "events": ["bogus"]}, "unknown event bogus"),
        ({"url": "http://x/", "events": []}, "at least one event"),
        ({"url": "http://" + "x" * 3000}, "at most 2048"),
    ],
)
def test_bad_hooks_are_refused(client: FlaskClient, auth: dict, data: dict, message: str) -> None:
    r = client.post("/api/v1/hooks", json=data, headers=auth)
    assert r.status_code == 400, r.text
    assert message in r.text

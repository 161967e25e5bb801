"""Waves in the web UI: schedule one for a group, watch its progress, pause and cancel it;
reinstall one machine and wake it."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from server.fleet import Fleet
from server.registry import waves
from server.registry.database import session_scope
from tests.conftest import PROFILE
from tests.test_conductor import FakeWaker
from tests.web.conftest import UI

MACS = ["52:54:00:00:05:01", "52:54:00:00:05:02", "52:54:00:00:05:03"]


def make_room(client: FlaskClient, auth: dict) -> None:
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    for mac in MACS:
        body = {"mac": mac, "profile": "debian12", "groups": ["room1"]}
        assert client.post("/api/v1/clients", json=body, headers=auth).status_code == 201


def test_schedule_watch_pause_cancel(ui: UI, fleet: Fleet, client: FlaskClient, auth: dict) -> None:
    make_room(client, auth)
    page = ui.get("/ui/waves").text
    assert "No waves yet." in page and "<option>room1</option>" in page
    r = ui.post("/ui/waves/new", {"group": "room1", "at": "", "batch": "2", "wake": "1"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/ui/waves/1")
    with session_scope(fleet.engine, write=True) as s:
        waves.advance(s, 1, fleet.policy, fleet.checks)
    page = ui.get("/ui/waves/1").text
    summary = re.sub(r"\s+", " ", re.search(r'<p id="wave-summary">(.*?)</p>', page, re.S).group(1))
    assert "running</strong>: 0 done, 0 failed, 2 running, 1 waiting" in summary
    assert page.count('class="turn-running"') == 2 and page.count('class="turn-waiting"') == 1
    assert "each woken at its turn" in page
    assert ui.post("/ui/waves/1/pause").status_code == 303
    assert 'id="resume"' in ui.get("/ui/waves/1").text
    confirm = ui.post("/ui/waves/1/cancel")
    assert confirm.status_code == 200 and "Please confirm" in confirm.text
    assert ui.confirm("/ui/waves/1/cancel").status_code == 303
    listing = ui.get("/ui/waves").text
    assert 'class="state-cancelled">cancelled' in listing


def test_bad_wave_input_is_a_clear_message(ui: UI, client: FlaskClient, auth: dict) -> None:
    make_room(client, auth)
    for data, message in [
        ({"group": "room1", "batch": "many"}, "batch: must be a whole number"),
        ({"group": "room1", "batch": "0"}, "batch"),
        ({"group": "room1", "at": "soon"}, "not an ISO 8601 time"),
        ({"group": "nosuch", "batch": "2"}, "no group named"),
    ]:
        r = ui.post("/ui/waves/new", data, follow_redirects=True)
        assert r.status_code == 200 and message in r.text, (data, r.text[:300])


def test_reinstall_and_wake_from_the_client_page(
    ui: UI, fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    fleet.waker = waker = FakeWaker()
    assert 'name="wake"' in ui.get(f"/ui/clients/{registered}").text
    r = ui.confirm(f"/ui/clients/{registered}/reinstall", {"wake": "1"}, follow_redirects=True)
    assert "Wake-on-LAN sent to 198.18.9.255." in r.text
    assert [c[0] for c in waker.calls] == [registered]

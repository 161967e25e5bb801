"""Approving, from the dashboard, a machine that asked to be registered."""

from __future__ import annotations

from flask.testing import FlaskClient

from server.fleet import Fleet
from server.registry import discovered, events
from server.registry.database import session_scope
from tests.conftest import PROFILE
from tests.helpers import state
from tests.web.conftest import UI

MAC = "52:54:00:00:07:01"


def test_approve_from_the_dashboard(ui: UI, fleet: Fleet, client: FlaskClient, auth: dict) -> None:
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    with session_scope(fleet.engine, write=True) as s:
        discovered.request_registration(s, MAC, {"manufacturer": "QEMU"}, "198.18.0.9")
    page = ui.get("/ui/").text
    assert f"/ui/discovered/{MAC}/approve" in page and "<option>debian12</option>" in page
    r = ui.post(f"/ui/discovered/{MAC}/approve", {"profile": "debian12"}, follow_redirects=True)
    assert "registered with profile debian12" in r.text
    assert state(client, auth, MAC) == "idle"
    with session_scope(fleet.engine) as s:
        kinds = [e.kind for e in events.list_events(s, MAC)]
    assert "approved" in kinds and "registered" in kinds


def test_bad_approvals_are_a_clear_message(ui: UI, client: FlaskClient, auth: dict) -> None:
    for mac, data, message in [
        (MAC, {"profile": "debian12"}, "did not ask to be registered"),
        ("ffffffffffff", {"profile": "debian12"}, "broadcast MAC"),
        (MAC, {}, "choose the profile"),
    ]:
        r = ui.post(f"/ui/discovered/{mac}/approve", data, follow_redirects=True)
        assert message in r.text, (mac, data, r.text[:300])

"""One client's page, its live endpoint, actions and install logs (server/web/client.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from server.fleet import Fleet
from server.registry import clients, events
from server.registry.database import session_scope


def state_of(fleet: Fleet, mac: str) -> str:
    with session_scope(fleet.engine) as s:
        return clients.get(s, mac).state


def test_details(ui: Any, registered: str) -> None:
    r = ui.get(f"/ui/clients/{registered}")
    assert r.status_code == 200
    html = r.text
    assert "pc01" in html and registered in html
    assert '<span class="badge state-idle" id="client-state">idle</span>' in html
    assert 'href="/ui/profiles/debian12"' in html
    assert 'href="/ui/clients?group=lab"' in html
    assert "Never reinstalled." in html
    assert "registered" in html  # the events timeline
    assert f'data-live="/ui/clients/{registered}/live.json"' in html


def test_mac_in_any_spelling_finds_the_client(ui: Any, registered: str) -> None:
    assert ui.get("/ui/clients/52-54-00-12-34-56").status_code == 200


@pytest.mark.parametrize(
    "path, status, message",
    [
        ("/ui/clients/52:54:00:99:99:99", 404, "no client with MAC 52:54:00:99:99:99"),
        ("/ui/clients/banana", 400, "not a MAC address"),
        ("/ui/clients/52:54:00:12:34:56/installs/99", 404, "has no install 99"),
    ],
)
def test_unknown_clients_are_readable_pages(
    ui: Any, registered: str, path: str, status: int, message: str
) -> None:
    r = ui.get(path)
    assert r.status_code == status
    assert r.mimetype == "text/html"
    assert message in r.text


def test_variables_show_where_each_value_comes_from(
    ui: Any, registered: str, client: FlaskClient, auth: dict[str, str]
) -> None:
    # profile sets locale, tz, disk; group lab sets tz, proxy; group zz (later by name) sets
    # tz; the client sets disk.
    calls = [
        (
            "PATCH",
            "/api/v1/profiles/debian12",
            {"variables": {"locale": "en_US.UTF-8", "tz": "UTC", "disk": "/dev/sda"}},
        ),
        ("POST", "/api/v1/groups", {"name": "zz", "variables": {"tz": "Europe/Berlin"}}),
        ("PATCH", "/api/v1/groups/lab", {"variables": {"tz": "Asia/Tokyo", "proxy": "http://p"}}),
        (
            "PATCH",
            f"/api/v1/clients/{registered}",
            {"groups": ["lab", "zz"], "variables": {"disk": "/dev/nvme0n1"}},
        ),
    ]
    for method, path, body in calls:
        r = client.open(path, method=method, json=body, headers=auth)
        assert r.status_code in (200, 201), r.text

    html = ui.get(f"/ui/clients/{registered}").text
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r'<th scope="row" class="mono">(\w+)</th>(.*?)</tr>', html, re.S)
    }
    assert set(rows) == {"disk", "locale", "proxy", "tz"}
    assert '"/dev/nvme0n1"' in rows["disk"] and ">client<" in rows["disk"]
    assert "<del>" in rows["disk"] and "from profile debian12" in rows["disk"]
    assert ">profile debian12<" in rows["locale"] and "<del>" not in rows["locale"]
    assert ">group lab<" in rows["proxy"]
    assert "Europe/Berlin" in rows["tz"] and ">group zz<" in rows["tz"]
    assert "from profile debian12" in rows["tz"] and "from group lab" in rows["tz"]


def test_reinstall_asks_first_without_javascript(ui: Any, registered: str, fleet: Fleet) -> None:
    r = ui.post(f"/ui/clients/{registered}/reinstall")
    assert r.status_code == 200
    assert "Please confirm" in r.text and 'name="confirmed" value="1"' in r.text
    assert state_of(fleet, registered) == "idle"


def test_reinstall_then_cancel(ui: Any, registered: str, fleet: Fleet) -> None:
    r = ui.confirm(f"/ui/clients/{registered}/reinstall")
    assert r.status_code == 303
    assert r.headers["Location"] == f"/ui/clients/{registered}"
    assert state_of(fleet, registered) == "pending"
    html = ui.get(f"/ui/clients/{registered}").text
    assert "Reinstall requested (install 1)" in html
    assert "install 1 of debian12 <small>(web:test)</small>" in html  # who, in the events
    assert 'id="cancel"' in html and 'id="reinstall"' not in html

    assert ui.confirm(f"/ui/clients/{registered}/cancel").status_code == 303
    assert state_of(fleet, registered) == "idle"
    html = ui.get(f"/ui/clients/{registered}").text
    assert "Install cancelled." in html and "cancelled" in html


def test_forbidden_transitions_are_readable_409s(ui: Any, registered: str) -> None:
    ui.confirm(f"/ui/clients/{registered}/reinstall")
    r = ui.confirm(f"/ui/clients/{registered}/reinstall")
    assert r.status_code == 409
    assert "cannot reinstall a client that is pending" in r.text
    ui.confirm(f"/ui/clients/{registered}/cancel")
    r = ui.confirm(f"/ui/clients/{registered}/cancel")
    assert r.status_code == 409
    assert "cannot cancel a client that is idle" in r.text


def test_reinstall_without_a_profile_is_a_readable_400(
    ui: Any, client: FlaskClient, auth: dict[str, str]
) -> None:
    client.post("/api/v1/clients", json={"mac": "52:54:00:00:00:07"}, headers=auth)
    html = ui.get("/ui/clients/52:54:00:00:00:07").text
    assert 'id="reinstall" disabled' in html
    r = ui.confirm("/ui/clients/52:54:00:00:00:07/reinstall")
    assert r.status_code == 400
    assert "has no profile to install" in r.text


def test_live_endpoint_and_failure_log(ui: Any, registered: str, installer: Any) -> None:
    ui.confirm(f"/ui/clients/{registered}/reinstall")
    live = ui.get(f"/ui/clients/{registered}/live.json").json
    assert (live["state"], live["progress"]) == ("pending", 0)
    assert set(live["regions"]) == {"status", "history", "events"}

    install = installer(registered)
    install.report("progress", percent=55, message="base system")
    live = ui.get(f"/ui/clients/{registered}/live.json").json
    assert (live["state"], live["progress"]) == ("installing", 55)
    assert 'value="55"' in live["regions"]["status"]
    assert "base system" in live["regions"]["events"]

    install.report("failed", log="E: <no disk> & no luck\n", message="no disk")
    live = ui.get(f"/ui/clients/{registered}/live.json").json
    assert live["state"] == "failed"
    link = f"/ui/clients/{registered}/installs/1"
    assert f'href="{link}" id="failure-log-link"' in live["regions"]["status"]
    assert link in live["regions"]["history"]

    page = ui.get(link)
    assert page.status_code == 200
    assert "E: &lt;no disk&gt; &amp; no luck" in page.text  # escaped, not markup
    assert "no disk" in page.text and "debian/linux" in page.text


def test_edit_a_client(ui: Any, registered: str, fleet: Fleet) -> None:
    form = ui.get(f"/ui/clients/{registered}/edit").text
    assert 'value="pc01"' in form and 'value="lab"' in form
    r = ui.post(
        f"/ui/clients/{registered}/edit",
        {"hostname": "pc01b", "profile": "", "groups": "", "variables": 'x="1"\n'},
    )
    assert r.status_code == 303, r.text
    with session_scope(fleet.engine) as s:
        c = clients.public(s, clients.get(s, registered))
    assert (c.hostname, c.profile, c.groups, c.variables) == ("pc01b", None, [], {"x": "1"})


def test_edit_records_only_what_changed(ui: Any, registered: str, fleet: Fleet) -> None:
    """The form sends every field; the event names the one the admin changed."""
    r = ui.post(
        f"/ui/clients/{registered}/edit",
        {"hostname": "pc01", "profile": "debian12", "groups": "lab", "variables": 'x="1"\n'},
    )
    assert r.status_code == 303, r.text
    with session_scope(fleet.engine) as s:
        [latest] = events.list_events(s, registered, 1)
    assert (latest.kind, latest.detail) == ("updated", "variables")


def test_edit_with_bad_input_keeps_the_form(ui: Any, registered: str) -> None:
    r = ui.post(f"/ui/clients/{registered}/edit", {"hostname": "-bad-", "profile": "debian12"})
    assert r.status_code == 400
    assert "hostname: not a valid host name" in r.text
    assert 'value="-bad-"' in r.text


def test_delete_a_client(ui: Any, registered: str, fleet: Fleet) -> None:
    assert "Delete client" in ui.get(f"/ui/clients/{registered}/edit").text
    r = ui.post(f"/ui/clients/{registered}/delete")
    assert r.status_code == 200 and "Forget client" in r.text  # asks first
    r = ui.confirm(f"/ui/clients/{registered}/delete")
    assert r.status_code == 303 and r.headers["Location"] == "/ui/clients"
    assert f"Client {registered} deleted." in ui.get("/ui/clients").text
    assert ui.get(f"/ui/clients/{registered}").status_code == 404


def test_what_the_answer_file_needs(
    ui: Any, client: FlaskClient, auth: dict[str, str], installer: Any
) -> None:
    """A required variable that a group used to provide shows as missing before a
    reinstall is refused for it."""
    mac = "52:54:00:00:00:0a"
    root_hash = "$6$saltsalt$" + "b" * 86
    calls = [
        (
            "POST",
            "/api/v1/profiles",
            {
                "name": "deb",
                "kernel": "debian/linux",
                "answer_template": "debian-preseed",
                "variables": {"timezone": "Europe/Berlin"},
            },
        ),
        (
            "POST",
            "/api/v1/groups",
            {"name": "room1", "variables": {"root_password_hash": root_hash}},
        ),
        ("POST", "/api/v1/clients", {"mac": mac, "profile": "deb", "groups": ["room1"]}),
    ]
    for method, path, body in calls:
        r = client.open(path, method=method, json=body, headers=auth)
        assert r.status_code == 201, r.text

    def needs() -> dict[str, str]:
        html = ui.get(f"/ui/clients/{mac}").text
        assert "What the answer file debian-preseed needs" in html
        table = html.split('<table class="needs">', 1)[1].split("</table>", 1)[0]
        cells = r'class="mono">(\w+)</th>.*?<td class="status">(?:<strong[^>]*>)?([^<]+)'
        return dict(re.findall(cells, table, re.S))

    status = needs()
    assert status["root_password_hash"] == "set by group room1"
    assert status["timezone"] == "set by profile deb"
    assert status["keyboard"] == "default"
    assert status["disk"] == "unset"

    r = client.patch("/api/v1/groups/room1", json={"variables": {}}, headers=auth)
    assert r.status_code == 200, r.text
    assert needs()["root_password_hash"] == "missing: a reinstall will be refused"
    r = ui.confirm(f"/ui/clients/{mac}/reinstall")
    assert r.status_code == 400
    assert "root_password_hash: is required by debian-preseed" in r.text

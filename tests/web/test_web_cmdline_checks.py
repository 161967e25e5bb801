"""The web UI's ways of assigning a profile check the installer's command line too: adding or
editing a client, bulk assign, CSV import, editing a profile, reinstall."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from markupsafe import escape

from server.fleet import Fleet
from server.registry import clients
from server.registry.database import session_scope

BAD = "x=${net0/ip}"
EXPANDS = "iPXE expands ${...}"


@pytest.fixture
def breakable(client: FlaskClient, auth: dict[str, str], registered: str) -> str:
    """debian12 renders `x=<the variable x>`; pc01 has x=1."""
    r = client.patch(f"/api/v1/clients/{registered}", json={"variables": {"x": "1"}}, headers=auth)
    assert r.status_code == 200, r.text
    body = {"cmdline": "auto=true x={{ x }}"}
    assert client.patch("/api/v1/profiles/debian12", json=body, headers=auth).status_code == 200
    return registered


def test_add_a_client(ui: Any, breakable: str, fleet: Fleet) -> None:
    form = {"mac": "52:54:00:00:0f:01", "profile": "debian12", "variables": "x=${net0/ip}"}
    r = ui.post("/ui/clients/new", form)
    assert r.status_code == 400 and EXPANDS in r.text
    with session_scope(fleet.engine) as s:
        assert clients.find(s, "52:54:00:00:0f:01") is None


def test_edit_a_client(ui: Any, breakable: str) -> None:
    form = {"hostname": "pc01", "profile": "debian12", "groups": "lab", "variables": "x=a #b"}
    r = ui.post(f"/ui/clients/{breakable}/edit", form)
    assert r.status_code == 400 and escape("'#b': iPXE reads a word starting with") in r.text


def test_edit_a_profile_its_clients_cannot_boot(ui: Any, breakable: str) -> None:
    form = {"kernel": "debian/linux", "initrd": "", "cmdline": BAD, "variables": ""}
    r = ui.post("/ui/profiles/debian12", form)
    assert r.status_code == 400 and f"client {breakable}: {EXPANDS}" in r.text
    assert re.search(r'id="cmdline"[^>]*aria-invalid="true"', r.text), r.text


def test_bulk_assign_and_import(ui: Any, breakable: str) -> None:
    ui.post("/ui/clients/new", {"mac": "52:54:00:00:0f:02", "variables": "x=it's"})
    ui.confirm(
        "/ui/clients/bulk", {"action": "assign", "profile": "debian12", "mac": "52:54:00:00:0f:02"}
    )
    html = ui.get("/ui/clients").text
    assert "Skipped 52:54:00:00:0f:02: cmdline: GRUB adds a backslash" in html
    r = ui.post("/ui/clients/import", {"text": "52:54:00:00:0f:03,a,debian12,\n"})
    assert r.status_code == 400 and "row 1" in r.text
    assert escape("cmdline: cannot render: 'x' is undefined") in r.text


def test_reinstall(ui: Any, breakable: str, fleet: Fleet) -> None:
    with session_scope(fleet.engine, write=True) as s:
        clients.get(s, breakable).variables = {"x": "${y}"}  # stored before the checks
    r = ui.confirm(f"/ui/clients/{breakable}/reinstall")
    assert r.status_code == 400 and EXPANDS in r.text

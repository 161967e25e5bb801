"""Profiles: list, create, edit, and their users (server/web/profiles.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from server.fleet import Fleet
from server.registry import profiles
from server.registry.database import session_scope

NEW = {
    "name": "ubuntu24",
    "kernel": "debian/linux",
    "initrd": "debian/initrd.gz\n\n",
    "cmdline": "ip=dhcp hostname={{ hostname }}",
    "answer_template": "",
    "variables": "locale=de_DE.UTF-8\nmirror=http://deb.example\n",
}


def test_empty_list(ui: Any) -> None:
    assert "No profiles yet." in ui.get("/ui/profiles").text


def test_create_a_profile(ui: Any, fleet: Fleet) -> None:
    form = ui.get("/ui/profiles/new").text
    # the kernel field suggests the files under images/
    assert '<option value="debian/initrd.gz">' in form and '<option value="debian/linux">' in form
    r = ui.post("/ui/profiles/new", NEW)
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == "/ui/profiles/ubuntu24"
    with session_scope(fleet.engine) as s:
        row = profiles.get(s, "ubuntu24")
    assert (row.kernel, row.initrd, row.answer_template) == (
        "debian/linux",
        ["debian/initrd.gz"],
        None,
    )
    assert row.variables == {"locale": "de_DE.UTF-8", "mirror": "http://deb.example"}
    assert "Profile ubuntu24 created." in ui.get("/ui/profiles/ubuntu24").text


@pytest.mark.parametrize(
    "change, status, message, field",
    [
        ({"name": "bad name"}, 400, "name: use 1-63 letters", "name"),
        ({"kernel": "../etc/passwd"}, 400, "kernel: must be a relative path", "kernel"),
        ({"kernel": ""}, 400, "kernel", "kernel"),
        ({"initrd": "/abs/path"}, 400, "initrd.0: must be a relative path", "initrd"),
        ({"answer_template": "nope"}, 400, "no such template", "answer_template"),
        ({"variables": "=1"}, 400, "expected NAME=VALUE", "variables"),
        ({"name": "debian12"}, 409, "exists already", None),
    ],
)
def test_create_with_bad_input(
    ui: Any, registered: str, change: dict[str, str], status: int, message: str, field: str | None
) -> None:
    r = ui.post("/ui/profiles/new", {**NEW, **change})
    assert r.status_code == status, r.text
    assert message in r.text
    if field:
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', r.text), r.text


def test_list_counts_users(ui: Any, registered: str) -> None:
    html = ui.get("/ui/profiles").text
    assert '<a href="/ui/profiles/debian12">debian12</a>' in html
    assert '<a href="/ui/clients?profile=debian12">1</a>' in html


def test_profile_page_lists_its_clients(ui: Any, registered: str) -> None:
    html = ui.get("/ui/profiles/debian12").text
    assert 'value="debian/linux"' in html
    assert "locale=en_US.UTF-8" in html
    assert f'href="/ui/clients/{registered}">pc01</a>' in html
    assert "All 1 in the client list" in html


def test_edit_a_profile(ui: Any, registered: str, fleet: Fleet) -> None:
    r = ui.post(
        "/ui/profiles/debian12",
        {"kernel": "debian/linux", "initrd": "", "cmdline": "quiet", "variables": "n=3"},
    )
    assert r.status_code == 303, r.text
    with session_scope(fleet.engine) as s:
        row = profiles.get(s, "debian12")
    assert (row.initrd, row.cmdline, row.variables) == ([], "quiet", {"n": 3})


def test_edit_with_bad_input_is_readable(ui: Any, registered: str) -> None:
    r = ui.post("/ui/profiles/debian12", {"kernel": "a/../b", "cmdline": ""})
    assert r.status_code == 400
    assert "kernel: must be a relative path" in r.text
    assert "Clients using it" in r.text  # the rest of the page is still there


def test_unknown_profile_is_a_404_page(ui: Any) -> None:
    r = ui.get("/ui/profiles/nope")
    assert r.status_code == 404
    assert "no profile named &#39;nope&#39;" in r.text


def test_delete_a_profile_only_when_unused(ui: Any, registered: str, fleet: Fleet) -> None:
    assert "Delete profile" not in ui.get("/ui/profiles/debian12").text  # it has a user
    r = ui.confirm("/ui/profiles/debian12/delete")
    assert r.status_code == 409
    assert "is assigned to 1 client(s)" in r.text
    ui.confirm(f"/ui/clients/{registered}/delete")
    assert "Delete profile" in ui.get("/ui/profiles/debian12").text
    assert ui.post("/ui/profiles/debian12/delete").status_code == 200  # asks first
    r = ui.confirm("/ui/profiles/debian12/delete")
    assert r.status_code == 303
    assert "Profile debian12 deleted." in ui.get("/ui/profiles").text
    assert ui.get("/ui/profiles/debian12").status_code == 404

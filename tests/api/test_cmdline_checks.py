"""The installer's kernel command line is checked wherever a client gets what it will install:
client create and update, CSV import, a profile's change (for its clients), a reinstall of
one client or a group. A command line some boot loader cannot pass is a 400 on `cmdline`
then, not a machine that boots from its disk at its next network boot."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import state

SEEDED = {
    "name": "ubuntu",
    "kernel": "debian/linux",
    "cmdline": "autoinstall ds=nocloud-net;s={{ seed }}/",
    "variables": {"seed": "http://198.18.0.1/seed"},
}
MAC2 = "52:54:00:00:0c:01"
EXPANDS = {"seed": "${net0/ip}"}  # iPXE would put its own address there


@pytest.fixture
def seeded(client: FlaskClient, auth: dict[str, str]) -> str:
    r = client.post("/api/v1/profiles", json=SEEDED, headers=auth)
    assert r.status_code == 201, r.text
    return str(SEEDED["name"])


def refused(r: Any, field: str = "cmdline") -> str:
    assert r.status_code == 400, r.text
    error = r.json["error"]
    assert error["field"] == field, error
    return str(error["message"])


def test_client_create(client: FlaskClient, auth: dict[str, str], seeded: str) -> None:
    body = {"mac": MAC2, "profile": seeded, "variables": EXPANDS}
    assert "iPXE expands" in refused(client.post("/api/v1/clients", json=body, headers=auth))
    assert client.get(f"/api/v1/clients/{MAC2}", headers=auth).status_code == 404
    body["variables"] = {"seed": "http://198.18.0.9/other"}
    assert client.post("/api/v1/clients", json=body, headers=auth).status_code == 201


def test_client_create_with_a_variable_missing(
    client: FlaskClient, auth: dict[str, str], seeded: str
) -> None:
    client.patch("/api/v1/profiles/ubuntu", json={"variables": {}}, headers=auth)
    body = {"mac": MAC2, "profile": seeded}
    message = refused(client.post("/api/v1/clients", json=body, headers=auth))
    assert "'seed' is undefined" in message


def test_client_update(
    client: FlaskClient, auth: dict[str, str], registered: str, seeded: str
) -> None:
    def patch(body: dict[str, Any]) -> Any:
        return client.patch(f"/api/v1/clients/{registered}", json=body, headers=auth)

    refused(patch({"profile": seeded, "variables": EXPANDS}))
    r = client.get(f"/api/v1/clients/{registered}", headers=auth)
    assert r.json["profile"] == "debian12" and r.json["variables"] == {}
    assert patch({"profile": seeded}).status_code == 200
    assert "GRUB adds a backslash" in refused(patch({"variables": {"seed": "it's"}}))


def test_csv_import_checks_each_row_with_its_own_host_name(
    client: FlaskClient, auth: dict[str, str], seeded: str
) -> None:
    cmdline = "{% if hostname == 'pc13' %}#x{% endif %} s={{ seed }}"
    r = client.patch("/api/v1/profiles/ubuntu", json={"cmdline": cmdline}, headers=auth)
    assert r.status_code == 200, r.text  # no client uses it yet
    rows = "".join(f"52:54:00:00:0d:{i:02x},pc{i},ubuntu,lab\n" for i in range(10, 15))
    message = refused(client.post("/api/v1/clients/import", data=rows, headers=auth), "row 4")
    assert message.startswith("row 4: cmdline: '#x': iPXE reads a word starting with '#'")
    assert client.get("/api/v1/clients", headers=auth).json["total"] == 0
    good = rows.replace("pc13", "pc99")
    r = client.post("/api/v1/clients/import", data=good, headers=auth)
    assert r.status_code == 200 and r.json == {"imported": 5}, r.text


def test_csv_import_with_a_group_that_breaks_it(
    client: FlaskClient, auth: dict[str, str], seeded: str
) -> None:
    client.post("/api/v1/groups", json={"name": "odd", "variables": EXPANDS}, headers=auth)
    rows = "52:54:00:00:0d:01,a,ubuntu,lab\n52:54:00:00:0d:02,b,ubuntu,odd\n"
    r = client.post("/api/v1/clients/import", data=rows, headers=auth)
    assert "iPXE expands" in refused(r, "row 2")


def test_profile_create_with_a_template_that_does_not_compile(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    body = {**SEEDED, "cmdline": "x={{ seed"}
    assert "cannot render" in refused(client.post("/api/v1/profiles", json=body, headers=auth))


def test_profile_update_is_checked_for_each_client(
    client: FlaskClient, auth: dict[str, str], registered: str
) -> None:
    def patch(body: dict[str, Any]) -> Any:
        return client.patch("/api/v1/profiles/debian12", json=body, headers=auth)

    message = refused(patch({"cmdline": "auto=true x=${y}"}))
    assert message.startswith(f"cmdline: client {registered}: iPXE expands")
    assert "'answer_url' is undefined" in refused(patch({"cmdline": "url={{ answer_url }}"}))
    ok = patch({"cmdline": "url={{ answer_url }}", "variables": {"answer_url": "http://a/"}})
    assert ok.status_code == 200, ok.text
    assert "initrd list" in refused(patch({"variables": {"answer_url": "initrd=x"}}))
    long_path = "debian/" + "k" * 1000  # BOOT_IMAGE= and initrd= make the line too long
    message = refused(patch({"kernel": long_path, "initrd": [long_path]}))
    assert "over the kernel's 2047" in message
    shown = client.get("/api/v1/profiles/debian12", headers=auth).json
    assert (shown["kernel"], shown["variables"]) == ("debian/linux", {"answer_url": "http://a/"})


def test_reinstall_and_group_reinstall(
    client: FlaskClient, auth: dict[str, str], registered: str
) -> None:
    """A group's variables are not checked when they change; a reinstall checks them."""
    r = client.patch(
        "/api/v1/profiles/debian12",
        json={"cmdline": "auto=true x={{ x }}", "variables": {"x": 1}},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    client.post("/api/v1/groups", json={"name": "ok", "variables": {"x": 2}}, headers=auth)
    body = {"mac": MAC2, "profile": "debian12", "groups": ["lab", "ok"]}  # "ok" wins on x
    assert client.post("/api/v1/clients", json=body, headers=auth).status_code == 201
    r = client.patch("/api/v1/groups/lab", json={"variables": {"x": "${y}"}}, headers=auth)
    assert r.status_code == 200, r.text
    message = refused(client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth))
    assert "iPXE expands" in message
    assert state(client, auth, registered) == "idle"
    r = client.post("/api/v1/groups/lab/reinstall", headers=auth)
    assert r.json == {
        "requested": [MAC2],
        "skipped": [{"mac": registered, "reason": message}],
        "woken": [],
    }, r.text


@pytest.mark.parametrize(
    "template",
    [
        # mutating a list or dict (ImmutableSandboxedEnvironment; the context holds only
        # strings, so these are the template's own)
        "{% set x = [] %}{{ x.append(1) }}",
        "{% set x = [] %}{{ x.insert(0, 1) }}",
        "{% set d = {} %}{{ d.update(a=1) }}",
        "{% set d = {} %}{{ d.setdefault('a', 1) }}",
        # reaching Python internals: refused by the plain sandbox already
        "{{ seed.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ seed|attr('__class__') }}",
        "{{ seed.format.__self__ }}",
    ],
)
def test_a_template_that_mutates_or_escapes_is_refused(
    client: FlaskClient, auth: dict[str, str], seeded: str, template: str
) -> None:
    r = client.patch("/api/v1/profiles/ubuntu", json={"cmdline": template}, headers=auth)
    assert r.status_code == 200, r.text  # it compiles; rendering it for a client is refused
    body = {"mac": MAC2, "profile": seeded}
    assert "cannot render" in refused(client.post("/api/v1/clients", json=body, headers=auth))
    assert client.get(f"/api/v1/clients/{MAC2}", headers=auth).status_code == 404

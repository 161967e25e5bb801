"""The unknown-machine menu: an unregistered iPXE machine is offered disk or registration;
asking records its facts; nothing installs until an admin approves it with a profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.app import create_app
from server.config import Settings
from server.fleet import Fleet
from server.registry import discovered, events
from server.registry.database import session_scope
from tests.conftest import PROFILE
from tests.helpers import state
from tests.serve import cli
from tests.web.conftest import sign_in

UNKNOWN = "52:54:00:00:06:01"
FACTS = "manufacturer=QEMU&product=Standard%20PC%20(Q35%20+%20ICH9%2C%202009)&serial=S1&uuid=u-1"


@pytest.fixture
def menu_client(fleet: Fleet) -> FlaskClient:
    fleet.settings = fleet.settings.replace(unknown_menu=True)
    app: Flask = create_app(fleet=fleet, test_config={"TESTING": True})
    return app.test_client()


def test_without_the_option_an_unknown_machine_just_boots_its_disk(client: FlaskClient) -> None:
    script = client.get(f"/ipxe?mac={UNKNOWN}").text
    assert "menu" not in script and "exit" in script
    r = client.get(f"/ipxe/register?mac={UNKNOWN}&{FACTS}")
    assert "registration" not in r.text and "exit" in r.text


def test_the_menu_defaults_to_the_disk(menu_client: FlaskClient) -> None:
    script = menu_client.get(f"/ipxe?mac={UNKNOWN}").text
    assert "item --key d disk Boot from the local disk (d)" in script
    assert "choose --default disk --timeout 8000 target || goto disk" in script
    assert "/ipxe/register?mac=${mac}&manufacturer=${manufacturer:uristring}" in script


def test_a_registered_machine_never_sees_the_menu(
    menu_client: FlaskClient, registered: str
) -> None:
    assert "menu" not in menu_client.get(f"/ipxe?mac={registered}").text


def test_asking_records_the_facts_and_boots_the_disk(
    fleet: Fleet, menu_client: FlaskClient, auth: dict
) -> None:
    r = menu_client.get(f"/ipxe/register?mac={UNKNOWN}&{FACTS}")
    assert "registration of ${mac} requested" in r.text and "exit" in r.text
    (row,) = menu_client.get("/api/v1/discovered", headers=auth).json["items"]
    assert row["mac"] == UNKNOWN and row["requested_at"]
    assert (row["manufacturer"], row["product"], row["serial"], row["uuid"]) == (
        "QEMU",
        "Standard PC (Q35 + ICH9, 2009)",
        "S1",
        "u-1",
    )
    with session_scope(fleet.engine) as s:
        assert events.list_events(s, UNKNOWN)[0].kind == "registration_requested"


@pytest.mark.parametrize(
    "query",
    [
        "mac=nonsense",
        "mac=",
        "",
        f"mac={UNKNOWN}&manufacturer=" + "A" * 5000,
        f"mac={UNKNOWN}&serial=%00%01%1b[2J&product=%E2%80%AE",
    ],
)
def test_hostile_requests_get_local_boot_and_clean_facts(
    menu_client: FlaskClient, auth: dict, query: str
) -> None:
    r = menu_client.get(f"/ipxe/register?{query}")
    assert r.status_code == 200 and "exit" in r.text
    for row in menu_client.get("/api/v1/discovered", headers=auth).json["items"]:
        for fact in ("manufacturer", "product", "serial", "uuid"):
            value = row[fact] or ""
            assert len(value) <= 128 and value.isprintable()


def test_approval_registers_it_and_installs_nothing(
    fleet: Fleet, menu_client: FlaskClient, auth: dict
) -> None:
    assert menu_client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    r = menu_client.post(
        f"/api/v1/discovered/{UNKNOWN}/approve", json={"profile": "debian12"}, headers=auth
    )
    assert r.status_code == 404, r.text  # it never asked
    menu_client.get(f"/ipxe/register?mac={UNKNOWN}&{FACTS}")
    r = menu_client.post(
        f"/api/v1/discovered/{UNKNOWN}/approve",
        json={"profile": "debian12", "hostname": "lab-7"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    assert state(menu_client, auth, UNKNOWN) == "idle"
    assert "menu" not in menu_client.get(f"/ipxe?mac={UNKNOWN}").text  # a client now: disk
    r = menu_client.post(
        f"/api/v1/discovered/{UNKNOWN}/approve", json={"profile": "debian12"}, headers=auth
    )
    assert r.status_code == 409
    with session_scope(fleet.engine, write=True) as s:
        assert not discovered.request_registration(s, UNKNOWN, {}, None)  # registered now


def test_approval_needs_a_profile(menu_client: FlaskClient, auth: dict) -> None:
    menu_client.get(f"/ipxe/register?mac={UNKNOWN}")
    r = menu_client.post(f"/api/v1/discovered/{UNKNOWN}/approve", json={}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "profile"


def test_the_cli_lists_and_approves(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings_env = {"BOOTFLEET_DATA_DIR": str(data), "BOOTFLEET_UNKNOWN_MENU": "1"}
    img = tmp_path / "img" / "debian"
    img.mkdir(parents=True)
    (img / "linux").write_bytes(b"k")

    env = {**settings_env, "BOOTFLEET_IMAGES_DIR": str(tmp_path / "img")}

    cli("profile", "create", "p1", "--kernel", "debian/linux", env=env)
    other = Fleet.open(Settings(data_dir=data, images_dir=tmp_path / "img"))
    try:
        with session_scope(other.engine, write=True) as s:
            discovered.request_registration(s, UNKNOWN, {"manufacturer": "QEMU"}, "198.18.0.9")
    finally:
        other.close()
    out = cli("discovered", "list", "--requested", env=env)
    assert UNKNOWN in out and "QEMU" in out
    assert cli("discovered", "approve", UNKNOWN, "--profile", "p1", env=env) == (
        f"client {UNKNOWN} registered with profile p1\n"
    )


def test_the_dashboard_shows_who_asked(fleet: Fleet, menu_client: FlaskClient, token: str) -> None:
    menu_client.get(f"/ipxe/register?mac={UNKNOWN}&{FACTS}")
    page = sign_in(menu_client, token).get("/ui/").text
    assert "asked to be registered</strong>: QEMU Standard PC (Q35 + ICH9, 2009), serial S1" in page


@pytest.mark.parametrize("mac", ["000000000000", "ffffffffffff", "nonsense"])
def test_approving_a_bad_mac_is_a_400(menu_client: FlaskClient, auth: dict, mac: str) -> None:
    """Found by the schemathesis run: these were a 500."""
    r = menu_client.post(f"/api/v1/discovered/{mac}/approve", json={"profile": "p"}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "mac", r.text

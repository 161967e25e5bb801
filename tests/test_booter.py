import dataclasses
import logging
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlmodel import select

from server.app import create_app
from server.config import DEFAULT_TEMPLATES_DIR, Settings
from server.fleet import Fleet
from server.models import ClientCreate, Discovered, Event, Install, ProfileCreate
from server.registry import clients, events, installs, profiles
from server.registry.database import session_scope
from tests.conftest import MAC
from tests.helpers import install_path


def request_reinstall(fleet: Fleet, mac: str) -> None:
    with session_scope(fleet.engine, write=True) as s:
        installs.reinstall(s, clients.get(s, mac), fleet.policy, fleet.checks, "test")


def test_pending_client_gets_its_installer_and_moves_to_booting(
    fleet: Fleet, registered: str
) -> None:
    request_reinstall(fleet, registered)
    spec = fleet.booter.resolve(registered.upper().replace(":", "-"), "x86_64", "198.18.0.50")
    assert spec.action == "install"
    assert spec.mac == registered and spec.hostname == "pc01"
    assert spec.kernel and spec.kernel.path == "debian/linux"
    assert spec.kernel.url == "http://198.18.0.1:8080/images/debian/linux"
    assert "hostname=pc01" in spec.cmdline  # the profile's command line, rendered
    assert spec.install_url and f"bootfleet.install={spec.install_url}" in spec.cmdline
    with session_scope(fleet.engine) as s:
        c = clients.get(s, registered)
        assert c.state == "booting"
        assert (c.last_ip, c.last_arch) == ("198.18.0.50", "x86_64")
        kinds = [e.kind for e in s.exec(select(Event).where(Event.mac == registered))]
        assert "boot" in kinds


def test_reread_inside_grace_window_gets_the_same_installer(fleet: Fleet, registered: str) -> None:
    request_reinstall(fleet, registered)
    first = fleet.booter.resolve(registered, None, "198.18.0.50")
    second = fleet.booter.resolve(registered, None, "198.18.0.50")
    assert first.action == second.action == "install"
    assert first.cmdline == second.cmdline  # the same one-time token, derived again


def test_reread_after_grace_window_boots_from_disk(fleet: Fleet, registered: str) -> None:
    request_reinstall(fleet, registered)
    assert fleet.booter.resolve(registered, None, None).action == "install"
    with session_scope(fleet.engine, write=True) as s:
        inst = installs.current(s, clients.get(s, registered))
        assert inst and inst.booted_at
        inst.booted_at -= timedelta(seconds=fleet.policy.grace_seconds + 1)
        s.add(inst)
    spec = fleet.booter.resolve(registered, None, None)
    assert spec.action == "local" and "booting" in spec.reason


@pytest.mark.parametrize("state", ["idle"])
def test_client_without_request_boots_from_disk(fleet: Fleet, registered: str, state: str) -> None:
    spec = fleet.booter.resolve(registered, None, None)
    assert spec.action == "local" and state in spec.reason


def test_unknown_mac_boots_from_disk_and_is_recorded(fleet: Fleet) -> None:
    for _ in range(2):
        spec = fleet.booter.resolve("52:54:00:99:99:99", "i386", "198.18.0.77")
        assert spec.action == "local"
    with session_scope(fleet.engine) as s:
        seen = s.get(Discovered, "52:54:00:99:99:99")
        assert seen and seen.boots == 2 and seen.last_ip == "198.18.0.77"
        assert s.exec(select(Install)).first() is None


@pytest.mark.parametrize(
    "bad", ["", "zz:zz", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", None, "x" * 5000]
)
def test_malformed_mac_boots_from_disk(fleet: Fleet, bad: str | None) -> None:
    assert fleet.booter.resolve(bad, None, None).action == "local"


def test_finished_install_boots_from_disk(
    client: FlaskClient, auth: dict, registered: str, fleet: Fleet
) -> None:
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    spec = fleet.booter.resolve(registered, None, None)
    path = install_path(spec.cmdline)
    assert client.post(path + "/done", json={}).status_code == 200
    again = fleet.booter.resolve(registered, None, None)
    assert again.action == "local" and "installed" in again.reason


def test_variables_cannot_override_fixed_context(fleet: Fleet, registered: str) -> None:
    """A variable named like a fixed name (install_url) cannot redirect the callbacks."""
    with session_scope(fleet.engine, write=True) as s:
        c = clients.get(s, registered)
        c.variables = {"install_url": "http://evil.example/", "mac": "x"}
        s.add(c)
    request_reinstall(fleet, registered)
    spec = fleet.booter.resolve(registered, None, None)
    assert spec.install_url and spec.install_url.startswith("http://198.18.0.1:8080/")
    assert "evil" not in spec.cmdline


def break_snapshot(fleet: Fleet, mac: str, cmdline: str) -> None:
    """An install's command line as a Bootfleet before the assignment checks could store it."""
    with session_scope(fleet.engine, write=True) as s:
        install = installs.current(s, clients.get(s, mac))
        assert install is not None
        install.profile_snapshot = {**install.profile_snapshot, "cmdline": cmdline}
        s.add(install)


def test_installer_that_does_not_render_boots_from_disk_and_says_why(
    client: FlaskClient, fleet: Fleet, registered: str, caplog: pytest.LogCaptureFixture
) -> None:
    request_reinstall(fleet, registered)
    break_snapshot(fleet, registered, "auto=true x=${net0/ip}")
    with caplog.at_level(logging.ERROR, logger="server.booter"):
        r = client.get(f"/ipxe?mac={registered}")
    assert r.status_code == 200 and "kernel" not in r.text and "exit" in r.text, r.text
    assert "installer does not render (cmdline): local boot" in r.text
    [line] = [rec.getMessage() for rec in caplog.records if rec.name == "server.booter"]
    assert line.startswith(f"installer for {registered} (pc01) not served: cmdline: iPXE")
    with session_scope(fleet.engine) as s:
        assert clients.get(s, registered).state == "pending"  # as it was
        kinds = [(e.kind, e.detail) for e in events.list_events(s, registered, 1)]
    assert kinds == [("boot_failed", "installer not served: cmdline: " + line.split(": ", 2)[2])]
    break_snapshot(fleet, registered, "auto=true")  # mended: the next boot installs
    assert fleet.booter.resolve(registered, None, None).action == "install"


def test_boot_template_that_does_not_render_is_logged_with_the_mac(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES_DIR, templates)
    ipxe = templates / "boot" / "ipxe.j2"
    ipxe.write_text(ipxe.read_text().replace("spec.kernel.url", "spec.kernel.missing"))
    fleet = Fleet.open(dataclasses.replace(settings, templates_dir=templates))
    try:
        app = create_app(fleet=fleet, test_config={"TESTING": True})
        with session_scope(fleet.engine, write=True) as s:
            profiles.create(s, ProfileCreate(name="p", kernel="debian/linux"), fleet.checks)
            row = clients.create(s, ClientCreate(mac=MAC, profile="p"), fleet.checks)
            installs.reinstall(s, row, fleet.policy, fleet.checks, "test")
        with caplog.at_level(logging.ERROR, logger="server.api.boot"):
            r = app.test_client().get(f"/ipxe?mac={MAC}")
    finally:
        fleet.close()
    assert r.status_code == 500  # iPXE's `chain ... || goto disk` boots the disk
    [line] = [rec.getMessage() for rec in caplog.records if rec.name == "server.api.boot"]
    assert line.startswith(f"iPXE script for {MAC} (install 1 of profile p) does not render")

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlmodel import select

from server.fleet import Fleet
from server.models import Discovered, Event, Install
from server.registry import clients, installs
from server.registry.database import session_scope
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

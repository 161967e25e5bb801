"""Booter.resolve: what a MAC boots in each lifecycle state, the installer's one-time
serving with its grace window, and the fast lane (local boots decided on a read, sightings
written behind: tests/registry/test_seen.py has the writer itself)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import col, select

from server.app import create_app
from server.config import DEFAULT_TEMPLATES_DIR, Settings
from server.fleet import Fleet
from server.lifecycle import State
from server.models import Client, ClientCreate, Discovered, Event, Install, ProfileCreate, utcnow
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
        assert kinds.count("boot") == 1


def test_reread_inside_grace_window_gets_the_same_installer(
    fleet: Fleet, registered: str, client: FlaskClient
) -> None:
    request_reinstall(fleet, registered)
    first = fleet.booter.resolve(registered, None, "198.18.0.50")
    second = fleet.booter.resolve(registered, None, "198.18.0.50")
    assert first.action == second.action == "install"
    assert first.cmdline == second.cmdline  # the same one-time token, derived again
    r = client.get(f"/ipxe?mac={registered}")  # and over HTTP, as firmware reads it
    assert r.status_code == 200 and "kernel " in r.text, r.text


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


# What a boot gets in each state; booting is a re-read inside the grace window (after it:
# test_reread_after_grace_window_boots_from_disk). Every state is here, or the test fails.
BOOTS = {
    State.IDLE: "local",
    State.PENDING: "install",
    State.BOOTING: "install",
    State.INSTALLING: "local",
    State.INSTALLED: "local",
    State.FAILED: "local",
}


def bring(fleet: Fleet, client: FlaskClient, mac: str, state: State) -> None:
    """Move the client to `state` the way production does: a reinstall request, a served
    installer, then the installer's own callbacks."""
    if state is State.IDLE:
        return
    request_reinstall(fleet, mac)
    if state is State.PENDING:
        return
    path = install_path(fleet.booter.resolve(mac, None, None).cmdline)
    callback = {
        State.BOOTING: None,
        State.INSTALLING: ("progress", {"percent": 10}),
        State.INSTALLED: ("done", {}),
        State.FAILED: ("failed", {"message": "disk full"}),
    }[state]
    if callback is not None:
        r = client.post(f"{path}/{callback[0]}", json=callback[1])
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("state", list(State))
def test_what_each_state_boots(
    fleet: Fleet, registered: str, client: FlaskClient, state: State
) -> None:
    assert set(BOOTS) == set(State)
    bring(fleet, client, registered, state)
    with session_scope(fleet.engine) as s:
        assert clients.get(s, registered).state is state
    spec = fleet.booter.resolve(registered, "x86_64", "198.18.0.50")
    assert spec.action == BOOTS[state], spec.reason
    if spec.action == "local":
        assert spec.reason == f"client is {state}: local boot"
    with session_scope(fleet.engine) as s:  # a boot changes the state only when it installs
        after = clients.get(s, registered).state
    assert after is (State.BOOTING if state is State.PENDING else state)


def test_unknown_mac_boots_from_disk_and_is_discovered_once(fleet: Fleet) -> None:
    mac = "52:54:00:99:99:99"
    before = utcnow()
    for peer, arch in (("198.18.0.77", "i386"), (None, None), ("198.18.0.78", None)):
        spec = fleet.booter.resolve(mac, arch, peer)
        assert (spec.action, spec.reason) == ("local", "unregistered machine: local boot")
    with session_scope(fleet.engine) as s:
        seen = s.get(Discovered, mac)
        assert seen is not None
        assert (seen.boots, seen.last_ip, seen.last_arch) == (3, "198.18.0.78", "i386")
        assert s.exec(select(Install)).first() is None
        kinds = [e.kind for e in s.exec(select(Event).where(Event.mac == mac))]
    assert kinds == ["discovered"]
    assert within(fleet, Discovered.first_seen_at, Discovered.mac, mac, before) == [mac]
    assert within(fleet, Discovered.last_seen_at, Discovered.mac, mac, before) == [mac]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (None, "no MAC in the request"),
        *(
            (bad, "malformed MAC: local boot")
            for bad in ("", "zz:zz", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "x" * 5000)
        ),
    ],
)
def test_malformed_mac_boots_from_disk(fleet: Fleet, bad: str | None, reason: str) -> None:
    spec = fleet.booter.resolve(bad, None, None)
    assert (spec.action, spec.reason) == ("local", reason)


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
            row = clients.create(s, ClientCreate(mac=MAC, profile="p"), fleet.checks, "test")
            installs.reinstall(s, row, fleet.policy, fleet.checks, "test")
        with caplog.at_level(logging.ERROR, logger="server.api.boot"):
            r = app.test_client().get(f"/ipxe?mac={MAC}")
    finally:
        fleet.close()
    assert r.status_code == 500  # iPXE's `chain ... || goto disk` boots the disk
    [line] = [rec.getMessage() for rec in caplog.records if rec.name == "server.api.boot"]
    assert line.startswith(f"iPXE script for {MAC} (install 1 of profile p) does not render")


# --- the fast lane: local boots decided on a read, sightings written behind ----------------


def row(fleet: Fleet, mac: str) -> Client:
    fleet.booter.registry.flush()  # sightings are written behind; tests/registry/test_seen.py
    with session_scope(fleet.engine) as s:
        found = s.exec(select(Client).where(Client.mac == mac)).one()
        s.expunge(found)
        return found


def test_idle_client_boots_locally_and_is_seen(fleet: Fleet, registered: str) -> None:
    before = utcnow()
    spec = fleet.booter.resolve(registered.upper(), "x86_64", "198.18.2.7")
    assert (spec.action, spec.mac, spec.reason) == (
        "local",
        registered,
        "client is idle: local boot",
    )
    seen = row(fleet, registered)
    assert (seen.last_ip, seen.last_arch, seen.state) == ("198.18.2.7", "x86_64", "idle")
    assert seen.last_seen_at is not None
    first = seen.last_seen_at
    fleet.booter.resolve(registered, None, None)  # no arch, no peer: the old ones stay
    again = row(fleet, registered)
    assert (again.last_ip, again.last_arch) == ("198.18.2.7", "x86_64")
    assert again.last_seen_at is not None and again.last_seen_at >= first
    assert again.version == seen.version and again.updated_at == seen.updated_at
    assert within(fleet, Client.last_seen_at, Client.mac, registered, before) == [registered]


def within(fleet: Fleet, column: Any, key: Any, value: str, before: datetime) -> list[str]:
    """Rows whose `column`, compared in SQL, lies between `before` and now: a value written
    by the write-behind path compares like one the ORM writes, on any database."""
    after = utcnow()
    with session_scope(fleet.engine) as s:
        stmt = select(key).where(key == value, col(column) >= before, col(column) <= after)
        return list(s.exec(stmt))


def test_ipxe_route_answers_local_boot(client: FlaskClient, registered: str) -> None:
    r = client.get(f"/ipxe?mac={registered}&arch=x86_64")
    assert r.status_code == 200, r.text
    assert r.text.startswith("#!ipxe") and "exit" in r.text


def test_concurrent_sightings_are_all_committed(fleet: Fleet) -> None:
    macs = [f"52:54:00:00:01:{i:02x}" for i in range(24)]
    with session_scope(fleet.engine, write=True) as s:
        clients.import_csv(s, "\n".join(macs) + "\n", fleet.checks, "test")

    def boot(mac: str, n: int) -> None:
        for _ in range(5):
            assert fleet.booter.resolve(mac, "x86_64", f"198.18.2.{n}").action == "local"

    threads = [threading.Thread(target=boot, args=(m, i)) for i, m in enumerate(macs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, mac in enumerate(macs):
        seen = row(fleet, mac)
        assert (seen.last_ip, seen.last_arch) == (f"198.18.2.{i}", "x86_64")
        assert seen.last_seen_at is not None


def test_a_mac_registered_meanwhile_gets_the_client_path(fleet: Fleet) -> None:
    mac = "52:54:00:aa:bb:02"
    with session_scope(fleet.engine, write=True) as s:
        clients.import_csv(s, mac + "\n", fleet.checks, "test")
    # as if the lookup had run just before the import: the group commit must notice
    assert fleet.booter.registry.unregistered(mac, "198.18.2.5", None, utcnow()) is False
    with session_scope(fleet.engine) as s:
        assert s.get(Discovered, mac) is None

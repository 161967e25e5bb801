"""The unknown-machine menu with real firmware: SeaBIOS + the NIC's iPXE ROM, unregistered.

Left alone the menu boots the disk; asked (a key press on the serial console) it records a
registration request with the firmware's SMBIOS facts and still boots the disk; approved,
the machine is a client that boots its disk without a menu. Nothing is ever installed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .bootfleet import Bootfleet
from .conftest import Machines
from .installer.build import Installer
from .lab import ALT_SERVER_IP, ALT_TAG, Lab

MENU_TITLE = "this machine ("
MENU_SEEN = re.escape(MENU_TITLE)
MARKER_TIMEOUT = 240
# The item's shortcut key: one byte. An arrow key is an escape sequence, and under load
# iPXE may read its ESC alone, which leaves the menu (to the disk).
REGISTER_KEY = "r"


@pytest.fixture(scope="module")
def menu_server(
    lab: Lab, installer: Installer, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[Bootfleet]:
    """A `bootfleet serve --unknown-menu` on the lab's second address."""
    server = Bootfleet(
        lab,
        tmp_path_factory.mktemp("bootfleet-menu"),
        installer,
        address=ALT_SERVER_IP,
        serve_args=("--unknown-menu",),
    )
    try:
        lab.dhcp()
        server.start()
        yield server
    finally:
        server.close()
        if server.log.exists():
            shutil.copy(server.log, artifacts / "bootfleet-menu.log")


def discovered(server: Bootfleet, mac: str) -> dict[str, object] | None:
    items = server.call("GET", "/discovered")["items"]  # type: ignore[index]
    return next((d for d in items if d["mac"] == mac), None)


def test_menu_then_request_then_approval(
    lab: Lab, menu_server: Bootfleet, machines: Machines
) -> None:
    vm = machines.new("bios", "unknown-menu", installed=True)
    lab.choose_chain(vm.mac, ALT_TAG)
    marker = f"BOOTFLEET-MARKER-{vm.mac}"
    before = hashlib.sha256(vm.disk.read_bytes()).hexdigest()

    # 1. Nobody touches the menu: after its timeout the disk boots.
    vm.power_on()
    vm.wait_for(MENU_SEEN, MARKER_TIMEOUT)
    vm.wait_for(marker, MARKER_TIMEOUT)
    vm.power_off()
    seen = discovered(menu_server, vm.mac)
    assert seen is not None and seen["requested_at"] is None

    # 2. Someone at the machine picks "Request registration".
    vm.power_on()
    vm.wait_for(MENU_SEEN, MARKER_TIMEOUT)
    vm.type(REGISTER_KEY)
    vm.wait_for("requested; an admin approves it", MARKER_TIMEOUT)
    vm.wait_for(marker, MARKER_TIMEOUT)
    vm.power_off()
    asked = discovered(menu_server, vm.mac)
    assert asked is not None and asked["requested_at"], asked
    assert asked["manufacturer"] == "QEMU", asked  # SeaBIOS's SMBIOS tables, read by iPXE
    assert str(asked["product"]).startswith("Standard PC (Q35 + ICH9"), asked
    print(f"facts reported: {asked}")

    # 3. Approved with a profile: a client, idle, that boots its disk with no menu.
    profile = menu_server.profile("menu-e2e", "console=ttyS0")
    menu_server.call("POST", f"/discovered/{vm.mac}/approve", {"profile": profile})
    assert menu_server.state(vm.mac) == "idle"
    vm.power_on()
    vm.wait_for(marker, MARKER_TIMEOUT)
    vm.power_off()
    assert MENU_TITLE not in vm.output()
    assert hashlib.sha256(vm.disk.read_bytes()).hexdigest() == before, "the disk was written"
    assert menu_server.state(vm.mac) == "idle"

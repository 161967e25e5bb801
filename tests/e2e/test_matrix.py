"""The whole chain with real firmware: DHCP (dnsmasq) -> boot loader -> Bootfleet -> installer.

Each chain: register the VM's MAC, request a reinstall, power on; the API shows
pending -> booting -> installing -> installed; power on again and the VM boots the marker
system from its own disk, with no new install.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import pytest

from .bootfleet import PROGRESS_TIMEOUT, Bootfleet, StateWatch
from .conftest import Machines
from .lab import Lab
from .vm import VM, Firmware

pytestmark = pytest.mark.e2e

INSTALL_TIMEOUT = 240  # tcg: a UEFI install takes ~30 s here; leave room for a slow CI host
MARKER_TIMEOUT = 180
CMDLINE = "console=ttyS0"
INSTALLER_LINE = "bootfleet-installer: starting"


@dataclass(frozen=True)
class Chain:
    firmware: Firmware
    dhcp_tag: str | None  # None: the default site policy (iPXE ROM / OVMF PXE -> snponly.efi)
    expect: tuple[str, ...]  # what the serial console must show on the way to the installer


CHAINS = {
    # SeaBIOS runs the NIC's iPXE ROM; DHCP names boot.ipxe on TFTP; it chains to /ipxe over HTTP.
    "bios-ipxe": Chain("bios", "tftpipxe", ("tftp://198.18.0.1/boot.ipxe", ":8080/ipxe...")),
    # The iPXE ROM loads pxelinux.0 over TFTP; pxelinux reads pxelinux.cfg/01-<mac>.
    "bios-pxelinux": Chain("bios", "pxelinux", ("PXELINUX",)),
    # OVMF's PXE client loads Debian's signed grubnetx64.efi; grub.cfg -> grub.cfg-01-<mac>.
    "uefi-grub": Chain("uefi", "grub", ("Welcome to GRUB",)),
    # OVMF's PXE client loads snponly.efi; iPXE gets http://.../boot.ipxe from DHCP.
    "uefi-ipxe": Chain("uefi", None, ("NBP filename is snponly.efi", "/boot.ipxe")),
}


def marker(vm: VM) -> str:
    return f"BOOTFLEET-MARKER-{vm.mac}"


LIFECYCLE = ["pending", "booting", "installing", "installed", "failed"]
# The event log of one successful reinstall (progress reports folded into one).
INSTALLED_EVENTS = ["reinstall", "boot", "installing", "progress", "installed"]


def event_kinds(server: Bootfleet, mac: str) -> list[str]:
    """The client's lifecycle events, oldest first, progress reports folded into one."""
    kinds: list[str] = []
    for e in server.events(mac):
        kind = str(e["kind"])
        if kind in {"reinstall", "boot", "installing", "progress", "installed", "failed"} and (
            not kinds or kinds[-1] != kind
        ):
            kinds.append(kind)
    return kinds


def assert_lifecycle(watch: StateWatch, final: str, vm: VM) -> None:
    """Polled states run forward through the lifecycle (a fast step may fall between two polls)
    and the event log, which misses nothing, has every step."""
    seen = watch.seen
    assert seen[0] == "pending" and seen[-1] == final, (seen, vm.tail())
    assert seen == sorted(seen, key=LIFECYCLE.index), seen


def assert_installed(
    server: Bootfleet, vm: VM, watch: StateWatch, name: str, expect: tuple[str, ...]
) -> None:
    """One whole install: every lifecycle step polled in order and logged, and the chain's
    own lines on the serial console."""
    assert_lifecycle(watch, "installed", vm)
    print(f"{name}: states polled {watch.seen}")
    assert event_kinds(server, vm.mac) == INSTALLED_EVENTS
    out = vm.output()
    for text in expect:
        assert text in out, f"{name}: {text!r} not on the serial console:\n{vm.tail()}"


def boot_and_watch(server: Bootfleet, vm: VM, final: set[str]) -> StateWatch:
    watch = StateWatch(server, vm.mac)
    assert watch.poll() == "pending"
    vm.power_on()
    watch.until(final, INSTALL_TIMEOUT, vm)
    return watch


def boot_disk(
    server: Bootfleet, vm: VM, timeout: float = MARKER_TIMEOUT, state: str = "installed"
) -> float:
    """Power on (again): the disk's marker system boots, no install starts, and the client is
    still in `state`. Returns the seconds it took."""
    started = time.monotonic()
    vm.power_on()
    vm.wait_for(marker(vm), timeout)
    seconds = time.monotonic() - started
    vm.power_off()
    assert INSTALLER_LINE not in vm.output(), "an install started"
    assert server.state(vm.mac) == state
    return seconds


@pytest.mark.parametrize("name", list(CHAINS))
def test_reinstall_once_then_boot_from_disk(
    name: str, lab: Lab, bootfleet: Bootfleet, machines: Machines
) -> None:
    chain = CHAINS[name]
    vm = machines.new(chain.firmware, name)
    lab.choose_chain(vm.mac, chain.dhcp_tag)
    profile = bootfleet.profile("e2e", CMDLINE)
    bootfleet.register(vm.mac, profile, hostname=name)
    requested = bootfleet.reinstall(vm.mac)
    assert requested["state"] == "pending"

    started = time.monotonic()
    watch = boot_and_watch(bootfleet, vm, {"installed", "failed"})
    vm.wait_off(60)  # the installer powers the machine off
    install_s = time.monotonic() - started
    assert_installed(bootfleet, vm, watch, name, chain.expect)
    client = bootfleet.client(vm.mac)
    install = client["install"]
    assert isinstance(install, dict)
    assert install["result"] == "installed" or client["state"] == "installed", client
    assert marker(vm).encode() in vm.disk.read_bytes()

    # Second power-on: network first again, but Bootfleet says "local"; the disk boots.
    local_s = boot_disk(bootfleet, vm)
    after = bootfleet.client(vm.mac)
    assert isinstance(after["install"], dict) and after["install"]["id"] == install["id"]
    print(f"{name}: install {install_s:.1f}s, local boot {local_s:.1f}s")


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_machine_without_reinstall_boots_its_disk(
    firmware: Firmware, bootfleet: Bootfleet, machines: Machines
) -> None:
    """Registered-but-idle (BIOS) and unknown (UEFI) machines boot their disk, untouched."""
    vm = machines.new(firmware, f"keep-{firmware}", installed=True)
    if firmware == "bios":
        bootfleet.register(vm.mac, bootfleet.profile("e2e", CMDLINE), hostname="keep-bios")
    before = hashlib.sha256(vm.disk.read_bytes()).hexdigest()
    vm.power_on()
    vm.wait_for(marker(vm), MARKER_TIMEOUT)
    vm.power_off()
    assert INSTALLER_LINE not in vm.output()
    assert hashlib.sha256(vm.disk.read_bytes()).hexdigest() == before, "the disk was written"
    if firmware == "bios":
        assert bootfleet.state(vm.mac) == "idle"


def test_failing_installer_reports_its_log(
    lab: Lab, bootfleet: Bootfleet, machines: Machines
) -> None:
    vm = machines.new("bios", "fails")
    lab.choose_chain(vm.mac, None)  # the site default: iPXE ROM -> HTTP boot.ipxe
    bootfleet.register(vm.mac, bootfleet.profile("e2e", CMDLINE), hostname="fails")
    bootfleet.call("PATCH", f"/clients/{vm.mac}", {"variables": {"mode": "fail"}})
    bootfleet.reinstall(vm.mac)
    watch = boot_and_watch(bootfleet, vm, {"failed", "installed"})
    assert_lifecycle(watch, "failed", vm)
    assert event_kinds(bootfleet, vm.mac) == ["reinstall", "boot", "installing", "failed"]
    install = bootfleet.client(vm.mac)["install"]
    assert isinstance(install, dict)
    detail = bootfleet.install(vm.mac, int(install["id"]))
    assert "Input/output error (simulated)" in str(detail["failure_log"]), detail
    vm.wait_off(60)
    assert marker(vm).encode() not in vm.disk.read_bytes()


def test_silent_installer_fails_at_its_deadline(
    lab: Lab, bootfleet: Bootfleet, machines: Machines
) -> None:
    vm = machines.new("bios", "silent")
    lab.choose_chain(vm.mac, None)
    bootfleet.register(vm.mac, bootfleet.profile("e2e", CMDLINE), hostname="silent")
    bootfleet.call("PATCH", f"/clients/{vm.mac}", {"variables": {"mode": "silent"}})
    bootfleet.reinstall(vm.mac)
    watch = boot_and_watch(bootfleet, vm, {"installing"})
    vm.wait_off(60)  # powered off without a word
    quiet_since = time.monotonic()
    watch.until({"failed", "installed"}, PROGRESS_TIMEOUT + 60, vm)
    waited = time.monotonic() - quiet_since
    assert watch.seen == ["pending", "booting", "installing", "failed"]
    assert event_kinds(bootfleet, vm.mac) == ["reinstall", "boot", "installing", "failed"]
    assert waited < PROGRESS_TIMEOUT + 30
    install = bootfleet.client(vm.mac)["install"]
    assert isinstance(install, dict)
    assert install["result"] != "installed"

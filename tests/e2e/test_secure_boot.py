"""Secure Boot enforced, with Microsoft's keys: OVMF -> shim -> signed GRUB -> signed kernel.

One machine: reinstall once through Bootfleet (the installer reads the SecureBoot variable and
reports it), boot its disk (signed shim and GRUB again), then offer it the unsigned iPXE as a
boot program: the firmware refuses it and goes on to the disk, still enforcing.
"""

from __future__ import annotations

import re

import pytest

from .bootfleet import Bootfleet
from .conftest import Machines
from .fetches import fetched, lease_ip, tftp_fetches
from .lab import SHIM, Lab
from .test_matrix import (
    CMDLINE,
    INSTALLED_EVENTS,
    INSTALLER_LINE,
    MARKER_TIMEOUT,
    assert_lifecycle,
    boot_and_watch,
    event_kinds,
    marker,
)
from .vm import OVMF_CODE_SB, OVMF_VARS_SB

pytestmark = pytest.mark.e2e

# Printed by the kernel when the firmware reports Secure Boot on (it then locks itself down).
KERNEL_SAYS = "secureboot: Secure boot enabled"
INSTALLER_SAYS = "bootfleet-installer: secure boot: on"


@pytest.fixture
def secure_firmware() -> None:
    for path in (OVMF_CODE_SB, OVMF_VARS_SB):
        if not path.exists():
            pytest.fail(f"{path} missing (Debian: ovmf)")


def test_secure_boot_reinstall_once_then_disk(
    secure_firmware: None, lab: Lab, bootfleet: Bootfleet, machines: Machines
) -> None:
    vm = machines.new("uefi", "secure-boot")
    vm.secure_boot = True
    lab.choose_chain(vm.mac, "shim")
    bootfleet.register(vm.mac, bootfleet.profile("e2e", CMDLINE), hostname="secure-boot")
    bootfleet.reinstall(vm.mac)

    # 1. shim (Microsoft-signed) -> grubx64.efi (Debian-signed) -> kernel (Debian-signed).
    watch = boot_and_watch(bootfleet, vm, {"installed", "failed"})
    vm.wait_off(60)
    assert_lifecycle(watch, "installed", vm)
    assert event_kinds(bootfleet, vm.mac) == INSTALLED_EVENTS
    out = vm.output()
    assert KERNEL_SAYS in out and INSTALLER_SAYS in out, vm.tail(200)
    progress = [str(e["detail"]) for e in bootfleet.events(vm.mac) if e["kind"] == "progress"]
    assert any("secure boot on" in p for p in progress), progress
    names = fetched(bootfleet, lab, vm.mac)
    print(f"secure boot, install: TFTP {names}")
    assert names[:2] == [SHIM, "grubx64.efi"], names
    assert f"grub/grub.cfg-01-{vm.mac}" in [n.lstrip("/") for n in names], names
    assert marker(vm).encode() in vm.disk.read_bytes()

    # 2. Local boot: the net GRUB chainloads the disk's shim -> signed GRUB -> marker.
    vm.power_on()
    vm.wait_for(marker(vm), MARKER_TIMEOUT)
    vm.power_off()
    assert INSTALLER_LINE not in vm.output(), "a second install started"
    assert bootfleet.state(vm.mac) == "installed"

    # 3. The unsigned iPXE (the site default for UEFI): refused, and nothing after it is asked
    # for; the firmware goes on to the disk, whose signed chain still boots.
    lab.choose_chain(vm.mac, None)
    ip = lease_ip(lab, vm.mac)
    before = len(tftp_fetches(bootfleet.log, ip))
    vm.power_on()
    vm.wait_for(marker(vm), MARKER_TIMEOUT)
    vm.power_off()
    out = vm.output()
    assert "NBP filename is snponly.efi" in out, vm.tail()
    assert re.search(r'failed to load Boot\d+ "UEFI PXEv4 .*: Access Denied', out), vm.tail()
    assert "iPXE" not in out, "the unsigned iPXE ran under Secure Boot"
    after = tftp_fetches(bootfleet.log, ip)[before:]
    print(f"secure boot, unsigned loader: TFTP {after}")
    assert [name for name, outcome in after if outcome == "ok"] == ["snponly.efi"], after

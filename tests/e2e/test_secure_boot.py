"""Secure Boot enforced, with Microsoft's keys: OVMF -> shim -> signed GRUB -> signed kernel.

One machine: reinstall once through Bootfleet (the installer reads the SecureBoot variable and
reports it), boot its disk (signed shim and GRUB again), then offer it the unsigned iPXE as a
boot program: the firmware refuses it and goes on to the disk, still enforcing.
"""

from __future__ import annotations

import re

import pytest

from .bootfleet import Bootfleet
from .conftest import Machines, skip_or_fail
from .fetches import fetched, lease_ip, tftp_fetches
from .installer.build import SIGNED_GRUB, SIGNED_SHIM
from .lab import SHIM, Lab
from .reinstall import install_once
from .test_matrix import boot_disk
from .vm import OVMF_CODE_SB, OVMF_VARS_SB

pytestmark = pytest.mark.e2e

# Printed by the kernel when the firmware reports Secure Boot on (it then locks itself down).
KERNEL_SAYS = "secureboot: Secure boot enabled"
INSTALLER_SAYS = "bootfleet-installer: secure boot: on"
REFUSED = re.compile(r'failed to load Boot\d+ "UEFI PXEv4 .*: Access Denied')


@pytest.fixture
def secure_firmware(e2e_ready: None) -> None:
    for path in (OVMF_CODE_SB, OVMF_VARS_SB, SIGNED_SHIM, SIGNED_GRUB):
        if not path.exists():
            skip_or_fail(f"{path} missing (Debian: ovmf, shim-signed, grub-efi-amd64-signed)")


def test_secure_boot_reinstall_once_then_disk(
    secure_firmware: None, lab: Lab, bootfleet: Bootfleet, machines: Machines
) -> None:
    vm = machines.new("uefi", "secure-boot")
    vm.secure_boot = True

    # 1. shim (Microsoft-signed) -> grubx64.efi (Debian-signed) -> kernel (Debian-signed).
    install_s = install_once(bootfleet, lab, vm, "shim")
    out = vm.output()
    assert KERNEL_SAYS in out and INSTALLER_SAYS in out, vm.tail(200)
    progress = [str(e["detail"]) for e in bootfleet.events(vm.mac) if e["kind"] == "progress"]
    assert any("secure boot on" in p for p in progress), progress
    names = fetched(bootfleet, lab, vm.mac)
    print(f"secure boot, install: TFTP {names}")
    assert names[:2] == [SHIM, "grubx64.efi"], names
    assert f"grub/grub.cfg-01-{vm.mac}" in [n.lstrip("/") for n in names], names

    # 2. Local boot: the net GRUB chainloads the disk's shim -> signed GRUB -> marker.
    local_s = boot_disk(bootfleet, vm)

    # 3. The unsigned iPXE (the site default for UEFI): refused, and nothing after it is asked
    # for; the firmware goes on to the disk, whose signed chain still boots.
    lab.choose_chain(vm.mac, None)
    ip = lease_ip(lab, vm.mac)
    before = len(tftp_fetches(bootfleet.log, ip))
    boot_disk(bootfleet, vm)
    out = vm.output()
    assert "NBP filename is snponly.efi" in out, vm.tail()
    assert REFUSED.search(out), vm.tail()
    assert "iPXE" not in out, "the unsigned iPXE ran under Secure Boot"
    after = tftp_fetches(bootfleet.log, ip)[before:]
    print(f"secure boot, unsigned loader: TFTP {after}")
    assert [name for name, outcome in after if outcome == "ok"] == ["snponly.efi"], after
    print(f"secure boot: install {install_s:.1f}s, local boot {local_s:.1f}s")

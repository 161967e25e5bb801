"""UEFI HTTP Boot: OVMF with its PXE client off asks DHCP as architecture 16 (HTTPClient).

dnsmasq answers with option 60 "HTTPClient" and a numeric URL of a boot program under
Bootfleet's /images/ (iPXE's snponly.efi); iPXE asks DHCP again and is sent to Bootfleet's
iPXE entry point. Reinstall once, then the machine boots its disk.
"""

from __future__ import annotations

import pytest

from .bootfleet import Bootfleet
from .conftest import Machines
from .lab import HTTP_BOOT_PROGRAM, Lab, http_boot_url
from .reinstall import install_once
from .test_matrix import boot_disk

pytestmark = pytest.mark.e2e


def test_http_boot_reinstall_once_then_disk(
    lab: Lab, bootfleet: Bootfleet, machines: Machines
) -> None:
    vm = machines.new("uefi", "http-boot")
    vm.pxe = False
    install_s = install_once(bootfleet, lab, vm, "httpboot")
    out = vm.output()
    url = http_boot_url()
    assert "Start HTTP Boot over IPv4" in out and url in out, vm.tail(200)
    assert "PXEv4" not in out, "the PXE client ran"
    size = (bootfleet.images_dir / HTTP_BOOT_PROGRAM).stat().st_size
    assert f"File Size: {size} Bytes" in out, vm.tail(200)  # all of it, from Bootfleet
    assert ":8080/boot.ipxe" in out, vm.tail(200)  # iPXE, loaded over HTTP, asked DHCP again
    asked = [line for line in lab.dnsmasq_log().splitlines() if "HTTPClient" in line]
    assert any("Arch:00016" in line for line in asked), asked

    local_s = boot_disk(bootfleet, vm)
    assert url in vm.output(), vm.tail()
    print(f"http boot: install {install_s:.1f}s, local boot {local_s:.1f}s")

"""Fixtures for the end-to-end lab: real firmware in QEMU against a real `bootfleet serve`.

The tests skip (with the reason) when not root or without QEMU; with BOOTFLEET_E2E_REQUIRED=1
(CI) any such skip is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .bootfleet import Bootfleet
from .installer.build import Installer, blank_disk, build, marker_disk
from .lab import Lab
from .vm import NIC_ROM, OVMF_CODE, VM, Firmware, qemu_binary

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("BOOTFLEET_E2E_CACHE", REPO / "build" / "e2e"))
ARTIFACTS = REPO / "tests" / "artifacts" / "e2e"


def skip_or_fail(reason: str) -> None:
    if os.environ.get("BOOTFLEET_E2E_REQUIRED") == "1":
        pytest.fail(f"e2e required (BOOTFLEET_E2E_REQUIRED=1) but: {reason}", pytrace=False)
    pytest.skip(reason)


def missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "e2e lab needs root (network namespaces, taps)"
    if qemu_binary() is None:
        return "qemu-system-x86_64 not installed (Debian: qemu-system-x86)"
    for path, pkg in ((OVMF_CODE, "ovmf"), (NIC_ROM, "ipxe-qemu")):
        if not path.exists():
            return f"{path} missing (Debian: {pkg})"
    for tool, pkg in (
        ("dnsmasq", "dnsmasq-base"),
        ("nasm", "nasm"),
        ("mkfs.fat", "dosfstools"),
        ("mcopy", "mtools"),
        ("grub-mkstandalone", "grub-common"),
    ):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} not installed (Debian: {pkg})"
    return None


@pytest.fixture(scope="session")
def e2e_ready() -> None:
    reason = missing_prerequisite()
    if reason:
        skip_or_fail(reason)


@pytest.fixture(scope="session")
def installer(e2e_ready: None) -> Installer:
    return build(CACHE)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def lab(e2e_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("lab")
    lab = Lab(workdir, tag=uuid.uuid4().hex[:6])
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def bootfleet(
    lab: Lab, installer: Installer, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[Bootfleet]:
    """`bootfleet serve` on the lab bridge (TFTP 69, HTTP 8080), shared by the e2e tests."""
    server = Bootfleet(lab, tmp_path_factory.mktemp("bootfleet"), installer)
    try:
        lab.dhcp()
        server.start()
        yield server
    finally:
        server.close()
        if server.log.exists():
            shutil.copy(server.log, artifacts / "bootfleet.log")
        (artifacts / "dnsmasq.log").write_text(lab.dnsmasq_log())


class Machines:
    """Creates VMs with fresh MACs and disks; closes them (and keeps their logs) at the end."""

    def __init__(self, lab: Lab, workdir: Path, artifacts: Path, installer: Installer) -> None:
        self.lab, self.workdir, self.artifacts, self.installer = lab, workdir, artifacts, installer
        self.vms: list[VM] = []

    def new(self, firmware: Firmware, name: str, installed: bool = False) -> VM:
        mac = "52:54:00:" + ":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:3])
        disk = self.workdir / f"{name}.disk"
        if installed:
            image = self.installer.bios_image if firmware == "bios" else self.installer.uefi_image
            marker_disk(image, mac, disk)
        else:
            blank_disk(disk)
        vm = VM(self.lab, name, mac, firmware, disk)
        self.vms.append(vm)
        return vm

    def close(self) -> None:
        for vm in self.vms:
            vm.close()
            for log in vm.logs:
                if log.exists():
                    shutil.copy(log, self.artifacts / log.name)


@pytest.fixture
def machines(lab: Lab, tmp_path: Path, artifacts: Path, installer: Installer) -> Iterator[Machines]:
    m = Machines(lab, tmp_path, artifacts, installer)
    try:
        yield m
    finally:
        m.close()

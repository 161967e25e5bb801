"""The test installer on its own: kernel + initramfs booted directly, callbacks recorded."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Machines
from .installer.build import Installer
from .lab import SERVER_IP, Lab, stop_process

pytestmark = pytest.mark.e2e
PORT = 8099


def recorded(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def recorder(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "requests.jsonl"
    script = Path(__file__).with_name("recorder.py")
    proc = lab.popen(
        [sys.executable, str(script), SERVER_IP, str(PORT), str(log)], tmp_path / "rec.out"
    )
    try:
        lab.dhcp()
        lab.http(PORT).wait_up("/")
        yield log
    finally:
        stop_process(proc)


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_installer_writes_marker_and_calls_back(
    firmware: str, machines: Machines, installer: Installer, recorder: Path
) -> None:
    vm = machines.new(firmware, f"inst-{firmware}")  # type: ignore[arg-type]
    url = f"http://{SERVER_IP}:{PORT}/install/{vm.mac}"
    vm.power_on((installer.kernel, installer.initrd, f"console=ttyS0 bootfleet.install={url}"))
    vm.wait_off(120)
    mine = [c for c in recorded(recorder) if c["path"].startswith(f"/install/{vm.mac}/")]
    calls = [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in mine]
    assert calls == [
        ("GET", "answer"),
        ("POST", "progress"),
        ("POST", "progress"),
        ("POST", "progress"),
        ("POST", "done"),
    ], vm.tail()
    for c in mine:
        if c["method"] == "POST":
            assert c["content_type"] == "application/json"
            json.loads(c["body"])
    disk = vm.disk.read_bytes()
    assert f"BOOTFLEET-MARKER-{vm.mac}".encode() in disk

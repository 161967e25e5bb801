"""`bootfleet serve` with TFTP, through a real client (curl's tftp://): per-MAC configs from
the registry, the one-shot pending -> booting transition and the grace window."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.config import Settings
from server.fleet import Fleet
from server.service import start_tftp
from tests.serve import Served, admin_token, free_port

MAC = "52:54:00:aa:00:01"


@dataclass
class Booting:
    """A served `bootfleet serve` with TFTP on, and an admin token."""

    server: Served
    token: str

    def api(self, method: str, path: str, body: object | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.server.url}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")  # type: ignore[no-any-return]

    def tftp_get(self, name: str) -> bytes:
        curl = shutil.which("curl")
        assert curl
        out = subprocess.run(
            [curl, "-sS", "--max-time", "20", f"tftp://127.0.0.1:{self.server.tftp_port}/{name}"],
            capture_output=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Booting]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    images = tmp_path / "img"
    (images / "deb").mkdir(parents=True)
    (images / "deb" / "linux").write_bytes(b"K" * 3000)
    (images / "undionly.kpxe").write_bytes(bytes(range(256)) * 300)
    data = tmp_path / "data"
    token = admin_token(data)
    tftp = free_port(socket.SOCK_DGRAM)
    with Served(data, images, "--grace-seconds", "2", tftp_port=tftp) as server:
        yield Booting(server, token)


def test_static_boot_loader_over_tftp(served: Booting, tmp_path: Path) -> None:
    assert served.tftp_get("undionly.kpxe") == (tmp_path / "img" / "undionly.kpxe").read_bytes()


def test_one_shot_over_tftp_with_grace_window(served: Booting) -> None:
    served.api("POST", "/profiles", {"name": "deb", "kernel": "deb/linux", "cmdline": "auto=true"})
    served.api("POST", "/clients", {"mac": MAC, "profile": "deb"})
    name = "pxelinux.cfg/01-" + MAC.replace(":", "-")
    assert b"LOCALBOOT 0" in served.tftp_get(name)  # nobody asked: boot from disk

    served.api("POST", f"/clients/{MAC}/reinstall")
    first = served.tftp_get(name).decode()
    assert "KERNEL deb/linux" in first and "bootfleet.install=http://127.0.0.1:" in first
    assert served.api("GET", f"/clients/{MAC}")["state"] == "booting"
    events = served.api("GET", f"/clients/{MAC}/events")["items"]
    assert events[0]["kind"] == "boot" and events[0]["source"] == "127.0.0.1"

    # GRUB reads its config again within seconds (and names the MAC with colons): same answer
    again = served.tftp_get(f"grub/grub.cfg-01-{MAC}").decode()
    assert "linux /deb/linux" in again
    assert first.split("bootfleet.install=")[1].split()[0] in again

    time.sleep(2.5)  # past the 2 s grace window set for this test
    assert b"LOCALBOOT 0" in served.tftp_get(name)
    assert served.api("GET", f"/clients/{MAC}")["state"] == "booting"  # still waiting for callbacks


def test_unknown_mac_over_tftp_boots_local_and_is_seen(served: Booting) -> None:
    assert b"LOCALBOOT 0" in served.tftp_get("pxelinux.cfg/01-52-54-00-aa-00-99")
    seen = served.api("GET", "/discovered")["items"]
    assert [d["mac"] for d in seen] == ["52:54:00:aa:00:99"]


def test_tftp_counters_in_metrics(served: Booting) -> None:
    served.tftp_get("undionly.kpxe")
    with urllib.request.urlopen(f"{served.server.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert "bootfleet_clients" in text and "tftp" in text


@pytest.mark.parametrize(("workers", "expected"), [(0, 1), (3, 3)])
def test_tftp_pools_get_the_configured_threads(
    settings: Settings, workers: int, expected: int
) -> None:
    fleet = Fleet.open(
        settings.replace(bind="127.0.0.1", tftp_enabled=True, tftp_port=0, tftp_workers=workers)
    )
    try:
        service = start_tftp(fleet)
        assert service is not None
        try:
            assert service.workers == expected  # 0: automatic, 1 on SQLite
        finally:
            service.stop()
    finally:
        fleet.close()


def test_tftp_gets_the_configured_bounds(settings: Settings) -> None:
    bounds = {"tftp_max_timeout": 3, "tftp_max_transfer_seconds": 90}
    fleet = Fleet.open(settings.replace(bind="127.0.0.1", tftp_enabled=True, tftp_port=0, **bounds))
    try:
        service = start_tftp(fleet)
        assert service is not None
        try:
            assert (service.max_timeout, service.max_transfer_seconds) == (3, 90)
        finally:
            service.stop()
    finally:
        fleet.close()

"""Bootfleet's proxyDHCP beside a site router that hands out addresses only, with real firmware.

The router (dnsmasq in a namespace of its own, joined to the lab bridge by a veth pair) knows
nothing about booting: no next-server, no boot file, no option 60. `bootfleet serve
--proxy-dhcp` on the bridge supplies the boot information. Each chain reinstalls once and then
boots its disk; a machine without a reinstall boots its disk; with the "reinstall" scope an
idle machine gets no proxy answer at all. The proxy's log lines (what each firmware sent)
and the timings are printed for the record (pytest -s).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .bootfleet import Bootfleet
from .conftest import Machines
from .installer.build import Installer
from .lab import Lab, SiteRouter, TftpAsked
from .test_matrix import (
    CMDLINE,
    assert_installed,
    boot_and_watch,
    boot_disk,
    marker,
)
from .vm import Firmware

pytestmark = pytest.mark.e2e

PROXY = ("--proxy-dhcp",)
# pxelinux and GRUB: the architecture's file for everyone, iPXE included (a SeaBIOS NIC's
# iPXE ROM then loads pxelinux.0 rather than Bootfleet's HTTP script).
LOADERS = ("--proxy-dhcp-files", "bios=pxelinux.0,efi64=grubnetx64.efi,ipxe=")


@dataclass(frozen=True)
class ProxyChain:
    firmware: Firmware
    serve_args: tuple[str, ...]
    expect: tuple[str, ...]  # on the serial console on the way to the installer


CHAINS = {
    # SeaBIOS runs the NIC's iPXE ROM (user class iPXE): straight to the HTTP entry point.
    "bios-ipxe": ProxyChain("bios", PROXY, ("http://198.18.0.1:8080/boot.ipxe",)),
    # OVMF's PXE client: snponly.efi over TFTP, then iPXE asks again and gets boot.ipxe.
    "uefi-ipxe": ProxyChain("uefi", PROXY, ("snponly.efi", "/boot.ipxe")),
    # The iPXE ROM loads pxelinux.0; pxelinux reads pxelinux.cfg/01-<mac> from the proxy's server.
    "bios-pxelinux": ProxyChain("bios", PROXY + LOADERS, ("PXELINUX",)),
    # OVMF -> GRUB is not here: see test_grub_asks_the_router_not_the_proxy.
}


@pytest.fixture(scope="module")
def proxy_lab(e2e_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A lab of its own: no lab dnsmasq on the bridge, only what the site router gives."""
    lab = Lab(tmp_path_factory.mktemp("proxylab"), tag=f"px{uuid.uuid4().hex[:5]}")
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def site_router(proxy_lab: Lab, artifacts: Path) -> Iterator[SiteRouter]:
    router = SiteRouter(proxy_lab)
    try:
        router.start()
        yield router
    finally:
        router.close()
        (artifacts / "proxydhcp-router-dnsmasq.log").write_text(router.log())


@pytest.fixture(scope="module")
def proxy_server(
    proxy_lab: Lab,
    site_router: SiteRouter,
    installer: Installer,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts: Path,
) -> Iterator[Bootfleet]:
    """`bootfleet serve --proxy-dhcp` on the lab bridge, beside the router."""
    server = Bootfleet(proxy_lab, tmp_path_factory.mktemp("bootfleet-proxy"), installer)
    server.serve_args = PROXY
    try:
        server.start()
        yield server
    finally:
        server.close()
        if server.log.exists():
            shutil.copy(server.log, artifacts / "bootfleet-proxydhcp.log")


@pytest.fixture
def proxy_machines(
    proxy_lab: Lab, tmp_path: Path, artifacts: Path, installer: Installer
) -> Iterator[Machines]:
    m = Machines(proxy_lab, tmp_path, artifacts, installer)
    try:
        yield m
    finally:
        m.close()


def configure(server: Bootfleet, serve_args: tuple[str, ...]) -> None:
    if server.serve_args != serve_args:
        server.restart(serve_args)


def proxy_lines(server: Bootfleet, mac: str) -> list[str]:
    """The proxy's log lines about `mac`: answers and refusals, with what the firmware sent."""
    return [
        line.split(": ", 1)[1] if ": " in line else line
        for line in server.log_text().splitlines()
        if "proxyDHCP" in line and mac in line
    ]


def record(name: str, lines: list[str]) -> None:
    print(f"{name}: proxyDHCP saw")
    for line in lines:
        print(f"  {line}")


@pytest.mark.parametrize("name", list(CHAINS))
def test_reinstall_once_then_disk_through_proxy(
    name: str, proxy_server: Bootfleet, proxy_machines: Machines
) -> None:
    chain = CHAINS[name]
    configure(proxy_server, chain.serve_args)
    vm = proxy_machines.new(chain.firmware, f"px-{name}")
    proxy_server.register(vm.mac, proxy_server.profile("e2e", CMDLINE), hostname=name)
    assert proxy_server.reinstall(vm.mac)["state"] == "pending"

    started = time.monotonic()
    watch = boot_and_watch(proxy_server, vm, {"installed", "failed"})
    vm.wait_off(60)
    install_s = time.monotonic() - started
    assert_installed(proxy_server, vm, watch, name, chain.expect)
    assert marker(vm).encode() in vm.disk.read_bytes()
    answered = proxy_lines(proxy_server, vm.mac)
    assert any(line.startswith(f"proxyDHCP offer to {vm.mac}") for line in answered), answered

    local_s = boot_disk(proxy_server, vm)
    record(name, proxy_lines(proxy_server, vm.mac))
    print(f"{name}: install {install_s:.1f}s, local boot {local_s:.1f}s")


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_machine_without_reinstall_boots_its_disk(
    firmware: Firmware, proxy_server: Bootfleet, proxy_machines: Machines
) -> None:
    """Scope "all": the proxy answers, Bootfleet says local, the disk boots untouched."""
    configure(proxy_server, PROXY)
    vm = proxy_machines.new(firmware, f"px-keep-{firmware}", installed=True)
    proxy_server.register(vm.mac, proxy_server.profile("e2e", CMDLINE), hostname=vm.name)
    before = hashlib.sha256(vm.disk.read_bytes()).hexdigest()
    local_s = boot_disk(proxy_server, vm, state="idle")
    assert hashlib.sha256(vm.disk.read_bytes()).hexdigest() == before, "the disk was written"
    lines = proxy_lines(proxy_server, vm.mac)
    assert any(line.startswith(f"proxyDHCP offer to {vm.mac}") for line in lines), lines
    record(f"keep-{firmware}", lines)
    print(f"keep-{firmware}: local boot {local_s:.1f}s")


# Unanswered, OVMF retries PXE DHCP, then UEFI HTTP boot's, before the disk.
QUIET_TIMEOUT = 600  # 150-253 s seen; TCG on a busy host stretches firmware timers


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_reinstall_scope_leaves_idle_machines_unanswered(
    firmware: Firmware, proxy_server: Bootfleet, proxy_machines: Machines
) -> None:
    """Scope "reinstall": an idle machine never sees Bootfleet; it boots its disk."""
    configure(proxy_server, (*PROXY, "--proxy-dhcp-scope", "reinstall"))
    vm = proxy_machines.new(firmware, f"px-quiet-{firmware}", installed=True)
    proxy_server.register(vm.mac, proxy_server.profile("e2e", CMDLINE), hostname=vm.name)
    local_s = boot_disk(proxy_server, vm, QUIET_TIMEOUT, state="idle")
    lines = proxy_lines(proxy_server, vm.mac)
    assert lines, "the proxy never saw the machine's DHCPDISCOVER"
    assert all(
        re.match(rf"proxyDHCP: no answer to {vm.mac} .*no reinstall in flight", line)
        for line in lines
    ), lines
    # Bootfleet's boot path never heard of it either: no boot-config fetch, no sighting.
    client = proxy_server.client(vm.mac)
    assert client["state"] == "idle" and client.get("last_seen_at") is None, client
    assert proxy_server.api is not None
    status, metrics = proxy_server.api.request("GET", "/metrics")
    assert status == 200
    assert b'bootfleet_proxydhcp_unanswered_total{reason="no reinstall in flight"}' in metrics
    record(f"quiet-{firmware}", lines)
    print(f"quiet-{firmware}: local boot {local_s:.1f}s")


GRUB_WAIT = 240


def test_grub_asks_the_router_not_the_proxy(
    proxy_server: Bootfleet, site_router: SiteRouter, proxy_machines: Machines
) -> None:
    """OVMF -> GRUB cannot boot through a proxyDHCP: the firmware loads grubnetx64.efi from
    the proxy's offer, but Debian 12's GRUB 2.06 configures its network from the firmware's
    DHCPACK alone (the router's: next server 198.18.0.254, no file) and never reads the proxy
    offer, so it asks the router for its grub.cfg. Recorded here so that a GRUB which does read
    it turns this test red, and the chain can join CHAINS. Use snponly.efi for UEFI instead."""
    configure(proxy_server, PROXY + LOADERS)
    vm = proxy_machines.new("uefi", "px-uefi-grub")
    proxy_server.register(vm.mac, proxy_server.profile("e2e", CMDLINE), hostname="uefi-grub")
    proxy_server.reinstall(vm.mac)
    asked = TftpAsked(site_router.netns.name).start()
    try:
        vm.power_on()
        vm.wait_for("Welcome to GRUB", GRUB_WAIT)
        deadline = time.monotonic() + GRUB_WAIT
        while not any("grub.cfg" in name for _, name in asked.requests):
            assert time.monotonic() < deadline, f"GRUB asked nobody for grub.cfg: {vm.tail()}"
            time.sleep(0.5)
    finally:
        asked.close()
        vm.power_off()
    lines = proxy_lines(proxy_server, vm.mac)
    assert any(f"offer to {vm.mac}: arch efi64, file grubnetx64.efi" in x for x in lines), lines
    assert proxy_server.state(vm.mac) == "pending", "Bootfleet served GRUB a config after all"
    record("uefi-grub", lines)
    print(f"uefi-grub: GRUB asked the router for {sorted({n for _, n in asked.requests})}")


def test_uefi_asks_port_4011_when_the_offer_has_no_option_43(
    proxy_server: Bootfleet, proxy_machines: Machines
) -> None:
    """Without option 43, OVMF (EDK2) takes the proxy offer as a BINL offer and sends its
    DHCPREQUEST to port 4011; the ACK from there names the file it loads."""
    configure(proxy_server, (*PROXY, "--no-proxy-dhcp-discovery-control"))
    vm = proxy_machines.new("uefi", "px-binl", installed=True)
    proxy_server.register(vm.mac, proxy_server.profile("e2e", CMDLINE), hostname=vm.name)
    local_s = boot_disk(proxy_server, vm, state="idle")
    lines = proxy_lines(proxy_server, vm.mac)
    assert any(f"ack to {vm.mac}: arch efi64, file snponly.efi" in x for x in lines), lines
    assert "NBP filename is snponly.efi" in vm.output()
    record("uefi-binl", lines)
    print(f"uefi-binl: local boot {local_s:.1f}s")

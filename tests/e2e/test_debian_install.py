"""The real debian-installer, driven by the shipped `debian-preseed` exactly as Bootfleet serves it.

Chain: SeaBIOS + iPXE ROM -> `bootfleet serve` (its own instance, with production-like deadlines,
on the lab's second server address) -> Debian's netboot kernel and initrd (package
`debian-installer-12-netboot-amd64`, imported with `bootfleet images import --from-netboot`) ->
the preseed from `/answer` -> a local mirror of the archive (tests/e2e/mirror.py), served inside
the lab namespace. Nothing here edits the template: the profile only sets its documented
variables (mirror, tasks, root password hash).

- `test_debian_installs_then_boots_its_disk`: the whole install, then the first boot from disk.
  It needs every udeb that netboot d-i fetches; where the archive (or the way to it) refuses
  some of them, the mirror lacks them and the test says which and is skipped.
- `test_unreachable_mirror_fails_in_minutes` / `test_incomplete_mirror_fails_in_minutes`: the
  install fails for real, and Bootfleet shows `failed` with the installer's log within minutes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .bootfleet import Bootfleet, StateWatch
from .conftest import Machines
from .installer.build import Installer, blank_disk
from .lab import ALT_SERVER_IP, ALT_TAG, Lab, stop_process
from .mirror import NETBOOT, Builder, Mirror
from .vm import VM

pytestmark = pytest.mark.e2e

MIRROR_CACHE = Path(os.environ.get("BOOTFLEET_E2E_MIRROR", "/var/cache/bootfleet-e2e/mirror"))
MIRROR_PORT = 8081
DEAD_PORT = 8082  # nothing listens here: the unreachable mirror
IMAGE = "debian12"
PROFILE = "debian12"
# mkpasswd -m sha-512 bootfleet (the installed system's root password in the lab)
ROOT_HASH = (
    "$6$bootfleetlab$5baamoojbYwfQZALoNqhb/U/UlToJASLzxIzvIgnkS6v"
    "aRpnFYxShURvzJwQKIZ8jaRNfhjvAM2CLms7ySeVO."
)
# d-i keeps its own console on the serial port and hands it on to the installed system.
CMDLINE = (
    "auto=true priority=critical url={{ install_url }}/answer "
    "console=ttyS0,115200n8 --- console=ttyS0,115200n8"
)
DISK_MB = 6 * 1024
REPORTED_WITHIN = 5 * 60  # a failure shows as `failed` this soon after d-i shows its error
INSTALL_TIMEOUT = 50 * 60


@dataclass
class Timeline:
    """Seconds since power-on at which each step was first seen."""

    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, label: str) -> None:
        self.marks.setdefault(label, round(time.monotonic() - self.started, 1))

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.0f}s" for k, v in self.marks.items())


@pytest.fixture(scope="module")
def mirror(e2e_ready: None) -> Mirror:
    if not NETBOOT.exists():
        pytest.fail(f"{NETBOOT} missing (Debian: debian-installer-12-netboot-amd64)")
    built = Builder(MIRROR_CACHE).build()
    print(
        f"mirror: {built.packages} packages, {built.size / 2**20:.0f} MiB, built in "
        f"{built.build_seconds:.0f} s; refused by the archive: {' '.join(built.missing) or '-'}"
    )
    return built


class MirrorServer:
    """`python3 -m http.server` on the lab's second address, serving a mirror tree."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab, self.workdir = lab, workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "mirror-access.log"

    def serve(self, root: Path) -> str:
        stop_process(self.proc)
        cmd = [sys.executable, "-m", "http.server", str(MIRROR_PORT)]
        cmd += ["--bind", ALT_SERVER_IP, "--directory", str(root)]
        self.proc = self.lab.popen(cmd, self.log)
        self.lab.http(MIRROR_PORT, ALT_SERVER_IP).wait_up("/debian/dists/")
        return f"http://{ALT_SERVER_IP}:{MIRROR_PORT}/debian"

    def requests(self) -> list[str]:
        return re.findall(r'"GET (\S+) HTTP', self.log.read_text(errors="replace"))

    def close(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="module")
def mirror_server(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorServer]:
    server = MirrorServer(lab, tmp_path_factory.mktemp("mirror"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def debian_server(
    lab: Lab, installer: Installer, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[Bootfleet]:
    """A `bootfleet serve` with the default progress deadline (d-i is quiet for minutes)."""
    server = Bootfleet(
        lab,
        tmp_path_factory.mktemp("bootfleet-debian"),
        installer,
        address=ALT_SERVER_IP,
        boot_timeout=10 * 60,
        progress_timeout=2 * 60 * 60,
    )
    try:
        lab.dhcp()
        server.start()
        server.import_netboot(IMAGE, NETBOOT.parents[1])
        server.call(
            "POST",
            "/profiles",
            {
                "name": PROFILE,
                "kernel": f"{IMAGE}/linux",
                "initrd": [f"{IMAGE}/initrd.gz"],
                "cmdline": CMDLINE,
                "answer_template": "debian-preseed",
                "variables": {"tasks": ""},
            },
        )
        yield server
    finally:
        server.close()
        if server.log.exists():
            (artifacts / "bootfleet-debian.log").write_bytes(server.log.read_bytes())


def new_machine(machines: Machines, lab: Lab, name: str) -> VM:
    vm = machines.new("bios", name)
    blank_disk(vm.disk, DISK_MB)
    vm.memory_mb = 1024
    lab.choose_chain(vm.mac, ALT_TAG)
    return vm


def request_install(server: Bootfleet, vm: VM, mirror_url: str) -> None:
    server.call(
        "POST",
        "/clients",
        {
            "mac": vm.mac,
            "hostname": vm.name,
            "profile": PROFILE,
            "variables": {"root_password_hash": ROOT_HASH, "mirror": mirror_url},
        },
    )
    assert server.reinstall(vm.mac)["state"] == "pending"


def failure_log(server: Bootfleet, vm: VM) -> str:
    install = server.client(vm.mac)["install"]
    assert isinstance(install, dict)
    return str(server.install(vm.mac, int(install["id"]))["failure_log"] or "")


def wait_failed(server: Bootfleet, vm: VM, error: str, timeline: Timeline) -> str:
    """Wait for d-i to show `error` on the console, then for Bootfleet to say `failed`."""
    watch = StateWatch(server, vm.mac)
    watch.until({"installing"}, 10 * 60, vm)
    timeline.mark("preseed fetched")
    vm.wait_for(error, 15 * 60)
    timeline.mark("error on screen")
    shown = time.monotonic()
    state = watch.until({"failed", "installed"}, REPORTED_WITHIN, vm)
    timeline.mark("failed in Bootfleet")
    print(f"{vm.name}: {timeline}; states {watch.seen}")
    assert state == "failed"
    assert time.monotonic() - shown < REPORTED_WITHIN
    log = failure_log(server, vm)
    assert log.startswith("bootfleet: the installer has waited"), log[:2000]
    return log


def test_unreachable_mirror_fails_in_minutes(
    lab: Lab, debian_server: Bootfleet, machines: Machines
) -> None:
    vm = new_machine(machines, lab, "di-nomirror")
    request_install(debian_server, vm, f"http://{ALT_SERVER_IP}:{DEAD_PORT}/debian")
    timeline = Timeline()
    vm.power_on()
    log = wait_failed(debian_server, vm, r"Bad archive mirror", timeline)
    assert "Bad archive mirror" in log  # the screen, as the admin would have seen it
    assert "choose-mirror" in log  # and the syslog behind it


def test_incomplete_mirror_fails_in_minutes(
    lab: Lab,
    debian_server: Bootfleet,
    machines: Machines,
    mirror: Mirror,
    mirror_server: MirrorServer,
    tmp_path: Path,
) -> None:
    """A local mirror whose signed indexes are right but that lacks an installer component."""
    broken = mirror if mirror.missing else mirror.without("partman-ext3", tmp_path / "m")
    url = mirror_server.serve(broken.root)
    vm = new_machine(machines, lab, "di-broken")
    request_install(debian_server, vm, url)
    timeline = Timeline()
    vm.power_on()
    log = wait_failed(debian_server, vm, r"failed to download a file from the mirror", timeline)
    assert "Downloading a file failed" in log
    got = mirror_server.requests()
    # d-i checked the archive's signature and read the signed index before it gave up
    for path in ("dists/bookworm/Release.gpg", "main/debian-installer/binary-amd64/Packages.xz"):
        assert any(r.endswith(path) for r in got), got
    assert any(r.endswith(".udeb") for r in got), got


def test_debian_installs_then_boots_its_disk(
    lab: Lab,
    debian_server: Bootfleet,
    machines: Machines,
    mirror: Mirror,
    mirror_server: MirrorServer,
) -> None:
    if mirror.missing:
        pytest.skip(
            "the local mirror lacks installer components that the archive refused to "
            f"this machine: {', '.join(mirror.missing)}"
        )
    url = mirror_server.serve(mirror.root)
    vm = new_machine(machines, lab, "di-install")
    request_install(debian_server, vm, url)
    watch = StateWatch(debian_server, vm.mac)
    timeline = Timeline()
    vm.power_on()
    state = watch.until({"installed", "failed"}, INSTALL_TIMEOUT, vm)
    timeline.mark("done")
    assert state == "installed", failure_log(debian_server, vm)[-3000:]
    vm.wait_for(rf"{vm.name} login:", 15 * 60)
    timeline.mark("login on disk")
    print(f"{vm.name}: {timeline}; mirror {mirror.size / 2**20:.0f} MiB")
    assert debian_server.state(vm.mac) == "installed"
    assert [e["kind"] for e in debian_server.events(vm.mac)].count("installing") == 1

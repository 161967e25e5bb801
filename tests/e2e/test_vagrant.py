"""The Vagrant lab (Vagrantfile): it validates, and a box-less vagrant-libvirt client VM
reinstalls once through `bootfleet serve` on this host, then boots its own disk.

The libvirt side is built for the test and torn down after it: libvirtd/virtlogd (started
only if not running), a storage pool in a temp folder, and an isolated libvirt network on
a free 198.18.<n>.0/24 (no forward, no DHCP, no DNS) whose bridge carries our dnsmasq and Bootfleet.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .bootfleet import Bootfleet, StateWatch
from .conftest import REPO, skip_or_fail
from .installer.build import Installer
from .lab import HTTP_PORT, NsHttp, dnsmasq_conf, stop_process

pytestmark = pytest.mark.e2e

# The libvirt network lives in the host namespace, so two runs on one host must not share a
# subnet: each takes the first free 198.18.<n>.0/24, n in 1..99 (the netns lab uses 198.18.0).
SUBNET_OCTETS = range(1, 100)
VAGRANT_TIMEOUT = 300


def vagrant_env(work: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        VAGRANT_CWD=str(REPO),
        VAGRANT_DOTFILE_PATH=str(work / "dotvagrant"),
        VAGRANT_HOME=str(work / "vagrant-home"),
        VAGRANT_CHECKPOINT_DISABLE="1",
        VAGRANT_DEFAULT_PROVIDER="libvirt",
    )
    env.update(extra)
    return env


def vagrant(work: Path, *args: str, timeout: float = VAGRANT_TIMEOUT, **env: str) -> str:
    proc = subprocess.run(
        ["timeout", str(int(timeout)), "vagrant", *args],
        env=vagrant_env(work, **env),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"vagrant {' '.join(args)} -> {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


@pytest.fixture(scope="module")
def vagrant_ready() -> None:
    if shutil.which("vagrant") is None:
        skip_or_fail("vagrant not installed (Debian: vagrant)")


@pytest.mark.parametrize(
    "env",
    [{}, {"BOOTFLEET_HOST_SERVER": "1", "BOOTFLEET_CLIENTS": "3"}],
    ids=["server-vm", "host-server"],
)
def test_vagrantfile_validates(env: dict[str, str], vagrant_ready: None, tmp_path: Path) -> None:
    out = vagrant(tmp_path, "validate", timeout=120, **env)
    assert "validated successfully" in out


def _sh(*cmd: str) -> str:
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True).stdout


class Libvirt:
    """libvirtd + virtlogd (ours only if none ran), a pool and an isolated network."""

    def __init__(self, work: Path, tag: str) -> None:
        self.work, self.tag = work, tag
        # QEMU runs as libvirt-qemu: disks and serial files live outside pytest's 0700 tmp.
        self.shared = Path(tempfile.mkdtemp(prefix=f"bootfleet-e2e-{tag}-", dir="/var/tmp"))
        self.shared.chmod(0o755)
        self.pool = f"bf-e2e-{tag}"
        self.network = f"bf-e2e-{tag}"
        self.bridge = f"bfe2e{tag}"[:15]
        self.started: list[subprocess.Popen[bytes]] = []
        self.have_pool = self.have_net = False
        self.subnet = self.host_ip = ""

    def daemon_up(self) -> bool:
        return (
            subprocess.run(
                ["virsh", "-c", "qemu:///system", "version"], capture_output=True
            ).returncode
            == 0
        )

    def start(self) -> Libvirt:
        # libvirt writes <bridge>.macs there for every network, even without DHCP/DNS; the
        # package creates it only through its systemd units.
        Path("/var/lib/libvirt/dnsmasq").mkdir(parents=True, exist_ok=True)
        if not self.daemon_up():
            for daemon in ("virtlogd", "libvirtd"):
                # foreground under our own PID: stopped by PID in close()
                self.started.append(
                    subprocess.Popen([daemon], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )
            deadline = time.monotonic() + 30
            while not self.daemon_up():
                if time.monotonic() > deadline:
                    raise RuntimeError("libvirtd did not come up")
                time.sleep(0.5)
        pool_dir = self.shared / "pool"
        pool_dir.mkdir(mode=0o755)
        _sh("virsh", "pool-create-as", self.pool, "dir", "--target", str(pool_dir))
        self.have_pool = True
        for octet in random.sample(SUBNET_OCTETS, 10):
            self.subnet = f"198.18.{octet}"
            self.host_ip = f"{self.subnet}.1"
            xml = self.work / "net.xml"
            xml.write_text(
                f"<network><name>{self.network}</name>"
                f"<bridge name='{self.bridge}' stp='off' delay='0'/><dns enable='no'/>"
                f"<ip address='{self.host_ip}' netmask='255.255.255.0'/>"
                f"<ip family='ipv6' address='2001:db8:{octet}::1' prefix='64'/></network>"
            )  # no <forward>: isolated; no <dhcp>: our dnsmasq is the site's DHCP server
            created = subprocess.run(["virsh", "net-create", str(xml)], capture_output=True)
            if created.returncode == 0:
                break
        else:
            raise RuntimeError(f"no free 198.18.x.0/24 for the libvirt network: {created.stderr!r}")
        self.have_net = True
        return self

    def close(self) -> None:
        if self.have_net:
            subprocess.run(["virsh", "net-destroy", self.network], capture_output=True)
        if self.have_pool:
            subprocess.run(["virsh", "pool-destroy", self.pool], capture_output=True)
        for proc in reversed(self.started):
            stop_process(proc)
        shutil.rmtree(self.shared, ignore_errors=True)


class HostNet:
    """The Bootfleet `Network` on this host, beside the libvirt bridge."""

    def __init__(self, work: Path, address: str) -> None:
        self.work, self.address = work, address
        self.procs: list[subprocess.Popen[bytes]] = []

    def popen(self, cmd: list[str] | tuple[str, ...], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.procs.append(proc)
        return proc

    def http(self, port: int = HTTP_PORT, host: str | None = None) -> NsHttp:
        return NsHttp(None, host or self.address, port)

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)


@pytest.fixture
def libvirt_lab(
    vagrant_ready: None, installer: Installer, tmp_path: Path, artifacts: Path
) -> Iterator[tuple[Libvirt, Bootfleet, Path]]:
    for tool, pkg in (("libvirtd", "libvirt-daemon-system"), ("virsh", "libvirt-clients")):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} not installed (Debian: {pkg})")
    plugins = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True)
    if "vagrant-libvirt" not in plugins.stdout:
        skip_or_fail("vagrant-libvirt not installed (Debian: vagrant-libvirt)")
    tmp_path.chmod(0o755)
    tag = uuid.uuid4().hex[:6]
    lv = Libvirt(tmp_path, tag)
    host: HostNet | None = None
    server: Bootfleet | None = None
    try:
        lv.start()
        host = HostNet(tmp_path, lv.host_ip)
        server = Bootfleet(host, tmp_path / "bootfleet", installer, address=lv.host_ip)
        conf = tmp_path / "dnsmasq.conf"
        conf.write_text(
            dnsmasq_conf(
                tmp_path,
                {},
                iface=lv.bridge,
                server_ip=lv.host_ip,
                ip6_prefix=f"2001:db8:{lv.subnet.rsplit('.', 1)[1]}::",
            )
        )
        host.popen(
            ["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"], tmp_path / "dnsmasq.out"
        )
        server.start()
        yield lv, server, tmp_path
    finally:
        try:
            vagrant_destroy(tmp_path, lv)
        finally:
            for serial in (lv.shared / "serial").glob("*.log"):
                shutil.copy(serial, artifacts / f"vagrant-{serial.name}")
            if server is not None:
                server.close()
            if host is not None:
                host.close()
            lv.close()
            for name in ("dnsmasq.log", "bootfleet/bootfleet.log"):
                if (tmp_path / name).exists():
                    shutil.copy(tmp_path / name, artifacts / f"vagrant-{Path(name).name}")


def client_env(work: Path, lv: Libvirt, mac_prefix: str) -> dict[str, str]:
    return {
        "BOOTFLEET_HOST_SERVER": "1",
        "BOOTFLEET_CLIENTS": "1",
        "BOOTFLEET_NETWORK": lv.network,
        "BOOTFLEET_SUBNET": lv.subnet,
        "BOOTFLEET_SERVER_IP": lv.host_ip,
        "BOOTFLEET_MAC_PREFIX": mac_prefix,
        "BOOTFLEET_DISK_MB": "64",
        "BOOTFLEET_SERIAL_DIR": str(lv.shared / "serial"),
        "BOOTFLEET_LIBVIRT_DRIVER": "qemu",
        "BOOTFLEET_LIBVIRT_POOL": lv.pool,
        "BOOTFLEET_LIBVIRT_PREFIX": f"{lv.pool}-",
    }


def vagrant_destroy(work: Path, lv: Libvirt) -> None:
    env_file = work / "client.env"
    if env_file.exists():
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        subprocess.run(
            ["timeout", "120", "vagrant", "destroy", "-f"],
            env=vagrant_env(work, **env),
            capture_output=True,
        )


def test_vagrant_libvirt_client_reinstalls_once(
    libvirt_lab: tuple[Libvirt, Bootfleet, Path],
) -> None:
    lv, server, work = libvirt_lab
    prefix = f"52:54:00:bf:{uuid.uuid4().bytes[0]:02x}"
    mac = f"{prefix}:01"
    env = client_env(work, lv, prefix)
    (work / "client.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    serial_dir = lv.shared / "serial"
    serial_dir.mkdir(mode=0o777)
    serial_dir.chmod(0o777)
    serial = serial_dir / "client1.log"

    server.register(mac, server.profile("e2e", "console=ttyS0"), hostname="vagrant-client1")
    server.reinstall(mac)
    watch = StateWatch(server, mac)
    assert watch.poll() == "pending"
    started = time.monotonic()
    vagrant(work, "up", "--no-parallel", "--provider", "libvirt", **env)
    watch.until({"installed", "failed"}, 240)
    assert watch.seen[-1] == "installed", watch.seen
    assert "booting" in watch.seen
    install_s = time.monotonic() - started
    first = serial.read_text(errors="replace") if serial.exists() else ""
    assert "bootfleet-installer: starting" in first, first[-3000:]

    # The installer powered the machine off; start it again: it must boot its disk.
    deadline = time.monotonic() + 60
    while "shut off" not in _sh("virsh", "domstate", _domain(work, env)):
        assert time.monotonic() < deadline, "the client did not power off after its install"
        time.sleep(1)
    # libvirt may truncate or append to the serial file: keep the first boot's log apart.
    serial.rename(serial.with_name("client1-boot1.log"))
    restarted = time.monotonic()
    vagrant(work, "up", "--no-parallel", "--provider", "libvirt", **env)
    marker = f"BOOTFLEET-MARKER-{mac}"
    deadline = time.monotonic() + 180
    while True:
        second = serial.read_text(errors="replace") if serial.exists() else ""
        if marker in second:
            break
        assert time.monotonic() < deadline, f"no {marker} on the serial console:\n{second[-3000:]}"
        time.sleep(1)
    local_s = time.monotonic() - restarted
    assert "bootfleet-installer: starting" not in second, "a second install started"
    assert server.state(mac) == "installed"
    print(f"vagrant client: up + install {install_s:.1f}s, up + disk boot {local_s:.1f}s")


def _domain(work: Path, env: dict[str, str]) -> str:
    ids = vagrant_env(work, **env)["VAGRANT_DOTFILE_PATH"]
    path = next(Path(ids).glob("machines/client1/libvirt/id"))
    return path.read_text().strip()

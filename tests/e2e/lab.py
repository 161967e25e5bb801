"""The isolated lab network: one network namespace, a bridge, taps for the VMs, dnsmasq as DHCP.

Everything lives inside a namespace the test creates: no veth toward the host, no forwarding,
no default route, addresses from 198.18.0.0/15 (RFC 2544 benchmarking) and 2001:db8::/32
(documentation) only. `Lab.close()` kills what it started (by PID) and deletes the namespace.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "br0"
SERVER_IP = "198.18.0.1"
# A second boot server on the same bridge, for tests that need their own `bootfleet serve`
# (other deadlines); MACs given the dnsmasq tag ALT_TAG boot from it.
ALT_SERVER_IP = "198.18.0.2"
ALT_TAG = "alt"
PREFIX = 24
SERVER_IP6 = "2001:db8::1"
HTTP_PORT = 8080
CLONE_NEWNET = 0x40000000


def _run(cmd: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """Stop one process we started: SIGTERM to its PID, SIGKILL after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class Netns:
    """A named network namespace with loopback up; commands run in it via `ip netns exec`."""

    name: str

    def create(self) -> None:
        _run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def ip(self, *args: str) -> str:
        return _run([*self.prefix(), "ip", *args]).stdout

    def popen(self, cmd: Sequence[str], log: Path, **kw: object) -> subprocess.Popen[bytes]:
        """Start `cmd` inside the namespace with stdout+stderr appended to `log`."""
        out = log.open("ab")
        try:
            return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
                [*self.prefix(), *cmd],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **kw,
            )
        finally:
            out.close()


def _enter_netns(name: str) -> None:
    """Thread initializer: move this thread (only) into the namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)


class NsHttp:
    """A tiny HTTP client whose sockets are opened inside the lab namespace.

    The test process stays in the host namespace; one worker thread enters the lab's namespace
    with setns(2) and makes every request, so the API is reached without any link to the host.
    """

    def __init__(self, netns: str | None, host: str, port: int) -> None:
        self.host, self.port = host, port
        if netns is None:  # the host's own namespace (the Vagrant lab's libvirt bridge)
            self._pool = ThreadPoolExecutor(1)
        else:
            self._pool = ThreadPoolExecutor(1, initializer=_enter_netns, initargs=(netns,))

    def request(
        self, method: str, path: str, body: object = None, token: str | None = None
    ) -> tuple[int, bytes]:
        return self._pool.submit(self._request, method, path, body, token).result(60)

    def json(self, method: str, path: str, body: object = None, token: str | None = None) -> object:
        status, data = self.request(method, path, body, token)
        assert 200 <= status < 300, f"{method} {path} -> {status}: {data[:500]!r}"
        return json.loads(data) if data else None

    def _request(
        self, method: str, path: str, body: object, token: str | None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            headers = {"Accept": "application/json"}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            if token:
                headers["Authorization"] = f"Bearer {token}"
            conn.request(method, path, payload, headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def wait_up(self, path: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                self.request("GET", path)
                return
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                time.sleep(0.3)
        raise TimeoutError(f"http://{self.host}:{self.port}{path} not up: {last}")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# Secure Boot: the firmware takes only the Microsoft-signed shim; shim then asks the same
# server for grubx64.efi (Debian-signed GRUB) next to itself.
SHIM = "shimx64.efi"
# UEFI HTTP Boot: the boot program, over Bootfleet's HTTP (iPXE, which then asks DHCP again).
HTTP_BOOT_PROGRAM = "snponly.efi"


def http_boot_url(server_ip: str = SERVER_IP) -> str:
    """The boot-file URL for UEFI HTTP Boot (arch 16): numeric, since OVMF has no DNS here."""
    return f"http://{server_ip}:{HTTP_PORT}/images/{HTTP_BOOT_PROGRAM}"


def dnsmasq_conf(
    workdir: Path,
    per_mac: dict[str, str],
    tftp_root: Path | None = None,
    iface: str = BRIDGE,
    server_ip: str = SERVER_IP,
    ip6_prefix: str = "2001:db8::",
    extra: Sequence[str] = (),
) -> str:
    """Render the dnsmasq configuration (DHCP only unless `tftp_root` is given)."""
    subnet = server_ip.rsplit(".", 1)[0]
    lines = [
        "# --- Bootfleet: the site's DHCP server (dnsmasq, DHCP only) ---",
        "port=0",  # no DNS
        f"interface={iface}",
        "bind-interfaces",
        f"dhcp-range={subnet}.100,{subnet}.200,255.255.255.0,1h",
        "dhcp-authoritative",
        "dhcp-option=option:router",  # no router: the lab leads nowhere
        # Debian's iPXE ROM waits ~16 s for an IPv6 router advertisement; answer it at once.
        "enable-ra",
        f"dhcp-range={ip6_prefix},ra-only",
        # Which firmware is asking: option 93 (client arch) and option 77 (user class).
        "dhcp-match=set:bios,option:client-arch,0",
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
        "dhcp-userclass=set:ipxe,iPXE",
        # iPXE (a NIC ROM or one we chain-loaded): straight to Bootfleet's HTTP script;
        # this guard stops iPXE from loading iPXE forever.
        f"dhcp-boot=tag:ipxe,tag:!pxelinux,tag:!tftpipxe,tag:!{ALT_TAG},"
        f"http://{server_ip}:{HTTP_PORT}/boot.ipxe",
        # PXE ROMs: a boot loader over TFTP from next-server = Bootfleet.
        f"dhcp-boot=tag:bios,tag:!ipxe,tag:!{ALT_TAG},undionly.kpxe,,{server_ip}",
        f"dhcp-boot=tag:efi64,tag:!ipxe,tag:!grub,tag:!{ALT_TAG},snponly.efi,,{server_ip}",
        "# --- the second boot server: the same default chain ---",
        # A router and a name server as on a real LAN (the server's address: no forwarding,
        # nothing on port 53), so debian-installer's netcfg asks nothing.
        f"dhcp-option=tag:{ALT_TAG},option:router,{ALT_SERVER_IP}",
        f"dhcp-option=tag:{ALT_TAG},option:dns-server,{ALT_SERVER_IP}",
        f"dhcp-boot=tag:{ALT_TAG},tag:ipxe,http://{ALT_SERVER_IP}:{HTTP_PORT}/boot.ipxe",
        f"dhcp-boot=tag:{ALT_TAG},tag:bios,tag:!ipxe,undionly.kpxe,,{ALT_SERVER_IP}",
        f"dhcp-boot=tag:{ALT_TAG},tag:efi64,tag:!ipxe,snponly.efi,,{ALT_SERVER_IP}",
        "# --- lab only: per-MAC choice of boot chain ---",
        f"dhcp-boot=tag:pxelinux,pxelinux.0,,{server_ip}",
        f"dhcp-boot=tag:tftpipxe,tag:ipxe,boot.ipxe,,{server_ip}",
        f"dhcp-boot=tag:efi64,tag:grub,grubnetx64.efi,,{server_ip}",
        # OVMF also offers UEFI HTTP boot (arch 16). Left unanswered it costs a minute of DHCP
        # retries before the disk is tried after a local-boot `exit`; a URL that fails at once
        # moves it along. (Sites without HTTP boot: the same, or switch it off in the firmware.)
        # Machines tagged `httpboot` get a real boot program instead (below).
        "dhcp-match=set:efihttp,option:client-arch,16",
        "dhcp-option-force=tag:efihttp,60,HTTPClient",
        f"dhcp-boot=tag:efihttp,http://{server_ip}:{HTTP_PORT}/uefi-http-boot-not-offered",
        "# --- lab only: Secure Boot (shim first) and UEFI HTTP Boot, per MAC ---",
        # dnsmasq takes the last dhcp-boot line whose tags all match, so these win.
        f"dhcp-boot=tag:efi64,tag:shim,tag:!ipxe,{SHIM},,{server_ip}",
        f"dhcp-boot=tag:efihttp,tag:httpboot,{http_boot_url(server_ip)}",
        f"dhcp-leasefile={workdir / 'dnsmasq.leases'}",
        "log-dhcp",
        f"log-facility={workdir / 'dnsmasq.log'}",
        "user=root",
        "group=root",
    ]
    for mac, tag in per_mac.items():
        lines.append(f"dhcp-host={mac},set:{tag}")
    # A test's own rules come last: dnsmasq takes the last dhcp-boot line whose tags match.
    lines += extra
    if tftp_root is not None:
        lines += ["enable-tftp", f"tftp-root={tftp_root}"]
    return "\n".join(lines) + "\n"


class Lab:
    """Namespace + bridge + dnsmasq; VMs plug taps in, the server binds SERVER_IP."""

    def __init__(self, workdir: Path, tag: str | None = None) -> None:
        self.workdir = workdir
        self.netns = Netns(f"bf-e2e-{tag or os.getpid()}")
        self.dnsmasq: subprocess.Popen[bytes] | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.per_mac: dict[str, str] = {}
        self._taps = 0
        self._tftp_root: Path | None = None
        self.extra_dhcp: list[str] = []  # a test's own dnsmasq lines (after the site policy)

    def start(self) -> Lab:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.netns.delete()  # a namespace left by a killed earlier run
        self.netns.create()
        ns = self.netns
        ns.ip("link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        ns.ip("addr", "add", f"{SERVER_IP}/{PREFIX}", "dev", BRIDGE)
        ns.ip("addr", "add", f"{ALT_SERVER_IP}/{PREFIX}", "dev", BRIDGE)
        ns.ip("-6", "addr", "add", f"{SERVER_IP6}/64", "dev", BRIDGE, "nodad")
        ns.ip("link", "set", BRIDGE, "up")
        return self

    def dhcp(self, per_mac: dict[str, str] | None = None, tftp_root: Path | None = None) -> None:
        """(Re)start dnsmasq with the site policy and the lab's per-MAC boot-chain choices."""
        if per_mac is not None:
            self.per_mac = dict(per_mac)
        if tftp_root is not None:
            self._tftp_root = tftp_root
        stop_process(self.dnsmasq)
        conf = self.workdir / "dnsmasq.conf"
        conf.write_text(
            dnsmasq_conf(self.workdir, self.per_mac, self._tftp_root, extra=self.extra_dhcp)
        )
        dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.dnsmasq = self.netns.popen(
            [
                dnsmasq,
                "--keep-in-foreground",
                f"--conf-file={conf}",
                f"--pid-file={self.workdir / 'dnsmasq.pid'}",
            ],
            self.workdir / "dnsmasq.out",
        )
        time.sleep(0.5)
        if self.dnsmasq.poll() is not None:
            raise RuntimeError("dnsmasq exited: " + (self.workdir / "dnsmasq.out").read_text())

    def choose_chain(self, mac: str, tag: str | None) -> None:
        """Send this MAC down a non-default boot chain (a dnsmasq tag), or the default one."""
        if self.per_mac.get(mac) == tag:
            return
        if tag is None:
            self.per_mac.pop(mac, None)
        else:
            self.per_mac[mac] = tag
        self.dhcp()

    def add_address(self, address: str) -> None:
        """One more address on the lab bridge (a relay's, another server's); idempotent."""
        if f"inet {address}/" not in self.netns.ip("-4", "addr", "show", "dev", BRIDGE):
            self.netns.ip("addr", "add", f"{address}/{PREFIX}", "dev", BRIDGE)

    def add_tap(self) -> str:
        self._taps += 1
        tap = f"tap{self._taps}"
        self.netns.ip("tuntap", "add", "dev", tap, "mode", "tap")
        self.netns.ip("link", "set", tap, "master", BRIDGE)
        self.netns.ip("link", "set", tap, "up")
        return tap

    def del_tap(self, tap: str) -> None:
        subprocess.run([*self.netns.prefix(), "ip", "link", "del", tap], capture_output=True)

    def popen(self, cmd: Sequence[str], log: Path, **kw: object) -> subprocess.Popen[bytes]:
        proc = self.netns.popen(cmd, log, **kw)
        self.procs.append(proc)
        return proc

    def http(self, port: int = HTTP_PORT, host: str | None = None) -> NsHttp:
        return NsHttp(self.netns.name, host or SERVER_IP, port)

    def dnsmasq_log(self) -> str:
        p = self.workdir / "dnsmasq.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        stop_process(self.dnsmasq)
        self.netns.delete()


# --- a site router beside the lab: its own DHCP server, addresses only ------------------------

ROUTER_IP = "198.18.0.254"
ROUTER_IP6 = "2001:db8::fe"
ROUTER_IFACE = "rtr0"


def router_dnsmasq_conf(workdir: Path, iface: str = ROUTER_IFACE) -> str:
    """A consumer router's DHCP: addresses only, no boot server, no boot file, no option 60."""
    subnet = ROUTER_IP.rsplit(".", 1)[0]
    return (
        "\n".join(
            [
                "# --- the site's router: DHCP addresses only, nothing about booting ---",
                "port=0",
                f"interface={iface}",
                "bind-interfaces",
                f"dhcp-range={subnet}.100,{subnet}.200,255.255.255.0,1h",
                "dhcp-authoritative",
                "dhcp-option=option:router",  # the lab leads nowhere
                "enable-ra",  # Debian's iPXE ROM waits ~16 s for an IPv6 router advertisement
                "dhcp-range=2001:db8::,ra-only",
                f"dhcp-leasefile={workdir / 'router.leases'}",
                "log-dhcp",
                f"log-facility={workdir / 'router-dnsmasq.log'}",
                "user=root",
                "group=root",
            ]
        )
        + "\n"
    )


class SiteRouter:
    """The site's DHCP server in a namespace of its own, joined to the lab bridge by a veth
    pair, so a proxyDHCP on the bridge (port 67 in the lab namespace) sits beside it as it
    would beside a real router."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.netns = Netns(f"{lab.netns.name}-rtr")
        self.workdir = lab.workdir
        self.dnsmasq: subprocess.Popen[bytes] | None = None

    def start(self) -> SiteRouter:
        self.netns.delete()
        self.netns.create()
        lab_ns = self.lab.netns
        lab_ns.ip("link", "add", "vrtr", "type", "veth", "peer", "name", ROUTER_IFACE)
        lab_ns.ip("link", "set", ROUTER_IFACE, "netns", self.netns.name)
        lab_ns.ip("link", "set", "vrtr", "master", BRIDGE)
        lab_ns.ip("link", "set", "vrtr", "up")
        self.netns.ip("addr", "add", f"{ROUTER_IP}/{PREFIX}", "dev", ROUTER_IFACE)
        self.netns.ip("-6", "addr", "add", f"{ROUTER_IP6}/64", "dev", ROUTER_IFACE, "nodad")
        self.netns.ip("link", "set", ROUTER_IFACE, "up")
        conf = self.workdir / "router-dnsmasq.conf"
        conf.write_text(router_dnsmasq_conf(self.workdir))
        self.dnsmasq = self.netns.popen(
            [
                shutil.which("dnsmasq") or "/usr/sbin/dnsmasq",
                "--keep-in-foreground",
                f"--conf-file={conf}",
                f"--pid-file={self.workdir / 'router-dnsmasq.pid'}",
            ],
            self.workdir / "router-dnsmasq.out",
        )
        time.sleep(0.5)
        if self.dnsmasq.poll() is not None:
            out = (self.workdir / "router-dnsmasq.out").read_text()
            raise RuntimeError("router dnsmasq exited: " + out)
        return self

    def log(self) -> str:
        p = self.workdir / "router-dnsmasq.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def close(self) -> None:
        stop_process(self.dnsmasq)
        self.netns.delete()  # takes rtr0, and with it its peer on the bridge


class TftpAsked:
    """A UDP port 69 in a namespace that records each TFTP read request (peer, file name) and
    refuses it (ERROR 1, file not found): who asked which server for what."""

    def __init__(self, netns: str) -> None:
        self.requests: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(netns,), daemon=True)

    def start(self) -> TftpAsked:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("TFTP recorder did not start")
        return self

    def _run(self, netns: str) -> None:
        _enter_netns(netns)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("0.0.0.0", 69))
            sock.settimeout(0.5)
            self._ready.set()
            while not self._stop.is_set():
                try:
                    data, peer = sock.recvfrom(2048)
                except TimeoutError:
                    continue
                if data[:2] == b"\x00\x01":  # RRQ
                    name = data[2:].split(b"\x00", 1)[0].decode("ascii", "replace")
                    self.requests.append((peer[0], name))
                    sock.sendto(b"\x00\x05\x00\x01not here\x00", peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

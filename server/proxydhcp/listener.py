"""The proxyDHCP sockets: DHCPDISCOVER on UDP 67, the PXE DHCPREQUEST on UDP 4011.

Port 67 is bound to the wildcard address (a client without an address broadcasts) and tied
to the advertised interface with SO_BINDTODEVICE; offers go back by broadcast to port 68, as
the client has no address yet (or to a relay's giaddr, port 67). The request to port 4011
comes from a configured client (UEFI PXE, iPXE): the ACK goes to its address and source port.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import threading
from dataclasses import dataclass

from server.errors import InvalidInput, StartupError, Unavailable
from server.macaddr import normalize_mac
from server.proxydhcp.packet import (
    BOOTREQUEST,
    DHCPACK,
    DHCPDISCOVER,
    DHCPOFFER,
    DHCPREQUEST,
    MAX_SIZE,
    MalformedPacket,
    Packet,
    Reply,
    build_reply,
    parse,
)
from server.proxydhcp.policy import Policy
from server.proxydhcp.stats import ProxyStats

log = logging.getLogger(__name__)

DHCP_SERVER_PORT, DHCP_CLIENT_PORT = 67, 68  # RFC 2131
PXE_PORT = 4011  # PXE 2.1: boot server discovery / proxy requests
RECV_BUFFER = 65536  # a whole datagram, so an oversize one is seen as such and dropped


@dataclass(frozen=True)
class Endpoints:
    """Where to listen and where offers go (tests point both at loopback)."""

    device: str | None  # SO_BINDTODEVICE; None: bind `host` only
    host: str = "0.0.0.0"
    dhcp_port: int = DHCP_SERVER_PORT
    pxe_port: int = PXE_PORT
    offer_to: tuple[str, int] = ("255.255.255.255", DHCP_CLIENT_PORT)


class ProxyDhcp:
    """Two sockets served by one thread; `start()` raises StartupError with one clear line."""

    def __init__(
        self,
        policy: Policy,
        server_ip: str,
        where: Endpoints,
        stats: ProxyStats | None = None,
        discovery_control: bool = True,
    ) -> None:
        self.policy = policy
        self.discovery_control = discovery_control
        self.server_ip = server_ip
        self.where = where
        self.stats = stats or ProxyStats()
        self.socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ports(self) -> tuple[int, int]:
        return self.socks[0].getsockname()[1], self.socks[1].getsockname()[1]

    def start(self) -> ProxyDhcp:
        self.socks = []
        try:
            self._open(self.where.dhcp_port)  # socks[0]
            self._open(self.where.pxe_port)  # socks[1]
        except StartupError:
            self.close()
            raise
        self._thread = threading.Thread(target=self._serve, name="bootfleet-proxydhcp", daemon=True)
        self._thread.start()
        return self

    def _open(self, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if self.where.device:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.where.device.encode()
                )
            sock.bind((self.where.host, port))
        except OSError as exc:
            sock.close()
            raise StartupError(self._bind_error(port, exc)) from None
        self.socks.append(sock)  # closed by close() if the second bind fails

    def _bind_error(self, port: int, exc: OSError) -> str:
        where = f"UDP {self.where.host}:{port}" + (
            f" on {self.where.device}" if self.where.device else ""
        )
        if exc.errno == errno.EADDRINUSE:
            hint = " (is dnsmasq or another DHCP server running here?)" if port == 67 else ""
            return f"proxyDHCP: port {port} in use{hint}: cannot listen on {where}"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return (
                f"proxyDHCP: no permission to listen on {where}: needs root or "
                "CAP_NET_BIND_SERVICE (and CAP_NET_RAW for binding to the interface)"
            )
        if exc.errno == errno.ENODEV:
            return f"proxyDHCP: no network interface {self.where.device!r}"
        return f"proxyDHCP: cannot listen on {where}: {exc.strerror}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.close()

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks = []

    def _serve(self) -> None:
        dhcp, pxe = self.socks
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([dhcp, pxe], [], [], 0.5)
            except (OSError, ValueError):  # closed under us: stopping
                return
            for sock in ready:
                try:
                    data, peer = sock.recvfrom(RECV_BUFFER)
                except OSError:
                    continue
                try:
                    self.handle(data, peer, on_pxe_port=sock is pxe)
                except Exception:  # a bug must not end the service; log it and go on
                    log.exception("proxyDHCP: datagram from %s not handled", peer[0])
                    self.stats.dropped("internal error")

    def handle(self, data: bytes, peer: tuple[str, int], on_pxe_port: bool) -> None:
        """Read one datagram and answer it if the policy says so."""
        if len(data) > MAX_SIZE:
            self.stats.dropped("oversize")
            return
        try:
            packet = parse(data)
        except MalformedPacket as exc:
            log.debug("proxyDHCP: malformed datagram from %s: %s", peer[0], exc)
            self.stats.dropped(exc.reason)
            return
        if packet.op != BOOTREQUEST:  # another server's reply, seen on our port
            self.stats.dropped("not a request")
            return
        try:
            normalize_mac(packet.mac)
        except InvalidInput:  # all zeros, broadcast, multicast: no NIC boots from these
            self.stats.dropped("bad MAC")
            return
        want = DHCPREQUEST if on_pxe_port else DHCPDISCOVER
        if packet.message_type != want:
            # On port 67 the client's DHCPREQUEST is for the site's server, not for us.
            self.stats.dropped("other message type")
            return
        try:
            decision = self.policy.decide(packet)
        except Unavailable:
            log.warning("proxyDHCP: registry unavailable; %s not answered", packet.mac)
            self.stats.not_answered("registry unavailable")
            return
        if decision.file is None and decision.reason == "not a PXE client":
            self.stats.dropped("not a PXE client")  # a laptop or phone: not ours, no line
            return
        if decision.file is None:
            log.info(
                "proxyDHCP: no answer to %s (arch %s): %s; client sent %s",
                packet.mac,
                decision.arch,
                decision.reason,
                _seen(packet),
            )
            self.stats.not_answered(decision.reason.split(" (")[0])
            return
        kind = "ack" if on_pxe_port else "offer"
        reply = build_reply(
            packet,
            Reply(
                message_type=DHCPACK if on_pxe_port else DHCPOFFER,
                server_ip=self.server_ip,
                boot_file=decision.file,
                vendor_class="HTTPClient" if decision.http else "PXEClient",
                discovery_control=self.discovery_control and not decision.http,
            ),
        )
        if on_pxe_port:
            dest = peer
        elif packet.giaddr != "0.0.0.0":
            dest = (packet.giaddr, DHCP_SERVER_PORT)
        else:
            dest = self.where.offer_to
        self.stats.answered(kind, decision.arch)  # counted first: the client may be quicker
        try:
            (self.socks[1] if on_pxe_port else self.socks[0]).sendto(reply, dest)
        except OSError as exc:
            log.warning("proxyDHCP: %s to %s not sent: %s", kind, packet.mac, exc.strerror)
            self.stats.answered(kind, decision.arch, -1)
            self.stats.not_answered("send failed")
            return
        log.info(
            "proxyDHCP %s to %s: arch %s, file %s; client sent %s",
            kind,
            packet.mac,
            decision.arch,
            decision.file,
            _seen(packet),
        )


def _seen(packet: Packet) -> str:
    """What the firmware sent: its option codes in order, its vendor and user class."""
    parts = [f"options {','.join(map(str, packet.order))}"]
    if packet.vendor_class:
        parts.append(f"class {packet.vendor_class!r}")
    if packet.user_class:
        parts.append(f"user class {packet.user_class!r}")
    return "; ".join(parts)

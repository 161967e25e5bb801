"""Wake-on-LAN: build the magic packet and send it out of the interface that reaches the client.

A sleeping NIC matches the payload anywhere in a frame, so the packet is a UDP datagram to the
subnet's broadcast address (port 9, "discard"): six 0xFF bytes, then the MAC sixteen times.
Routers drop directed broadcasts by default, so the frame has to leave on the client's own
segment: the interface whose IPv4 network holds the client's last seen address, or one the
admin names (a group's `wake_address` for a subnet behind a router that forwards them).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import netifaces

from server.errors import InvalidInput
from server.macaddr import normalize_mac

log = logging.getLogger(__name__)

WOL_PORT = 9  # UDP discard; 7 (echo) is the other customary port
SYNC = b"\xff" * 6
REPEAT = 16


@dataclass(frozen=True)
class Subnet:
    """One IPv4 network on one of this server's interfaces."""

    interface: str
    network: ipaddress.IPv4Network

    @property
    def broadcast(self) -> str:
        return str(self.network.broadcast_address)


@dataclass(frozen=True)
class Target:
    """Where one magic packet goes: a broadcast (or unicast) address, and the interface that
    must carry it (None: the routing table decides, for an address the admin set)."""

    address: str
    interface: str | None


def magic_packet(mac: str) -> bytes:
    """The 102-byte payload that wakes the NIC with `mac`."""
    raw = bytes.fromhex(normalize_mac(mac).replace(":", ""))
    return SYNC + raw * REPEAT


def local_subnets() -> list[Subnet]:
    """The IPv4 networks on this machine's interfaces, loopback left out."""
    found = []
    for name in netifaces.interfaces():
        for entry in netifaces.ifaddresses(name).get(netifaces.AF_INET, []):
            addr, mask = entry.get("addr"), entry.get("netmask")
            if not addr or not mask:
                continue
            network = ipaddress.IPv4Network(f"{addr}/{mask}", strict=False)
            if not network.is_loopback:
                found.append(Subnet(name, network))
    return found


def interface_with(address: str, subnets: Iterable[Subnet]) -> str | None:
    """The interface whose subnet holds `address` (the one the server advertises)."""
    try:
        wanted = ipaddress.ip_address(address)
    except ValueError:
        return None
    return next((s.interface for s in subnets if wanted in s.network), None)


def target_for(
    last_ip: str | None,
    subnets: Iterable[Subnet],
    wake_address: str | None = None,
    fallback_interface: str | None = None,
) -> Target | None:
    """Choose where to send: an admin-set address wins; else the broadcast of the local subnet
    that holds the client's last address; else the subnet of the advertised interface. None
    when nothing says where the client is (never a guess on every interface)."""
    subnets = list(subnets)
    if wake_address:
        try:
            ipaddress.IPv4Address(wake_address)
        except ValueError:
            raise InvalidInput("wake_address", f"not an IPv4 address: {wake_address!r}") from None
        inside = [s for s in subnets if ipaddress.IPv4Address(wake_address) in s.network]
        return Target(wake_address, inside[0].interface if inside else None)
    if last_ip:
        try:
            seen = ipaddress.ip_address(last_ip)
        except ValueError:
            seen = None
        for subnet in subnets:
            if seen is not None and seen.version == 4 and seen in subnet.network:
                return Target(subnet.broadcast, subnet.interface)
    for subnet in subnets:
        if subnet.interface == fallback_interface:
            return Target(subnet.broadcast, subnet.interface)
    return None


Sender = Callable[[bytes, Target], None]


def send_udp(payload: bytes, target: Target) -> None:
    """Send `payload` to `target` over UDP, pinned to its interface when it names one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if target.interface:
            # Without the pin a broadcast leaves by the default route, not the client's segment.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, target.interface.encode())
        sock.sendto(payload, (target.address, WOL_PORT))


def wake(
    mac: str,
    last_ip: str | None,
    *,
    wake_address: str | None = None,
    fallback_interface: str | None = None,
    subnets: Callable[[], list[Subnet]] = local_subnets,
    send: Sender = send_udp,
) -> Target | None:
    """Wake `mac`; return where the packet went, or None if no target could be chosen."""
    target = target_for(last_ip, subnets(), wake_address, fallback_interface)
    if target is not None:
        send(magic_packet(mac), target)
    return target


@dataclass
class Waker:
    """The server's way to wake clients: its advertised interface as the fallback segment.
    A failure to send is logged, never raised: a reinstall stands whether or not the machine
    woke (the admin can still press its power button)."""

    fallback_interface: str | None = None
    subnets: Callable[[], list[Subnet]] = local_subnets
    send: Sender = send_udp

    def __call__(self, mac: str, last_ip: str | None, wake_address: str | None = None) -> str:
        """Wake `mac`; a one-line account of what was done, for the event log and the UI."""
        try:
            target = wake(
                mac,
                last_ip,
                wake_address=wake_address,
                fallback_interface=self.fallback_interface,
                subnets=self.subnets,
                send=self.send,
            )
        except (OSError, InvalidInput) as exc:
            log.warning("wake-on-LAN for %s failed: %s", mac, exc)
            return f"wake-on-LAN not sent: {exc}"
        if target is None:
            log.info("wake-on-LAN for %s: no known segment (never seen, no wake address)", mac)
            return "wake-on-LAN not sent: no known segment (set the group's wake address)"
        via = f" on {target.interface}" if target.interface else ""
        log.info("wake-on-LAN for %s sent to %s%s", mac, target.address, via)
        return f"wake-on-LAN sent to {target.address}{via}"

"""Wake-on-LAN: the magic packet, the choice of target, and real frames on namespace bridges."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from server import wol
from server.errors import InvalidInput
from tests.e2e.lab import Netns, _enter_netns

MAC = "52:54:00:12:34:56"


def test_magic_packet_is_sync_then_the_mac_sixteen_times() -> None:
    packet = wol.magic_packet("52-54-00-12-34-56")
    assert len(packet) == 102
    assert packet[:6] == b"\xff" * 6
    assert packet[6:] == bytes.fromhex("525400123456") * 16


def test_magic_packet_refuses_a_bad_mac() -> None:
    with pytest.raises(InvalidInput):
        wol.magic_packet("ff:ff:ff:ff:ff:ff")


SUBNETS = [
    wol.Subnet("eth0", ipaddress.IPv4Network("198.18.1.0/24")),
    wol.Subnet("eth1", ipaddress.IPv4Network("198.18.2.0/23")),
]


@pytest.mark.parametrize(
    ("last_ip", "wake_address", "fallback", "expected"),
    [
        ("198.18.2.77", None, None, wol.Target("198.18.3.255", "eth1")),
        ("198.18.1.9", None, "eth1", wol.Target("198.18.1.255", "eth0")),
        ("198.19.0.5", None, "eth1", wol.Target("198.18.3.255", "eth1")),  # not local
        (None, None, "eth0", wol.Target("198.18.1.255", "eth0")),
        ("2001:db8::5", None, None, None),  # IPv6 only: no IPv4 broadcast to use
        ("not-an-ip", None, None, None),
        (None, None, None, None),  # nothing says where: no guess
        ("198.18.2.77", "198.18.1.255", None, wol.Target("198.18.1.255", "eth0")),
        (None, "198.19.9.255", None, wol.Target("198.19.9.255", None)),  # routed
    ],
)
def test_target_for(
    last_ip: str | None, wake_address: str | None, fallback: str | None, expected: object
) -> None:
    assert wol.target_for(last_ip, SUBNETS, wake_address, fallback) == expected


def test_a_bad_wake_address_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="wake_address"):
        wol.target_for(None, SUBNETS, "room-1")


def test_wake_sends_nothing_without_a_target() -> None:
    sent: list[tuple[bytes, wol.Target]] = []
    got = wol.wake(MAC, None, subnets=lambda: SUBNETS, send=lambda p, t: sent.append((p, t)))
    assert got is None and sent == []


# --- real frames: two isolated bridges in a namespace, a wire on each, a packet socket on the
# far end of each wire. Nothing leaves the namespace.

ETH_P_ALL = 0x0003


class Segments:
    def __init__(self, ns: Netns) -> None:
        self.ns = ns
        self.pool = ThreadPoolExecutor(1, initializer=_enter_netns, initargs=(ns.name,))

    def run(self, fn: object, *args: object, **kw: object) -> object:
        return self.pool.submit(fn, *args, **kw).result(30)  # type: ignore[arg-type]


@pytest.fixture
def segments() -> Iterator[Segments]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    ns = Netns(f"bfwol{os.getpid() % 100000}")
    ns.delete()
    ns.create()
    try:
        for side, net in (("a", "198.18.1"), ("b", "198.18.2")):
            ns.ip("link", "add", f"br{side}", "type", "bridge")
            ns.ip("link", "add", f"{side}in", "type", "veth", "peer", "name", f"{side}wire")
            ns.ip("link", "set", f"{side}in", "master", f"br{side}")
            ns.ip("addr", "add", f"{net}.1/24", "dev", f"br{side}")
            for dev in (f"br{side}", f"{side}in", f"{side}wire"):
                ns.ip("link", "set", dev, "up")
        segs = Segments(ns)
        yield segs
        segs.pool.shutdown()
    finally:
        ns.delete()


def _capture(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, 0))
    sock.setblocking(False)
    return sock


def _wol_frames(sock: socket.socket) -> list[bytes]:
    """IPv4/UDP frames to port 9 read so far (other traffic, e.g. IPv6 ND, is skipped)."""
    frames = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            frame = sock.recv(2048)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        if frame[12:14] != b"\x08\x00" or frame[23] != socket.IPPROTO_UDP:
            continue
        ihl = (frame[14] & 0x0F) * 4
        _sport, dport = struct.unpack("!HH", frame[14 + ihl : 18 + ihl])
        if dport == wol.WOL_PORT:
            frames.append(frame)
    return frames


def _wake_and_capture(**kw: object) -> tuple[object, list[bytes], list[bytes]]:
    """Runs inside the namespace: open both captures, wake, read both."""
    cap_a, cap_b = _capture("awire"), _capture("bwire")
    try:
        target = wol.wake(MAC, **kw)  # type: ignore[arg-type]
        return target, _wol_frames(cap_a), _wol_frames(cap_b)
    finally:
        cap_a.close()
        cap_b.close()


def _assert_magic(frame: bytes, dest_ip: str) -> None:
    assert frame[0:6] == b"\xff" * 6  # Ethernet broadcast
    ihl = (frame[14] & 0x0F) * 4
    assert socket.inet_ntoa(frame[30:34]) == dest_ip
    assert frame[14 + ihl + 8 :] == wol.magic_packet(MAC)


def test_the_frame_leaves_on_the_clients_segment_only(segments: Segments) -> None:
    target, on_a, on_b = segments.run(_wake_and_capture, last_ip="198.18.2.40")  # type: ignore[misc]
    assert target == wol.Target("198.18.2.255", "brb")
    assert on_a == []
    assert len(on_b) == 1
    _assert_magic(on_b[0], "198.18.2.255")


def test_the_advertised_interface_is_the_fallback(segments: Segments) -> None:
    target, on_a, on_b = segments.run(  # type: ignore[misc]
        _wake_and_capture, last_ip=None, fallback_interface="bra"
    )
    assert target == wol.Target("198.18.1.255", "bra")
    assert len(on_a) == 1 and on_b == []
    _assert_magic(on_a[0], "198.18.1.255")


def test_a_set_wake_address_is_used_as_given(segments: Segments) -> None:
    target, on_a, on_b = segments.run(  # type: ignore[misc]
        _wake_and_capture, last_ip="198.18.2.40", wake_address="198.18.1.255"
    )
    assert target == wol.Target("198.18.1.255", "bra")
    assert len(on_a) == 1 and on_b == []

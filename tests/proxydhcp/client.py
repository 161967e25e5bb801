"""DHCP requests as firmware sends them, built byte by byte (independently of server code)."""

from __future__ import annotations

import struct

COOKIE = bytes([99, 130, 83, 99])
MAC = "52:54:00:12:34:56"


def option(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def header(
    mac: str = MAC,
    op: int = 1,
    xid: int = 0x1234ABCD,
    htype: int = 1,
    hlen: int = 6,
    sname: bytes = b"",
    file: bytes = b"",
    ciaddr: bytes = bytes(4),
) -> bytes:
    chaddr = bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0")
    return (
        struct.pack("!BBBBIHH", op, htype, hlen, 0, xid, 4, 0x8000)
        + ciaddr
        + bytes(12)  # yiaddr, siaddr, giaddr
        + chaddr
        + sname.ljust(64, b"\0")
        + file.ljust(128, b"\0")
        + COOKIE
    )


def pxe_options(
    msg_type: int = 1, arch: int = 7, user_class: bytes | None = None, vendor: bytes | None = None
) -> bytes:
    vendor = vendor if vendor is not None else b"PXEClient:Arch:%05d:UNDI:003016" % arch
    out = (
        option(53, bytes([msg_type]))
        + option(57, b"\x05\xc0")
        + option(93, arch.to_bytes(2, "big"))
    )
    out += option(94, b"\x01\x03\x10") + option(97, b"\x00" + bytes(range(16))) + option(60, vendor)
    if user_class is not None:
        out += option(77, user_class)
    return out + option(55, bytes([1, 3, 43, 60, 66, 67]))


def discover(
    mac: str = MAC,
    arch: int = 7,
    user_class: bytes | None = None,
    vendor: bytes | None = None,
    msg_type: int = 1,
) -> bytes:
    return header(mac) + pxe_options(msg_type, arch, user_class, vendor) + b"\xff"


def options_of(reply: bytes) -> dict[int, bytes]:
    """The options of a reply (no overload; RFC 3396 parts joined)."""
    assert reply[236:240] == COOKIE
    out: dict[int, bytes] = {}
    i = 240
    while reply[i] != 255:
        if reply[i] == 0:
            i += 1
            continue
        code, n = reply[i], reply[i + 1]
        out[code] = out.get(code, b"") + reply[i + 2 : i + 2 + n]
        i += 2 + n
    return out

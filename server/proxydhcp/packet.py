"""BOOTP/DHCP messages (RFC 951, RFC 2131, RFC 2132), strictly parsed, and proxy replies built.

Hand-written: the format is a fixed 236-byte header, a magic cookie and type-length-value
options. The Python DHCP libraries are either unmaintained or (scapy) a large, lenient packet
toolkit that accepts what a proxy must refuse; the checks a proxy needs fit in this file.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

BOOTREQUEST, BOOTREPLY = 1, 2  # RFC 951 op
HTYPE_ETHERNET = 1  # RFC 1700 hardware type
MAGIC_COOKIE = b"\x63\x82\x53\x63"  # RFC 2131 section 3
HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # op .. file: 236 bytes
MIN_SIZE = HEADER.size + len(MAGIC_COOKIE)  # 240
# Firmware sends 300-600 bytes; RFC 2131 lets a client announce up to 64 KiB (option 57),
# but nothing a PXE client asks needs more than one Ethernet frame. Longer: refused unread.
MAX_SIZE = 1500
BROADCAST_FLAG = 0x8000  # RFC 2131 flags

# Option codes (RFC 2132 unless noted).
OPT_PAD, OPT_END = 0, 255
OPT_VENDOR = 43  # vendor-specific information; PXE sub-options (PXE 2.1 section 2.4)
OPT_OVERLOAD = 52  # 1: file holds options, 2: sname does, 3: both
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_CLASS_ID = 60  # vendor class: "PXEClient:Arch:xxxxx:UNDI:yyyzzz" or "HTTPClient..."
OPT_TFTP_SERVER = 66
OPT_BOOTFILE = 67
OPT_USER_CLASS = 77  # RFC 3004; iPXE sends "iPXE"
OPT_CLIENT_ARCH = 93  # RFC 4578 client system architecture
OPT_CLIENT_NDI = 94  # RFC 4578 network interface identifier
OPT_CLIENT_UUID = 97  # RFC 4578 client machine identifier; PXE servers echo it

DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, DHCPACK, DHCPINFORM = 1, 2, 3, 5, 8

PXE_DISCOVERY_CONTROL = 6  # PXE 2.1 vendor sub-option
# Bit 3: boot file name present, use it: no boot server discovery (multicast/broadcast).
DISCOVERY_USE_BOOTFILE = 8


class MalformedPacket(ValueError):
    """The datagram is not a DHCP message this server will read; `reason` names why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason  # one of a few fixed words: a metrics label


@dataclass(frozen=True)
class Packet:
    op: int
    xid: int
    secs: int
    flags: int
    ciaddr: str
    giaddr: str
    mac: str  # canonical lower-case aa:bb:cc:dd:ee:ff
    chaddr: bytes  # the 16 raw bytes, echoed in replies
    options: dict[int, bytes] = field(default_factory=dict)
    order: tuple[int, ...] = ()  # option codes in the order the client sent them

    @property
    def message_type(self) -> int | None:
        v = self.options.get(OPT_MESSAGE_TYPE)
        return v[0] if v and len(v) == 1 else None

    @property
    def vendor_class(self) -> str:
        return self.options.get(OPT_CLASS_ID, b"").decode("ascii", "replace")

    @property
    def user_class(self) -> str:
        """Option 77 as text; RFC 3004 length-prefixed items are unwrapped (iPXE sends the
        bare string, other clients the RFC form)."""
        raw = self.options.get(OPT_USER_CLASS, b"")
        items, i = [], 0
        while len(raw) > 0 and i < len(raw):
            n = raw[i]
            if n == 0 or i + 1 + n > len(raw):
                return raw.decode("ascii", "replace")
            items.append(raw[i + 1 : i + 1 + n])
            i += 1 + n
        return b",".join(items).decode("ascii", "replace") if items else ""

    @property
    def arch(self) -> int | None:
        """The first architecture type of option 93, or the Arch field of option 60."""
        v = self.options.get(OPT_CLIENT_ARCH)
        if v is not None and len(v) >= 2:
            return int.from_bytes(v[:2], "big")
        parts = self.vendor_class.split(":")
        if len(parts) >= 3 and parts[1] == "Arch" and parts[2].isdigit():
            return int(parts[2])
        return None


def parse(data: bytes) -> Packet:
    """Read one datagram; MalformedPacket names what is wrong with it."""
    if len(data) > MAX_SIZE:
        raise MalformedPacket("oversize")
    if len(data) < MIN_SIZE:
        raise MalformedPacket("truncated header")
    op, htype, hlen, _hops, xid, secs, flags, ciaddr, _yi, _si, giaddr, chaddr, sname, file = (
        HEADER.unpack_from(data)
    )
    if data[HEADER.size : MIN_SIZE] != MAGIC_COOKIE:
        raise MalformedPacket("no DHCP magic cookie")
    if htype != HTYPE_ETHERNET or hlen != 6:
        raise MalformedPacket("not Ethernet")
    options: dict[int, bytes] = {}
    order: list[int] = []
    _read_options(data[MIN_SIZE:], options, order, need_end=True)
    overload = options.get(OPT_OVERLOAD)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise MalformedPacket("bad option overload")
        # RFC 2131 4.1: the options field first, then file, then sname.
        if overload[0] & 1:
            _read_options(file, options, order, need_end=True)
        if overload[0] & 2:
            _read_options(sname, options, order, need_end=True)
    mac = ":".join(f"{b:02x}" for b in chaddr[:6])
    return Packet(
        op=op,
        xid=xid,
        secs=secs,
        flags=flags,
        ciaddr=str(ipaddress.IPv4Address(ciaddr)),
        giaddr=str(ipaddress.IPv4Address(giaddr)),
        mac=mac,
        chaddr=chaddr,
        options=options,
        order=tuple(order),
    )


def _read_options(buf: bytes, options: dict[int, bytes], order: list[int], need_end: bool) -> None:
    i = 0
    while i < len(buf):
        code = buf[i]
        if code == OPT_END:
            return
        if code == OPT_PAD:
            i += 1
            continue
        if i + 1 >= len(buf):
            raise MalformedPacket("bad option length", f"option {code} has no length")
        n = buf[i + 1]
        if i + 2 + n > len(buf):
            raise MalformedPacket("bad option length", f"option {code} runs past the packet")
        if code in (OPT_OVERLOAD, OPT_MESSAGE_TYPE) and code in options:
            raise MalformedPacket("repeated option", f"option {code}")
        # RFC 3396: a repeated option is one long option, its parts concatenated.
        options[code] = options.get(code, b"") + buf[i + 2 : i + 2 + n]
        if code not in order:
            order.append(code)
        i += 2 + n
    if need_end:
        raise MalformedPacket("no end option")


@dataclass(frozen=True)
class Reply:
    """What a proxy answer carries besides what it echoes from the request."""

    message_type: int  # DHCPOFFER on port 67, DHCPACK on port 4011
    server_ip: str
    boot_file: str
    vendor_class: str  # "PXEClient" or "HTTPClient"
    discovery_control: bool  # add option 43 with PXE_DISCOVERY_CONTROL


def build_reply(request: Packet, reply: Reply) -> bytes:
    """A proxy reply: no address (yiaddr 0.0.0.0), the boot server in siaddr, option 54 and
    option 66, the boot file in `file` (when it fits) and in option 67."""
    server = ipaddress.IPv4Address(reply.server_ip).packed
    name = reply.boot_file.encode()
    header = HEADER.pack(
        BOOTREPLY,
        HTYPE_ETHERNET,
        6,
        0,
        request.xid,
        0,
        request.flags & BROADCAST_FLAG,
        b"\0" * 4,  # ciaddr
        b"\0" * 4,  # yiaddr: a proxy never offers an address
        server,  # siaddr: next server, for TFTP
        ipaddress.IPv4Address(request.giaddr).packed,
        request.chaddr,
        reply.server_ip.encode(),
        name if len(name) < 128 else b"",
    )
    opts = [
        (OPT_MESSAGE_TYPE, bytes([reply.message_type])),
        (OPT_SERVER_ID, server),
        (OPT_CLASS_ID, reply.vendor_class.encode()),
        (OPT_TFTP_SERVER, reply.server_ip.encode()),
        (OPT_BOOTFILE, name),
    ]
    if reply.discovery_control:
        opts.append((OPT_VENDOR, bytes([PXE_DISCOVERY_CONTROL, 1, DISCOVERY_USE_BOOTFILE, 255])))
    uuid = request.options.get(OPT_CLIENT_UUID)
    if uuid is not None:
        opts.append((OPT_CLIENT_UUID, uuid))
    body = bytearray(header + MAGIC_COOKIE)
    for code, value in opts:
        for start in range(0, max(len(value), 1), 255):  # RFC 3396 for values over 255 bytes
            chunk = value[start : start + 255]
            body += bytes([code, len(chunk)]) + chunk
    body.append(OPT_END)
    return bytes(body)

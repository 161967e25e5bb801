"""TFTP wire format on top of tftpy's packet classes, with the fixes Bootfleet needs.

tftpy parses requests (RRQ/WRQ, options) and encodes OACK and ERROR packets. The per-block
hot path (DATA header, ACK decode) uses one precompiled `struct` each: byte-identical to
tftpy's TftpPacketDAT/TftpPacketACK (tests compare them), without two objects and several
log calls per block.
"""

from __future__ import annotations

import struct

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketERR, TftpPacketOACK, TftpPacketRRQ, TftpPacketWRQ

# RFC 1350 section 5: opcodes; RFC 2347: OACK.
RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6

# RFC 1350 appendix (error codes); RFC 2347 adds 8.
ERR_UNDEFINED = 0
ERR_NOT_FOUND = 1
ERR_ACCESS = 2
ERR_DISK_FULL = 3
ERR_ILLEGAL = 4
ERR_UNKNOWN_TID = 5
ERR_EXISTS = 6
ERR_NO_USER = 7
ERR_OPTIONS = 8

# RFC 2347 section "Packet Formats": a request with options must fit 512 octets. Firmware
# keeps to that; we allow a margin for long paths and refuse anything larger.
MAX_REQUEST = 1024

MODES = ("octet", "netascii")

OPCODE_BLOCK = struct.Struct("!HH")  # DATA and ACK: opcode, block number (RFC 1350)


class MalformedRequest(ValueError):
    """A request we cannot parse; `code` is the RFC 1350 error code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ErrorPacket(TftpPacketERR):
    """tftpy's ERR packet, but carrying our message.

    tftpy 0.8.7 ignores `errmsg` when encoding and has no text for code 0 (KeyError). RFC 1350
    section 5: ErrMsg is a netascii string for humans, ended by a zero byte.
    """

    def encode(self) -> ErrorPacket:
        text = self.errmsg or self.errmsgs.get(self.errorcode, b"Error")
        if isinstance(text, str):
            text = text.encode("ascii", "replace")
        text = text.replace(b"\0", b"?")[:200]
        self.buffer = struct.pack(f"!HH{len(text)}sx", self.opcode, self.errorcode, text)
        return self


def encode_error(code: int, message: str) -> bytes:
    """Encode an ERROR packet with code and human-readable message."""
    pkt = ErrorPacket()
    pkt.errorcode = code
    pkt.errmsg = message.encode("ascii", "replace")
    return bytes(pkt.encode().buffer)


def encode_oack(options: dict[str, str]) -> bytes:
    """Encode an OACK for the accepted options (RFC 2347)."""
    pkt = TftpPacketOACK()
    pkt.options = options
    return bytes(pkt.encode().buffer)


def data_header(block: int) -> bytes:
    """DATA header for an absolute block number; wire numbers roll over 65535 -> 0."""
    return OPCODE_BLOCK.pack(DATA, block & 0xFFFF)


_factory = TftpPacketFactory()


def parse_request(buf: bytes) -> TftpPacketRRQ | TftpPacketWRQ:
    """Parse an RRQ or WRQ with tftpy, turning each of its failure modes into one exception.

    tftpy raises TftpException, UnicodeDecodeError, struct.error or AssertionError on bad
    input (and the last three end its own listen loop); all become MalformedRequest here.
    """
    if len(buf) > MAX_REQUEST:
        raise MalformedRequest(ERR_ILLEGAL, "request too long")
    if len(buf) < 4 or buf[0] != 0 or buf[1] not in (RRQ, WRQ):
        raise MalformedRequest(ERR_ILLEGAL, "not a request")
    try:
        pkt = _factory.parse(buf)
    except Exception as exc:  # tftpy's decode fails in many ways, see above
        pkt = _parse_lenient(buf, exc)
    if not isinstance(pkt, TftpPacketRRQ | TftpPacketWRQ) or not pkt.filename:
        raise MalformedRequest(ERR_ILLEGAL, "malformed request")
    # tftpy lower-cases the mode (RFC 1350: modes are case-insensitive) but accepts any.
    if pkt.mode not in MODES:
        raise MalformedRequest(ERR_ILLEGAL, "unsupported mode")
    return pkt


def _parse_lenient(buf: bytes, exc: Exception) -> TftpPacketRRQ | TftpPacketWRQ:
    """Parse name and mode with tftpy, then the options ourselves, ignoring bad ones.

    tftpy refuses a whole request whose options section has an empty value (RFC 2090's
    "multicast" option has one), a name without value, or a missing final NUL. RFC 2347 says
    a server ignores options it does not accept, so we serve the file without them.
    """
    name_end = buf.find(b"\0", 2)
    mode_end = buf.find(b"\0", name_end + 1) if name_end > 0 else -1
    if mode_end < 0:
        raise MalformedRequest(ERR_ILLEGAL, "malformed request") from exc
    try:
        pkt = _factory.parse(buf[: mode_end + 1])
    except UnicodeDecodeError:
        # tftpy decodes names as ASCII; firmware never sends anything else.
        raise MalformedRequest(ERR_NOT_FOUND, "file name is not ASCII") from None
    except Exception as again:
        raise MalformedRequest(ERR_ILLEGAL, "malformed request") from again
    fields = buf[mode_end + 1 :].split(b"\0")
    options: dict[str, str] = {}
    for i in range(0, len(fields) - 2, 2):  # the last field follows the final NUL (or is cut)
        name, value = fields[i], fields[i + 1]
        if name and name.isascii() and value.isascii():
            options.setdefault(name.decode(), value.decode())
    pkt.options = options
    return pkt

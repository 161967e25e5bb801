"""Our wire helpers agree with tftpy's packet classes, and request parsing never escapes."""

from __future__ import annotations

import pytest
from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketDAT

from server.tftp import packets


@pytest.mark.parametrize("block", [1, 2, 65535, 65536, 65537, 131072])
def test_data_header_matches_tftpy(block: int) -> None:
    dat = TftpPacketDAT()
    dat.blocknumber, dat.data = block & 0xFFFF, b"payload"
    assert packets.data_header(block) + b"payload" == dat.encode().buffer


@pytest.mark.parametrize("block", [0, 1, 65535])
def test_ack_decode_matches_tftpy(block: int) -> None:
    wire = packets.OPCODE_BLOCK.pack(packets.ACK, block)
    parsed = TftpPacketFactory().parse(wire)
    assert packets.OPCODE_BLOCK.unpack(wire) == (parsed.opcode, parsed.blocknumber)


@pytest.mark.parametrize("code", range(9))
def test_error_encodes_every_code_with_message(code: int) -> None:
    wire = packets.encode_error(code, "über\0x")
    assert wire[:4] == bytes([0, 5, 0, code]) and wire.endswith(b"\0")
    assert wire[4:-1] == b"?ber?x"


def test_oack_roundtrip() -> None:
    wire = packets.encode_oack({"blksize": "1468", "tsize": "42"})
    assert wire == b"\x00\x06blksize\x001468\x00tsize\x0042\x00"


def test_parse_request() -> None:
    pkt = packets.parse_request(b"\x00\x01Pxelinux.0\x00OCTET\x00BlkSize\x001468\x00")
    assert (pkt.opcode, pkt.filename, pkt.mode) == (1, "Pxelinux.0", "octet")
    assert pkt.options == {"BlkSize": "1468"}


def test_parse_request_lenient_options() -> None:
    pkt = packets.parse_request(b"\x00\x01a\x00octet\x00multicast\x00\x00blksize\x00600\x00")
    assert pkt.options == {"multicast": "", "blksize": "600"}


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"", 4),
        (b"\x00\x03\x00\x01", 4),
        (b"\x00\x01\x00octet\x00", 4),
        (b"\x00\x01a\x00", 4),
        (b"\x00\x01a\x00netascii", 4),
        (b"\x00\x01a\x00binary\x00", 4),
        (b"\x00\x01\xe9\x00octet\x00", 1),
        (b"\x00\x01a\x00octet\x00" + b"x" * 2000, 4),
    ],
)
def test_parse_request_refuses(wire: bytes, code: int) -> None:
    with pytest.raises(packets.MalformedRequest) as caught:
        packets.parse_request(wire)
    assert caught.value.code == code

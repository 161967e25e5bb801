"""Parsing what firmware sends, refusing what it never sends, and the proxy's reply layout."""

from __future__ import annotations

import pytest

from server.proxydhcp.packet import (
    MAX_SIZE,
    MalformedPacket,
    Reply,
    build_reply,
    parse,
)

from .client import MAC, discover, header, option, options_of


def test_parses_a_uefi_discover() -> None:
    p = parse(discover(arch=7))
    assert p.mac == MAC and p.xid == 0x1234ABCD and p.message_type == 1
    assert p.arch == 7 and p.vendor_class.startswith("PXEClient:Arch:00007")
    assert p.order[:3] == (53, 57, 93)
    assert p.user_class == ""


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"iPXE", "iPXE"), (b"\x04iPXE", "iPXE"), (b"\x04iPXE\x03foo", "iPXE,foo")],
)
def test_user_class_bare_or_rfc3004(raw: bytes, text: str) -> None:
    assert parse(discover(user_class=raw)).user_class == text


def test_arch_from_vendor_class_when_option_93_is_missing() -> None:
    data = header() + option(53, b"\x01") + option(60, b"PXEClient:Arch:00000:UNDI:002001")
    assert parse(data + b"\xff").arch == 0


def test_option_overload_reads_file_and_sname() -> None:
    file = option(60, b"PXEClient:Arch:00009") + b"\xff"
    sname = option(77, b"iPXE") + b"\xff"
    data = header(file=file, sname=sname) + option(53, b"\x01") + option(52, b"\x03") + b"\xff"
    p = parse(data)
    assert p.arch == 9 and p.user_class == "iPXE"


def test_repeated_option_is_concatenated() -> None:
    data = header() + option(53, b"\x01") + option(60, b"PXECl") + option(60, b"ient") + b"\xff"
    assert parse(data).vendor_class == "PXEClient"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated header"),
        (discover()[:239], "truncated header"),
        (discover()[:236] + b"\0\0\0\0" + discover()[240:], "no DHCP magic cookie"),
        (header(htype=6) + b"\xff", "not Ethernet"),
        (header() + option(53, b"\x01"), "no end option"),
        (header() + b"\x35", "bad option length"),
        (header() + b"\x35\x09\x01\xff", "bad option length"),
        (header() + option(53, b"\x01") + option(52, b"\x07") + b"\xff", "bad option overload"),
        (header() + option(53, b"\x01") + option(52, b"\x01") + b"\xff", "no end option"),
        (header() + option(53, b"\x01") * 2 + b"\xff", "repeated option"),
        (discover() + bytes(MAX_SIZE), "oversize"),
    ],
)
def test_refuses_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket) as err:
        parse(data)
    assert err.value.reason == reason


def test_reply_assigns_no_address_and_names_server_and_file() -> None:
    request = parse(discover())
    raw = build_reply(request, Reply(2, "198.18.0.1", "snponly.efi", "PXEClient", True))
    assert raw[0] == 2 and raw[4:8] == bytes.fromhex("1234abcd")
    assert raw[16:20] == bytes(4), "yiaddr must be 0.0.0.0"
    assert raw[20:24] == bytes([198, 18, 0, 1])  # siaddr
    assert raw[28:34] == bytes.fromhex(MAC.replace(":", ""))
    assert raw[108:119] == b"snponly.efi"
    opts = options_of(raw)
    assert opts[53] == b"\x02" and opts[54] == bytes([198, 18, 0, 1])
    assert opts[60] == b"PXEClient" and opts[67] == b"snponly.efi"
    assert opts[43] == bytes([6, 1, 8, 255])
    assert opts[97] == request.options[97]
    assert parse(raw.replace(b"\x02", b"\x01", 1)).options[67] == b"snponly.efi"


def test_long_url_goes_in_option_67_only() -> None:
    url = "http://198.18.0.1:8080/" + "x" * 300
    raw = build_reply(parse(discover()), Reply(5, "198.18.0.1", url, "HTTPClient", False))
    assert raw[108:236] == bytes(128)
    opts = options_of(raw)
    assert opts[67] == url.encode() and 43 not in opts and opts[60] == b"HTTPClient"

"""The service on the wire: hostile input, TIDs, caps, uploads, modes, shutdown."""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from server.tftp import TftpService

from .conftest import ServiceFactory
from .helpers import (
    GUARD,
    HOST,
    Raw,
    ack,
    download,
    error,
    need,
    parse_oack,
    payload,
    request,
    run,
)

BAD = b"\x00\x01f512.bin\x00octet\x00"
MALFORMED: list[tuple[str, bytes]] = [
    ("empty datagram", b""),
    ("one byte", b"\x00"),
    ("opcode only", b"\x00\x01"),
    ("no terminator", b"\x00\x01f512.bin"),
    ("no mode", b"\x00\x01f512.bin\x00"),
    ("mode without NUL", b"\x00\x01f512.bin\x00octet"),
    ("empty name", b"\x00\x01\x00octet\x00"),
    ("unknown mode", b"\x00\x01f512.bin\x00bogus\x00"),
    ("mail mode", b"\x00\x01f512.bin\x00mail\x00"),
    ("opcode 0", b"\x00\x00f512.bin\x00octet\x00"),
    ("opcode 7", b"\x00\x07f512.bin\x00octet\x00"),
    ("opcode 0xffff", b"\xff\xfff512.bin\x00octet\x00"),
    ("DATA to listener", b"\x00\x03\x00\x01hello"),
    ("ACK to listener", b"\x00\x04\x00\x01"),
    ("short ACK to listener", b"\x00\x04\x00"),
    ("ERROR to listener", b"\x00\x05\x00\x01nope\x00"),
    ("OACK to listener", b"\x00\x06blksize\x00512\x00"),
    ("non-UTF-8 name", b"\x00\x01\xff\xfe\xc3(\x00octet\x00"),
    ("non-ASCII mode", b"\x00\x01f512.bin\x00oct\xe9t\x00"),
    ("option without value", BAD + b"blksize\x00"),
    ("option with empty value", BAD + b"blksize\x00\x00"),
    ("option without NUL", BAD + b"blksize\x00512"),
    ("empty option name", BAD + b"\x00512\x00"),
    ("huge blksize", BAD + b"blksize\x0099999999999999999999999\x00"),
    ("blksize 0", BAD + b"blksize\x000\x00"),
    ("blksize 7", BAD + b"blksize\x007\x00"),
    ("blksize 65465", BAD + b"blksize\x0065465\x00"),
    ("blksize negative", BAD + b"blksize\x00-1\x00"),
    ("blksize text", BAD + b"blksize\x00lots\x00"),
    ("blksize non-ASCII digits", BAD + "blksize\x00\u0661\u0662".encode() + b"\x00"),
    ("duplicate options", BAD + b"blksize\x00512\x00blksize\x001024\x00BLKSIZE\x008\x00"),
    ("timeout 0", BAD + b"timeout\x000\x00"),
    ("timeout 256", BAD + b"timeout\x00256\x00"),
    ("windowsize 0", BAD + b"windowsize\x000\x00"),
    ("windowsize 70000", BAD + b"windowsize\x0070000\x00"),
    ("tsize text", BAD + b"tsize\x00big\x00"),
    ("many options", BAD + b"x\x00y\x00" * 200),
    ("oversized request", BAD + b"a" * 4000 + b"\x00b\x00"),
    ("oversized datagram", b"\x00\x01" + b"A" * 65000),
    ("name of 600 bytes", b"\x00\x01" + b"a" * 600 + b"\x00octet\x00"),
    ("WRQ without mode", b"\x00\x02upload.bin\x00"),
]


def drain(client: Raw) -> list[bytes]:
    """Packets the server sent us so far (non-blocking), ending any transfer they started."""
    got = []
    client.sock.setblocking(False)
    try:
        while True:
            try:
                data, addr = client.sock.recvfrom(70000)
            except BlockingIOError:
                break
            got.append(data)
            if data[:2] in (b"\x00\x03", b"\x00\x06"):
                client.send(error(0), addr)
    finally:
        client.sock.settimeout(GUARD)
    return got


def test_malformed_packets_do_not_stop_the_server(
    service: TftpService, raw: Raw, root: Path, tmp_path: Path
) -> None:
    for _, packet in MALFORMED:
        raw.send(packet)
    # A request after the table is answered: so every earlier packet was handled.
    after = Raw(service.port)
    try:
        assert after.fetch("f511.bin") == (root / "f511.bin").read_bytes()
    finally:
        after.close()
    drain(raw)
    out = tmp_path / "out"
    done = download("curl", service.port, "x1468.bin", out, blksize=1468)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (root / "x1468.bin").read_bytes()


@pytest.mark.parametrize(
    ("packet", "code"),
    [
        (b"\x00\x01f512.bin\x00bogus\x00", 4),
        (b"\x00\x01f512.bin\x00", 4),
        (b"\x00\x01\xff\xfe\x00octet\x00", 1),
        (b"\x00\x01" + b"a" * 600 + b"\x00octet\x00", 1),
        (BAD + b"a" * 4000 + b"\x00b\x00", 4),
    ],
)
def test_malformed_request_gets_error_code(packet: bytes, code: int, raw: Raw) -> None:
    raw.send(packet)
    opcode, number, _, _ = raw.recv()
    assert (opcode, number) == (5, code)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"blksize": 0}, None),
        ({"blksize": 7}, None),
        ({"blksize": 8}, {"blksize": "8"}),
        ({"blksize": 65465}, {"blksize": "8192"}),
        ({"blksize": "lots"}, None),
        ({"BlkSize": 1024, "TSIZE": 0}, {"BlkSize": "1024", "TSIZE": "512"}),
        ({"timeout": 0, "windowsize": 0}, None),
        ({"timeout": 3, "windowsize": 70000}, {"timeout": "3", "windowsize": "64"}),
        ({"multicast": "", "x": 1}, None),
    ],
)
def test_option_answers(options: dict[str, object], expected: object, raw: Raw) -> None:
    raw.send(request(1, "f512.bin", "octet", options))
    opcode, number, body, tid = raw.recv()
    if expected is None:  # RFC 2347: nothing accepted -> plain DATA 1, no OACK
        assert (opcode, number) == (3, 1)
    else:
        assert opcode == 6
        assert parse_oack(struct.pack("!H", number) + body) == expected
    raw.send(error(0), tid)


def test_non_requests_to_the_listener_get_no_answer(service: TftpService, raw: Raw) -> None:
    strays = [b"", b"\x00", b"\x00\x03\x00\x01x", b"\x00\x04\x00\x01", b"\x00\x05\x00\x01\x00"]
    strays += [b"\x00\x06a\x00b\x00", b"\x00\x07f\x00octet\x00", b"\xff\xff"]
    for packet in strays:
        raw.send(packet)
    raw.rrq("missing.bin")  # answered in order: so nothing came back for the strays
    assert raw.recv()[:2] == (5, 1)
    assert service.stats.ignored["not_a_request"] == len(strays)


@pytest.mark.parametrize(
    "options",
    [
        b"multicast\x00\x00",
        b"blksize\x00",
        b"blksize\x00\x00",
        b"blksize\x00512",
        b"\x00512\x00",
        b"blksize\x00\xff\x00",
    ],
)
def test_unusable_options_are_ignored(options: bytes, raw: Raw) -> None:
    raw.send(BAD + options)  # RFC 2347: serve the file, as if the option was not sent
    opcode, block, _, tid = raw.recv()
    assert (opcode, block) == (3, 1)
    raw.send(error(0), tid)


def test_upper_case_mode_and_options(raw: Raw, root: Path) -> None:
    assert raw.fetch("f511.bin", mode="OCTET", BLKSIZE=100) == (root / "f511.bin").read_bytes()


def test_netascii_on_the_wire(raw: Raw, root: Path) -> None:
    (root / "t.txt").write_bytes(b"a\nb\rc\r\n")
    assert raw.fetch("t.txt", mode="NetASCII") == b"a\r\nb\r\0c\r\0\r\n"


def test_wrong_tid_gets_error_5_and_transfer_completes(raw: Raw, root: Path) -> None:
    intruder = Raw(0)
    try:
        raw.rrq("x512.bin")
        opcode, block, data, tid = raw.recv()
        assert (opcode, block) == (3, 1)
        intruder.send(ack(1), tid)
        intruder.send(error(0, b"go away"), tid)  # an ERROR from a stranger changes nothing
        intruder.send(b"\x00\x03\x00\x02junk", tid)
        opcode, code, _, source = intruder.recv()
        assert (opcode, code, source) == (5, 5, tid)
        assert raw.read_on(tid, block, data) == (root / "x512.bin").read_bytes()
    finally:
        intruder.close()


def test_duplicate_ack_causes_no_resend(make_service: ServiceFactory, root: Path) -> None:
    service = make_service(timeout=30.0)  # no timeout-driven resend during the test
    raw = Raw(service.port)
    try:
        raw.rrq("x512.bin")
        blocks = []
        _opcode, block, data, tid = raw.recv()
        blocks.append(block)
        raw.send(ack(1), tid)
        _, block, data, _ = raw.recv()
        blocks.append(block)
        raw.send(ack(1), tid)  # duplicate: RFC 1123 says no DATA 2 again
        raw.send(ack(1), tid)
        raw.send(ack(2), tid)
        # UDP on loopback keeps order: a resent DATA 2 would arrive before DATA 3.
        _, block, _, _ = raw.recv()
        blocks.append(block)
        raw.send(ack(3), tid)
        _, block, data, _ = raw.recv()
        blocks.append(block)
        raw.send(ack(4), tid)
        assert blocks == [1, 2, 3, 4] and data == b""
    finally:
        raw.close()


def test_upload_refused_and_nothing_written(service: TftpService, raw: Raw, root: Path) -> None:
    before = sorted(p.name for p in root.rglob("*"))
    raw.send(request(2, "new.bin"))
    assert raw.recv()[:2] == (5, 2)
    raw.send(request(2, "f511.bin"))
    assert raw.recv()[:2] == (5, 2)
    assert sorted(p.name for p in root.rglob("*")) == before
    assert (root / "f511.bin").read_bytes() == payload(511)


def test_upload_with_tftp_hpa_fails(service: TftpService, root: Path, tmp_path: Path) -> None:
    local = tmp_path / "up.bin"
    local.write_bytes(b"x" * 100)
    done = run_hpa(service.port, ["put", str(local), "up.bin"], tmp_path)
    assert "uploads are disabled" in done.stdout + done.stderr
    assert not (root / "up.bin").exists()


def run_hpa(port: int, command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run([need("tftp"), "-m", "octet", HOST, str(port), "-c", *command], cwd)


def test_per_source_cap(make_service: ServiceFactory, root: Path) -> None:
    service = make_service(per_source_max=2, timeout=30.0)
    clients = [Raw(service.port) for _ in range(3)]
    try:
        for c in clients:
            c.rrq("x512.bin")
        answers = sorted(c.recv()[:2] for c in clients)
        assert answers == [(3, 1), (3, 1), (5, 0)]
        assert service.stats.refused["per_source"] == 1
    finally:
        for c in clients:
            c.close()


def test_global_cap_then_served_again(make_service: ServiceFactory, root: Path) -> None:
    service = make_service(max_transfers=1, timeout=30.0)
    first, second = Raw(service.port), Raw(service.port)
    try:
        first.rrq("f511.bin")
        opcode, _, _data, tid = first.recv()
        assert opcode == 3
        second.rrq("f511.bin")
        assert second.recv()[:2] == (5, 0)
        first.send(ack(1), tid)  # the short block 1 is the last: transfer done
        until(lambda: service.stats.active == 0)
        assert second.fetch("f511.bin") == (root / "f511.bin").read_bytes()
    finally:
        first.close()
        second.close()


def test_resent_rrq_does_not_start_a_second_transfer(
    make_service: ServiceFactory, root: Path
) -> None:
    service = make_service(timeout=30.0)
    raw = Raw(service.port)
    try:
        raw.rrq("f511.bin")
        raw.rrq("f511.bin")
        _opcode, _, _, tid = raw.recv()
        raw.send(ack(1), tid)
        until(lambda: service.stats.active == 0)
        assert service.stats.started == 1
    finally:
        raw.close()


def test_silent_peer_gets_bounded_retransmits(make_service: ServiceFactory, root: Path) -> None:
    service = make_service(timeout=0.05, retries=3)
    raw = Raw(service.port)
    try:
        raw.rrq("x512.bin")
        until(lambda: service.stats.results["timeout"] == 1)
        got = drain(raw)
        assert len(got) == 4  # the first send + 3 retries, then silence
        assert service.stats.retransmits == 3
    finally:
        raw.close()


def test_reply_comes_from_the_address_asked(make_service: ServiceFactory, root: Path) -> None:
    service = make_service(host="0.0.0.0")
    raw = Raw(service.port, host="127.0.0.2")
    try:
        raw.rrq("f511.bin")
        opcode, _, _, tid = raw.recv()
        assert opcode == 3 and tid[0] == "127.0.0.2"
        raw.send(ack(1), tid)
        raw.send(request(1, "missing.bin"))
        opcode, code, _, source = raw.recv()
        assert (opcode, code, source) == (5, 1, ("127.0.0.2", service.port))
    finally:
        raw.close()


def test_stop_ends_transfers_and_frees_the_port(make_service: ServiceFactory) -> None:
    service = make_service(timeout=30.0)
    raw = Raw(service.port)
    try:
        raw.rrq("x512.bin")
        assert raw.recv()[0] == 3
        service.stop()
        assert raw.recv()[:2] == (5, 0)  # told, not left hanging
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((HOST, service.port))  # the port is free again
        probe.close()
        assert service.stats.active == 0
    finally:
        raw.close()


def test_metrics_after_transfers(service: TftpService, raw: Raw, root: Path) -> None:
    raw.fetch("f511.bin")
    raw.rrq("nope.bin")
    raw.recv()
    until(lambda: service.stats.active == 0 and service.stats.errors_sent[1] == 1)
    text = service.stats.render_prometheus()
    assert "bootfleet_tftp_transfers_ok_total 1\n" in text
    assert 'bootfleet_tftp_errors_sent_total{code="1"} 1\n' in text
    assert "bootfleet_tftp_bytes_sent_total 511\n" in text


def until(condition: Callable[[], bool]) -> None:
    """Wait for the event loop to catch up (bounded by GUARD; a hang guard, not a timing)."""
    import time

    end = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_request_to_broadcast_address_is_ignored(make_service: ServiceFactory, root: Path) -> None:
    """RFC 1123 4.2.3.4; lo's 127.0.0.0/8 has the broadcast address 127.255.255.255."""
    service = make_service(host="0.0.0.0")
    raw = Raw(service.port)
    try:
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        raw.send(request(1, "f511.bin"), ("127.255.255.255", service.port))
        raw.send(request(1, "f511.bin"), ("127.0.0.1", service.port))
        opcode, _, _, tid = raw.recv()
        raw.send(ack(1), tid)
        until(lambda: service.stats.active == 0)
        assert opcode == 3
        assert service.stats.ignored["broadcast"] == 1
        assert service.stats.started == 1
    finally:
        raw.close()


def test_random_garbage_disturbs_nobody(make_service: ServiceFactory, root: Path) -> None:
    """Seeded random datagrams at the listener and at a running transfer's TID."""
    import random

    service = make_service(timeout=30.0)
    rng = random.Random(2347)
    client, fuzz = Raw(service.port), Raw(service.port)
    try:
        client.rrq("x512.bin")
        opcode, block, data, tid = client.recv()
        assert (opcode, block) == (3, 1)
        for i in range(600):
            size = rng.choice([0, 1, 2, 3, 4, 5, 20, 516, 1500])
            prefix = bytes([0, rng.randrange(8)]) if i % 2 else b""
            packet = (prefix + rng.randbytes(size))[: max(size, 0)]
            fuzz.send(packet, tid if i % 3 == 0 else None)
        assert client.read_on(tid, block, data) == (root / "x512.bin").read_bytes()
        after = Raw(service.port)
        try:
            assert after.fetch("f511.bin") == (root / "f511.bin").read_bytes()
        finally:
            after.close()
    finally:
        client.close()
        fuzz.close()

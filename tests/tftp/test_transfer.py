"""Transfers under stress: packet loss, block-number rollover, windows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.tftp import TftpService, transfer
from server.tftp.content import MemorySource, SourceChanged
from server.tftp.options import Negotiated
from server.tftp.transfer import Transfer

from .conftest import ServiceFactory
from .helpers import LossyRelay, Raw, ack, download, tftpy_download
from .test_bounds import until


@pytest.mark.parametrize(
    ("client", "blksize", "windowsize"),
    [("atftp", 1468, None), ("atftp", 1024, 8), ("busybox", 1024, None), ("tftpy", 1024, None)],
)
def test_ten_percent_loss_both_ways(
    client: str,
    blksize: int,
    windowsize: int | None,
    make_service: ServiceFactory,
    root: Path,
    tmp_path: Path,
) -> None:
    # Not curl: it asks for "timeout 5" (its minimum) and RFC 2349 makes that our
    # retransmission timeout, so each lost packet costs 5+ s.
    data = os.urandom(150_000)
    (root / "lossy.bin").write_bytes(data)
    service = make_service(timeout=0.1, retries=12)
    out = tmp_path / "out"
    with LossyRelay(service.port, loss=0.10) as relay:
        if client == "tftpy":
            tftpy_download(relay.port, "lossy.bin", out, blksize)
        else:
            done = download(
                client, relay.port, "lossy.bin", out, blksize=blksize, windowsize=windowsize
            )
            assert done.returncode == 0, done.stderr
    assert out.read_bytes() == data
    assert relay.dropped > 0  # the link really lost packets


@pytest.mark.parametrize(("client", "windowsize"), [("curl", None), ("atftp", 16)])
def test_block_numbers_roll_over(
    client: str,
    windowsize: int | None,
    service: TftpService,
    root: Path,
    tmp_path: Path,
) -> None:
    size = (33 << 20) + 1234  # > 65535 blocks of 512: the block number wraps
    data = os.urandom(size)
    (root / "huge.bin").write_bytes(data)
    out = tmp_path / "out"
    done = download(client, service.port, "huge.bin", out, blksize=512, windowsize=windowsize)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == data


def test_window_resends_from_the_gap(make_service: ServiceFactory, root: Path) -> None:
    """RFC 7440: an ACK inside the window means a gap; the next window starts after it."""
    service = make_service(timeout=30.0)
    raw = Raw(service.port)
    try:
        raw.rrq("x512.bin", windowsize=4)
        opcode, _, _, tid = raw.recv()
        assert opcode == 6
        raw.send(ack(0), tid)
        assert [raw.recv()[1] for _ in range(4)] == [1, 2, 3, 4]  # 3 full blocks + empty 4
        raw.send(ack(1), tid)  # pretend 2 was lost
        assert [raw.recv()[1] for _ in range(3)] == [2, 3, 4]
        raw.send(ack(4), tid)
    finally:
        raw.close()


def test_a_client_acking_every_packet_cannot_multiply_the_traffic(
    make_service: ServiceFactory, root: Path
) -> None:
    """EDK2 ACKs the last block it holds in order on every DATA that is not the next one;
    through a bad link most packets are. Each such ACK is new and short of the window's
    end, so the server resends the window from there: a stray packet per block costs a
    window per block. A client that ACKs every packet it gets makes that happen on a clean
    link. The server stops at its budget with an ERROR instead of sending windowsize times
    the file (counted here at the client: no loss on loopback)."""
    nblocks = 300
    (root / "stray.bin").write_bytes(os.urandom(512 * nblocks + 100))
    service = make_service(timeout=0.5, max_windowsize=32)
    raw = Raw(service.port)
    got = 0
    error = b""
    try:
        raw.rrq("stray.bin", windowsize=32)
        opcode, _, _, tid = raw.recv()
        assert opcode == 6
        raw.send(ack(0), tid)
        raw.sock.settimeout(3.0)
        held = 0  # the last block held in order
        while True:
            try:
                opcode, number, data, _ = raw.recv()
            except TimeoutError:  # the ERROR, dropped by our full receive buffer
                break
            if opcode == 5:
                error = data
                break
            assert opcode == 3
            got += 1
            if number == (held + 1) & 0xFFFF:
                held += 1
                if len(data) < 512:
                    break
            raw.send(ack(held), tid)
    finally:
        raw.close()
    budget = transfer.MAX_SEND_FACTOR * (nblocks + 1) + (4 + 1) * 32
    assert got <= budget, f"{got} DATA packets for {nblocks + 1} blocks"
    assert error in (b"", b"too many retransmissions\0")
    until(lambda: service.stats.results["too_many_resends"] == 1)


# --- one Transfer against a fake socket: what a failed send does -------------------------


class FakeSocket:
    """Records each datagram; raises the planned errors first, one per sendto."""

    def __init__(self, *errors: OSError) -> None:
        self.errors = list(errors)
        self.sent: list[bytes] = []

    def fileno(self) -> int:
        return 99

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(bytes(data))
        return len(data)


class ShrinkingSource(MemorySource):
    """A file that changes on disk once `good` blocks were read."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__(data)
        self.good = good

    def read(self, offset: int, length: int) -> memoryview:
        if self.good <= 0:
            raise SourceChanged("changed")
        self.good -= 1
        return super().read(offset, length)


def lockstep(sock: FakeSocket, source: MemorySource) -> Transfer:
    t = Transfer(
        sock,  # type: ignore[arg-type]
        ("198.18.0.9", 2000),
        "f",
        source,
        Negotiated(blksize=512),
        timeout=1.0,
        retries=5,
    )
    assert t.begin(0.0) is None  # no options: DATA 1 at once
    return t


def blocks(sock: FakeSocket) -> list[int]:
    return [int.from_bytes(d[2:4], "big") for d in sock.sent]


def test_lockstep_send_refused_by_a_full_buffer_goes_out_on_the_timeout() -> None:
    sock = FakeSocket()
    t = lockstep(sock, MemorySource(b"x" * 2000))
    sock.errors = [BlockingIOError(), BlockingIOError()]  # the fast path, then the general one
    assert t.on_packet(ack(1), 0.1) is None
    assert blocks(sock) == [1]  # block 2 not sent yet
    assert t.on_timeout(t.deadline) is None
    assert blocks(sock) == [1, 2]
    assert t.on_packet(ack(2), 2.0) is None and blocks(sock) == [1, 2, 3]


def test_lockstep_send_to_an_unreachable_peer_counts_as_lost() -> None:
    sock = FakeSocket()
    t = lockstep(sock, MemorySource(b"x" * 2000))
    sock.errors = [OSError(113, "No route to host")] * 2
    assert t.on_packet(ack(1), 0.1) is None
    assert t.sent == 2 and t.deadline == pytest.approx(1.1)  # resent after the timeout
    assert t.on_timeout(t.deadline) is None and blocks(sock) == [1, 2]


def test_a_file_changed_mid_transfer_ends_it() -> None:
    sock = FakeSocket()
    t = lockstep(sock, ShrinkingSource(b"x" * 2000, good=1))
    assert t.on_packet(ack(1), 0.1) == "file_changed"
    assert blocks(sock) == [1]


class NoGsoSocket(FakeSocket):
    def sendmsg(self, *args: object) -> int:
        raise OSError(95, "Operation not supported")  # GSO off: one sendto per block


def test_a_duplicate_ack_with_a_window_out_brings_the_resend_forward_only() -> None:
    """EDK2 ACKs a packet out of order with the ACK it sent last and restarts its count of
    the window there, so that window's end is never ACKed: the resend comes sooner, but
    still from the timer (RFC 1123: a duplicate ACK itself never sends DATA)."""
    sock = NoGsoSocket()
    neg = Negotiated(blksize=512, windowsize=4)
    t = Transfer(
        sock,
        ("198.18.0.9", 2000),
        "f",
        MemorySource(b"x" * 5000),
        neg,  # type: ignore[arg-type]
        timeout=1.0,
        retries=5,
    )
    assert t.begin(0.0) is None and blocks(sock) == [1, 2, 3, 4]
    assert t.deadline == pytest.approx(1.0)
    assert t.on_packet(ack(0), 0.1) is None and t.on_packet(ack(0), 0.2) is None
    assert blocks(sock) == [1, 2, 3, 4]  # nothing sent on the duplicates
    assert t.deadline == pytest.approx(0.1 + 1.0 * transfer.DUP_ACK_TIMEOUT)
    assert t.on_timeout(t.deadline) is None and blocks(sock) == [1, 2, 3, 4] * 2


def test_a_duplicate_ack_in_lock_step_leaves_the_timer_alone() -> None:
    sock = FakeSocket()
    t = lockstep(sock, MemorySource(b"x" * 2000))
    assert t.on_packet(ack(1), 0.1) is None and t.deadline == pytest.approx(1.1)
    assert t.on_packet(ack(1), 0.2) is None and t.deadline == pytest.approx(1.1)
    assert blocks(sock) == [1, 2]

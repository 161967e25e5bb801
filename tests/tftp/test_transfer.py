"""Transfers under stress: packet loss, block-number rollover, windows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.tftp import TftpService

from .conftest import ServiceFactory
from .helpers import LossyRelay, Raw, ack, download, tftpy_download


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

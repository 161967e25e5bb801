"""Memory that TFTP transfers hold, measured on a real `bootfleet serve` (its VmRSS)."""

from __future__ import annotations

import socket
import time

from server.config import Settings
from tests.reliability.figures import FIGURES
from tests.serve import Served, free_port

SIZE = 24 << 20  # over the 16 MiB small-file cache: read from disk as it is sent
READERS = 24
# What the readers may add to the server's RSS in all. A private netascii copy of the file
# per reader was ~25 MiB each (600 MiB for 24); streamed, a reader holds ~200 KiB.
GROWTH_KIB = 32 << 10


def text(size: int) -> bytes:
    """Lines with LF endings and a few bare CRs: netascii grows it by ~3 %."""
    line = b"LABEL install\r  KERNEL vmlinuz initrd=initrd.img\n"
    return (line * (size // len(line) + 1))[:size]


def hold_netascii_read(port: int, name: str) -> socket.socket:
    """Start a netascii read, take DATA 1 and stay silent: the transfer stays open."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10)
    s.sendto(b"\0\1" + name.encode() + b"\0netascii\0", ("127.0.0.1", port))
    data, _ = s.recvfrom(70000)
    assert data[:4] == b"\0\3\0\1", data[:60]
    return s


def test_concurrent_netascii_reads_hold_bounded_memory(settings: Settings) -> None:
    data, images = settings.data_dir, settings.images
    (images / "big.cfg").write_bytes(text(SIZE))
    server = Served(data, images, tftp_port=free_port(socket.SOCK_DGRAM)).start()
    socks: list[socket.socket] = []
    try:
        hold_netascii_read(server.tftp_port, "big.cfg").close()  # the first one loads code
        time.sleep(0.5)
        before = server.rss_kib()
        socks = [hold_netascii_read(server.tftp_port, "big.cfg") for _ in range(READERS)]
        during = 0
        for _ in range(5):  # the readers' transfers are open (31 s before they time out)
            during = max(during, server.rss_kib())
            time.sleep(0.1)
        assert server.proc is not None and server.proc.poll() is None, server.output()
    finally:
        for s in socks:
            s.close()
        server.stop()
    grew = during - before
    FIGURES["tftp netascii: RSS growth KiB, 24 readers of 24 MiB"] = grew
    assert grew < GROWTH_KIB, f"RSS {before} -> {during} KiB with {READERS} netascii readers"

"""One read transfer: send windows of DATA, take ACKs, retransmit on timeout only."""

from __future__ import annotations

import logging
import socket
import struct
import time

from server.tftp import packets
from server.tftp.content import Source, SourceChanged
from server.tftp.options import Negotiated

log = logging.getLogger(__name__)

_UNPACK = packets.OPCODE_BLOCK.unpack_from
_header = packets.data_header
# Linux UDP GSO (4.18+): one sendmsg carries a run of equal-size datagrams (the last may be
# shorter) and the kernel cuts them apart. A window of DATA packets is exactly that, each
# with its own header, so it costs one system call instead of one per block: the send
# loop was all of a windowed transfer's time (py-spy, bench/results).
UDP_SEGMENT: int = getattr(socket, "UDP_SEGMENT", 103)
_GSO_MAX_BYTES = 65000  # UDP payload of one send (64 KiB less the headers)
_GSO_MAX_SEGMENTS = 64  # the kernel's UDP_MAX_SEGMENTS
MAX_RTO = 8.0  # seconds
# However the link loses, duplicates or reorders and however the client ACKs, one transfer
# sends at most this many times its blocks (plus `retries` + 1 windows); past that it ends
# with an ERROR. Resends follow only new ACKs and timeouts, but under RFC 7440 each new ACK
# short of the window's end resends a whole window: EDK2 ACKs every packet that arrives out
# of order, and through a link that loses, duplicates and reorders, an EDK2-like client
# with a 16-block window cost 12 times the file, with a 44-block one 36 times (docs/tftp.md).
# A peer reported a 1.7 MB UEFI download that became ~20 GB. OVMF's own 4-block window cost
# 2.8 times in the lab (tests/e2e/test_windowsize.py).
MAX_SEND_FACTOR = 8
# A duplicate ACK while a window is out brings its resend forward to this share of the timeout.
DUP_ACK_TIMEOUT = 0.25


class Transfer:
    """State of one RRQ after it was accepted. Driven by the service's event loop.

    Block numbers are kept absolute (1, 2, ... beyond 65535) and only the wire form rolls
    over (65535 -> 0, as tftp-hpa, curl, atftp and iPXE expect) so files > 32 MiB at 512
    work. `on_packet` and `on_timeout` return None while running, else the result ("ok" or
    a failure reason).
    """

    __slots__ = (
        "acked",
        "blksize",
        "budget",
        "deadline",
        "expires",
        "fd",
        "filename",
        "gso",
        "max_rto",
        "nblocks",
        "oack",
        "packets",
        "peer",
        "queued",
        "retransmits",
        "retries",
        "rto",
        "rto0",
        "sent",
        "sent_bytes",
        "sock",
        "source",
        "started",
        "tries",
        "window",
    )

    def __init__(
        self,
        sock: socket.socket,
        peer: tuple[str, int],
        filename: str,
        source: Source,
        neg: Negotiated,
        *,
        timeout: float,
        retries: int,
        started: float | None = None,
        life: float = float("inf"),
    ) -> None:
        self.sock, self.peer, self.filename, self.source = sock, peer, filename, source
        self.fd = sock.fileno()  # kept: a closed socket reports -1
        self.blksize, self.window = neg.blksize, neg.windowsize
        # RFC 1350: a block shorter than blksize ends the transfer, so a file that is an exact
        # multiple of blksize (or empty) ends with an empty block.
        self.nblocks = source.size // neg.blksize + 1
        self.oack = packets.encode_oack(neg.oack) if neg.oack else None
        # RFC 2349: the client's timeout option sets our retransmission timeout.
        self.rto0 = float(neg.timeout) if neg.timeout else timeout
        self.rto = self.rto0
        # Back off up to MAX_RTO: a client whose own timer restarts on every duplicate DATA
        # (atftp ignores repeats of a block it already ACKed) only re-ACKs once our gap
        # grows past its timeout.
        self.max_rto = max(self.rto0, MAX_RTO)
        self.retries = retries
        self.acked = self.sent = 0
        # DATA packets sent through _send_window (every windowed send and every resend; the
        # lock-step fast path's first sendings are not counted) and the most allowed.
        self.packets = 0
        self.budget = MAX_SEND_FACTOR * self.nblocks + (retries + 1) * neg.windowsize
        self.tries = self.retransmits = self.sent_bytes = 0
        self.started = time.monotonic() if started is None else started
        # However it goes, the transfer ends `life` seconds after the request: a peer that
        # ACKs just often enough to never time out does not hold its slot for good.
        self.expires = self.started + life
        self.deadline = self.queued = float("inf")
        # Blocks per GSO send; 0 is one send per block (lock-step, or GSO refused).
        seg = neg.blksize + 4
        self.gso = min(_GSO_MAX_SEGMENTS, _GSO_MAX_BYTES // seg) if neg.windowsize > 1 else 0
        if self.gso < 2:
            self.gso = 0

    def begin(self, now: float) -> str | None:
        """Send the OACK (RFC 2347: then wait for ACK 0) or, with no options, DATA 1."""
        if self.oack is not None:
            self._send(self.oack)
            self.deadline = min(now + self.rto, self.expires)
            return None
        return self._send_window(now)

    def on_packet(self, buf: bytes, now: float) -> str | None:
        """Handle a packet from the peer's TID."""
        if len(buf) < 4 or buf[0] != 0:
            return None
        if now >= self.expires:
            return "too_long"
        opcode, block = _UNPACK(buf)
        if opcode == packets.ERROR:
            return "client_error_8" if block == packets.ERR_OPTIONS else "client_error"
        if opcode != packets.ACK:
            log.debug("%s %s: ignored opcode %d", self.peer[0], self.filename, opcode)
            return None
        if self.oack is not None:
            if block != 0:
                return None
            self.oack = None  # RFC 2347: ACK 0 accepts the OACK
            self._reset()
            return self._send_window(now)
        acked = self.acked
        delta = (block - acked) & 0xFFFF
        # RFC 1123 4.2.3.1: a duplicate ACK (delta 0) never triggers a resend (Sorcerer's
        # Apprentice); an ACK outside the window sent is stale and ignored as well.
        if delta == 0 or delta > self.sent - acked:
            if delta == 0 and self.sent > acked and self.window > 1:
                # ...but with a window out it tells of a packet out of order: EDK2 ACKs
                # each one and restarts its count of the window there, so it will not ACK
                # this window's end. The resend stays on the timer, only sooner: a quarter
                # of the timeout. (OVMF's 3 MiB through the lab's lossy relay: 112 s, 92 of
                # them spent waiting out full timeouts; 34 s with this. docs/tftp.md)
                self.deadline = min(self.deadline, now + self.rto0 * DUP_ACK_TIMEOUT)
            return None
        self.acked = acked = acked + delta
        if acked == self.nblocks:
            return "ok"
        self._reset()
        if self.window == 1 and self.sent == acked:
            # Lock-step, the common case (every PXE ROM): the next block in one send. Any
            # trouble takes the general path, which sends the same block and handles it.
            bs = self.blksize
            try:
                chunk = self.source.read(acked * bs, bs)
                self.sock.sendto(_header(acked + 1) + chunk, self.peer)
            except (OSError, SourceChanged):
                return self._send_window(now)
            self.sent = acked + 1
            self.sent_bytes += len(chunk)
            self.deadline = now + self.rto  # not clamped to `expires`: at most one rto late
            return None
        # RFC 7440: ACK of the window's last block -> next window; ACK of an earlier block
        # (the client saw a gap) -> the next window starts right after it.
        return self._send_window(now)

    def on_timeout(self, now: float) -> str | None:
        """Retransmit with exponential backoff (RFC 1123 4.2.3.2); give up after `retries`."""
        if now >= self.expires:
            return "too_long"
        self.tries += 1
        if self.tries > self.retries:
            return "timeout"
        self.rto = min(self.rto * 2, self.max_rto)
        self.retransmits += 1
        if self.oack is not None:
            self._send(self.oack)
            self.deadline = min(now + self.rto, self.expires)
            return None
        return self._send_window(now)

    def _reset(self) -> None:
        self.tries = 0
        self.rto = self.rto0

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, self.peer)
        except OSError as exc:  # full buffer or unreachable: the timeout resends
            log.debug("%s %s: send failed: %s", self.peer[0], self.filename, exc)

    def _send_window(self, now: float) -> str | None:
        bs, src, sock, peer = self.blksize, self.source, self.sock, self.peer
        first = self.acked + 1
        last = min(self.acked + self.window, self.nblocks)
        self.packets += last - first + 1
        if self.packets > self.budget:
            return "too_many_resends"
        block = first
        header = packets.data_header
        try:
            while block <= last:
                n = min(self.gso, last - block + 1)
                if n > 1:
                    parts: list[bytes | memoryview] = []
                    for b in range(block, block + n):
                        parts += (header(b), src.read((b - 1) * bs, bs))
                    buf = b"".join(parts)
                    if self._send_gso(buf):
                        self.sent_bytes += len(buf) - 4 * n
                        block += n
                    continue  # sent, or GSO is off now and the loop sends one by one
                chunk = src.read((block - 1) * bs, bs)
                # One buffer: sendto(header + chunk) beats sendmsg's two-part iovec in Python.
                sock.sendto(header(block) + chunk, peer)
                self.sent_bytes += len(chunk)
                block += 1
        except BlockingIOError:
            pass  # socket buffer full: the rest of the window goes out after the timeout
        except SourceChanged:
            return "file_changed"
        except OSError as exc:
            log.debug("%s %s: send failed: %s", peer[0], self.filename, exc)
            block = last + 1  # counted as sent and lost: the timeout resends
        self.sent = max(self.sent, block - 1)
        self.deadline = min(now + self.rto, self.expires)
        return None

    def _send_gso(self, buf: bytes) -> bool:
        """Send the DATA packets laid end to end in `buf` in one GSO send; False (and GSO off
        for this transfer) if the route refuses it: a segment over the MTU, no checksum
        offload."""
        seg = self.blksize + 4
        try:
            self.sock.sendmsg(
                [buf], [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", seg))], 0, self.peer
            )
        except BlockingIOError:
            raise
        except OSError as exc:
            log.debug(
                "%s %s: no UDP GSO (%s): one send per block", self.peer[0], self.filename, exc
            )
            self.gso = 0
            return False
        return True

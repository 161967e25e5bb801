"""A small TFTP read client that runs many transfers at once in one process.

One epoll loop, one UDP socket per transfer, no per-packet objects: the client must cost
less than the servers it measures. Speaks RFC 1350 lock-step, RFC 2347/2348 options and
RFC 7440 windowsize; checks every byte against the expected SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

RRQ, DATA, ACK, ERROR, OACK = 1, 3, 4, 5, 6  # RFC 1350 opcodes; OACK is RFC 2347
ACK_HEAD = struct.Struct("!HH")


@dataclass
class Result:
    """One finished (or failed) transfer."""

    name: str
    ok: bool
    seconds: float
    nbytes: int
    error: str = ""


@dataclass
class _Transfer:
    name: str
    want_sha: str | None
    sock: socket.socket
    started: float
    blksize: int = 512
    window: int = 1
    expected: int = 1  # next DATA block wanted (not wrapped)
    since_ack: int = 0  # in-order blocks received since the last ACK
    nbytes: int = 0
    peer: tuple[str, int] | None = None
    last_sent: bytes = b""
    last_dest: tuple[str, int] | None = None
    last_rx: float = 0.0
    retries: int = 0
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)


def rrq(name: str, options: dict[str, int]) -> bytes:
    parts = [name.encode(), b"octet"]
    for key, value in options.items():
        parts += [key.encode(), str(value).encode()]
    return struct.pack("!H", RRQ) + b"\0".join(parts) + b"\0"


def parse_oack(payload: bytes) -> dict[str, str]:
    items = payload.split(b"\0")
    out: dict[str, str] = {}
    for i in range(0, len(items) - 1, 2):
        out[items[i].decode(errors="replace").lower()] = items[i + 1].decode(errors="replace")
    return out


class Client:
    """Run TFTP reads against `server`; `run()` returns when every transfer ended."""

    def __init__(
        self,
        server: tuple[str, int],
        *,
        blksize: int = 1468,
        window: int = 1,
        timeout: float = 1.0,
        retries: int = 5,
        deadline: float = 120.0,
    ) -> None:
        self.server = server
        self.options: dict[str, int] = {}
        if blksize != 512:
            self.options["blksize"] = blksize
        if window > 1:
            self.options["windowsize"] = window
        self.timeout = timeout
        self.max_retries = retries
        self.deadline = deadline
        self.ep = select.epoll()
        self.active: dict[int, _Transfer] = {}
        self.results: list[Result] = []
        self.on_done: Callable[[], None] | None = None

    def start(self, name: str, want_sha: str | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        now = time.perf_counter()
        t = _Transfer(name, want_sha, sock, now, last_rx=now)
        self.active[sock.fileno()] = t
        self.ep.register(sock.fileno(), select.EPOLLIN)
        self._send(t, rrq(name, self.options), self.server)

    def _send(self, t: _Transfer, packet: bytes, dest: tuple[str, int]) -> None:
        t.last_sent, t.last_dest = packet, dest
        with contextlib.suppress(BlockingIOError):  # if dropped, the timeout resends it
            t.sock.sendto(packet, dest)

    def _finish(self, t: _Transfer, ok: bool, error: str = "") -> None:
        if ok and t.want_sha is not None and t.hasher.hexdigest() != t.want_sha:
            ok, error = False, "content differs from the file"
        fd = t.sock.fileno()
        self.ep.unregister(fd)
        t.sock.close()
        del self.active[fd]
        elapsed = time.perf_counter() - t.started
        self.results.append(Result(t.name, ok, elapsed, t.nbytes, error))
        if self.on_done is not None:
            self.on_done()

    def _packet(self, t: _Transfer, data: bytes, addr: tuple[str, int]) -> None:
        if t.peer is None:
            t.peer = addr
        elif addr != t.peer:
            t.sock.sendto(struct.pack("!HH", ERROR, 5) + b"unknown transfer ID\0", addr)
            return
        t.last_rx = time.perf_counter()
        t.retries = 0
        op = (data[0] << 8) | data[1]
        if op == DATA:
            block = (data[2] << 8) | data[3]
            if block != t.expected & 0xFFFF:
                if block != (t.expected - 1) & 0xFFFF or t.window == 1:
                    # out of order inside a window, or a resent block: say where we are
                    self._send(t, ACK_HEAD.pack(ACK, (t.expected - 1) & 0xFFFF), addr)
                    t.since_ack = 0
                return
            payload = data[4:]
            t.hasher.update(payload)
            t.nbytes += len(payload)
            t.expected += 1
            t.since_ack += 1
            last = len(payload) < t.blksize
            if last or t.since_ack >= t.window:
                self._send(t, ACK_HEAD.pack(ACK, block), addr)
                t.since_ack = 0
            if last:
                self._finish(t, True)
        elif op == OACK:
            opts = parse_oack(data[2:])
            t.blksize = int(opts.get("blksize", 512))
            t.window = int(opts.get("windowsize", 1))
            self._send(t, ACK_HEAD.pack(ACK, 0), addr)
        elif op == ERROR:
            code = (data[2] << 8) | data[3]
            text = data[4:].rstrip(b"\0").decode(errors="replace")
            self._finish(t, False, f"ERROR {code}: {text}")
        else:
            self._finish(t, False, f"unexpected opcode {op}")

    def _expire(self, now: float) -> None:
        for t in list(self.active.values()):
            if now - t.last_rx < self.timeout:
                continue
            if t.retries >= self.max_retries:
                self._finish(t, False, "timed out")
                continue
            t.retries += 1
            t.last_rx = now
            if t.last_dest is not None:
                self._send(t, t.last_sent, t.last_dest)

    def run(self) -> list[Result]:
        end = time.perf_counter() + self.deadline
        next_check = time.perf_counter() + 0.1
        recv = socket.socket.recvfrom
        while self.active:
            now = time.perf_counter()
            if now > end:
                for late in list(self.active.values()):
                    self._finish(late, False, "benchmark deadline")
                break
            for fd, _ in self.ep.poll(0.05):
                t = self.active.get(fd)
                # a finished transfer's fd may be reused at once by the next one (closed loop)
                while t is not None and self.active.get(fd) is t:
                    try:
                        data, addr = recv(t.sock, 65536)
                    except BlockingIOError:
                        break
                    if len(data) >= 4:
                        self._packet(t, data, addr)
            now = time.perf_counter()
            if now >= next_check:
                self._expire(now)
                next_check = now + 0.1
        self.ep.close()
        return self.results


def fetch_many(
    server: tuple[str, int],
    names: Sequence[str],
    want_sha: dict[str, str] | None = None,
    **kwargs: float,
) -> tuple[float, list[Result]]:
    """Start every transfer at once; the wall time from the first RRQ to the last end."""
    client = Client(server, **kwargs)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for name in names:
        client.start(name, (want_sha or {}).get(name))
    results = client.run()
    return time.perf_counter() - t0, results


def closed_loop(
    server: tuple[str, int],
    name_for: Callable[[int], str],
    *,
    concurrency: int,
    requests: int,
    seconds: float,
    **kwargs: float,
) -> tuple[float, list[Result]]:
    """Keep `concurrency` transfers in flight until `requests` ran or `seconds` passed."""
    client = Client(server, **kwargs)  # type: ignore[arg-type]
    counter = 0
    t0 = time.perf_counter()
    stop_at = t0 + seconds

    def refill() -> None:
        nonlocal counter
        if counter < requests and time.perf_counter() < stop_at:
            client.start(name_for(counter))
            counter += 1

    client.on_done = refill
    for _ in range(concurrency):
        refill()
    results = client.run()
    return time.perf_counter() - t0, results

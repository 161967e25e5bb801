"""An event loop that runs transfers: one thread, its own epoll, sockets and timers.

epoll is used directly, not through `selectors`: a boot storm is one readiness event per
ACK, and the selectors layer adds a key lookup (a method call) and a tuple to each."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.tftp import packets
from server.tftp.content import Source
from server.tftp.options import DEFAULT_MAX_TIMEOUT, negotiate
from server.tftp.stats import TftpStats
from server.tftp.transfer import Transfer

log = logging.getLogger("server.tftp.server")  # one logger for the service's transfer lines

Peer = tuple[str, int]

# With many transfers running, the next ACK is microseconds away. A loop that sleeps in
# epoll whenever it has caught up is woken by the client's send each time: in a 200-client
# storm ours slept 5,000-11,000 times (dnsmasq, whose poll() over every socket is slower
# and so always finds work, ~200), and each sleep and wake-up costs both processes CPU on
# two shared cores. So while at least SPIN_TRANSFERS run, the loop polls without blocking
# up to SPIN_POLLS times (~60 µs) before it sleeps: 700-2,500 sleeps per storm, and the
# storm's wall ~4 % shorter for ~8 % more server CPU (docs/tftp.md).
SPIN_POLLS = 50
SPIN_TRANSFERS = 32
# Ends the client is told of (ERROR 0 with this text); a timeout or a client's ERROR is not.
_TOLD = {
    "file_changed": "file_changed",
    "shutdown": "shutdown",
    "too_long": "transfer took too long",
    "too_many_resends": "too many retransmissions",
}


@dataclass
class Request:
    """An RRQ the listener accepted; a worker opens (or renders) it, a loop sends it."""

    peer: Peer
    local: str
    filename: str
    options: dict[str, str]
    relpath: str  # the name normalised (paths.normalize)
    dynamic: bool  # a boot config from the resolver, not a file
    mode: str = "octet"
    received: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class LoopConfig:
    max_blksize: int
    max_windowsize: int
    timeout: float
    retries: int
    max_timeout: int = DEFAULT_MAX_TIMEOUT  # the largest `timeout` option honoured
    max_life: float = float("inf")  # seconds from the request to the end, whatever happens


class EventLoop:
    """Runs the transfers handed to it with `submit`; calls `release(peer, file)` at the end."""

    def __init__(
        self, name: str, config: LoopConfig, stats: TftpStats, release: Callable[[Peer, str], None]
    ) -> None:
        self.name, self.config, self.stats, self._release = name, config, stats, release
        self._ready: queue.SimpleQueue[tuple[Request, Source]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._epoll = select.epoll()
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)
        self._wake_fd = self._wake_r.fileno()
        self._by_fd: dict[int, Transfer] = {}  # the transfers, by their socket's descriptor
        self.begun = 0  # transfers this loop has started
        self._timers: list[tuple[float, int, Transfer]] = []
        self._seq = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End all transfers (ERROR 0 to their peers), close everything, join the thread."""
        self._stopping = True
        self._wake()
        self._thread.join()

    def submit(self, req: Request, source: Source) -> None:
        """Hand over a request and its opened content (from any thread)."""
        self._ready.put((req, source))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already awake (buffer full) or closing
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        empty = 0  # polls in a row that found nothing
        try:
            while not self._stopping:
                now = time.monotonic()
                if empty < SPIN_POLLS and len(self._by_fd) >= SPIN_TRANSFERS:
                    wait = 0.0  # busy: look again rather than sleep (see SPIN_POLLS)
                elif self._timers:
                    wait = min(1.0, max(0.0, self._timers[0][0] - now))
                else:
                    wait = 1.0
                try:
                    events = self._epoll.poll(wait)
                except InterruptedError:
                    continue
                empty = 0 if events else empty + 1
                now = time.monotonic()
                by_fd = self._by_fd
                for fd, _ in events:
                    t = by_fd.get(fd)
                    if t is not None:
                        self._guarded(self._on_transfer, t, now)
                    elif fd == self._wake_fd:
                        self._on_ready(now)
                self._expire(now)
        except Exception:
            log.exception("tftp event loop %s failed", self.name)
        finally:
            self._shutdown()

    def _on_ready(self, now: float) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
        while not self._stopping:
            try:
                req, source = self._ready.get_nowait()
            except queue.Empty:
                return
            try:
                self._begin(req, source, now)
            except Exception:
                log.exception("tftp %s %s: cannot start", req.peer[0], req.filename)
                source.close()
                self._release(req.peer, req.filename)

    def _begin(self, req: Request, source: Source, now: float) -> None:
        cfg = self.config
        neg = negotiate(
            req.options,
            size=source.size,
            max_blksize=cfg.max_blksize,
            max_windowsize=cfg.max_windowsize,
            max_timeout=cfg.max_timeout,
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # RFC 1350: the transfer runs from a fresh TID; replying from the address the
            # request arrived on keeps multi-homed clients and firewalls happy.
            sock.bind((req.local, 0))
            if neg.windowsize > 1:  # RFC 7440: a whole window leaves at once
                want = min(neg.windowsize * (neg.blksize + 64), 4 << 20)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, want)
        except OSError:
            sock.close()
            raise
        t = Transfer(
            sock,
            req.peer,
            req.filename,
            source,
            neg,
            timeout=cfg.timeout,
            retries=cfg.retries,
            started=req.received,
            life=cfg.max_life,
        )
        self._by_fd[sock.fileno()] = t
        self.begun += 1
        self.stats.transfer_started()
        self._epoll.register(sock.fileno(), select.EPOLLIN)
        result = t.begin(now)
        if result is not None:
            self._finish(t, result, now)
        else:
            self._arm(t)

    def _on_transfer(self, t: Transfer, now: float) -> None:
        # One datagram per readiness event: lock-step transfers have exactly one ACK
        # waiting, and epoll (level-triggered) reports the socket again if more are queued.
        try:
            buf, addr = t.sock.recvfrom(2048)
        except OSError as exc:  # BlockingIOError included: nothing there after all
            log.debug("%s %s: receive failed: %s", t.peer[0], t.filename, exc)
            return
        if addr != t.peer:
            # RFC 1350 section 4: a packet from a wrong TID gets ERROR 5 at its source;
            # the transfer itself is not touched. An ERROR is never answered.
            if not (len(buf) >= 2 and buf[1] == packets.ERROR):
                self._send_error(t.sock, addr, packets.ERR_UNKNOWN_TID, "unknown transfer ID")
            return
        result = t.on_packet(buf, now)
        if result is not None:
            self._finish(t, result, now)
        elif t.deadline < t.queued:  # _arm's test, inline: this runs once per packet
            self._arm(t)

    def _send_error(self, sock: socket.socket, addr: Peer, code: int, message: str) -> None:
        try:
            sock.sendto(packets.encode_error(code, message), addr)
        except OSError:
            return
        self.stats.error_sent(code)

    def _arm(self, t: Transfer) -> None:
        if t.deadline < t.queued:
            t.queued = t.deadline
            heapq.heappush(self._timers, (t.deadline, next(self._seq), t))

    def _expire(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, t = heapq.heappop(timers)
            if deadline != t.queued or self._by_fd.get(t.fd) is not t:
                continue  # superseded by an earlier deadline, or finished
            t.queued = float("inf")
            self._guarded(self._on_timer, t, now)

    def _on_timer(self, t: Transfer, now: float) -> None:
        if t.deadline > now:
            self._arm(t)
            return
        result = t.on_timeout(now)
        if result is not None:
            self._finish(t, result, now)
        else:
            self._arm(t)

    def _guarded(self, handler: Callable[[Transfer, float], None], t: Transfer, now: float) -> None:
        """Run a handler; a bug hit by one transfer ends that transfer, not the loop."""
        try:
            handler(t, now)
        except Exception:
            log.exception("tftp %s %s: internal error", t.peer[0], t.filename)
            if self._by_fd.get(t.fd) is t:
                with contextlib.suppress(Exception):
                    self._finish(t, "internal_error", now)

    def _finish(self, t: Transfer, result: str, now: float) -> None:
        if result in _TOLD:
            self._send_error(t.sock, t.peer, packets.ERR_UNDEFINED, _TOLD[result])
        del self._by_fd[t.fd]
        self._epoll.unregister(t.fd)
        t.sock.close()
        t.source.close()
        self._release(t.peer, t.filename)
        self.stats.transfer_finished(result, t.sent_bytes, t.retransmits)
        log.info(
            "tftp %s:%d %s: %s, %d bytes in %.3fs (blksize %d, windowsize %d, %d resent)",
            t.peer[0],
            t.peer[1],
            t.filename,
            result,
            t.source.size if result == "ok" else t.acked * t.blksize,
            now - t.started,
            t.blksize,
            t.window,
            t.retransmits,
        )

    def _shutdown(self) -> None:
        now = time.monotonic()
        for t in list(self._by_fd.values()):
            self._finish(t, "shutdown", now)
        while True:
            try:
                req, source = self._ready.get_nowait()
            except queue.Empty:
                break
            source.close()
            self._release(req.peer, req.filename)
        self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()

"""Bootfleet's TFTP service: tftpy's packet classes under our own selectors event loop.

Why not tftpy's TftpServer: its single select() loop does file I/O and INFO logging per
packet, ends listen() on several malformed packets, answers a wrong TID by disturbing the
transfer, follows symlinks out of its root, accepts uploads, and knows neither windowsize
nor timeout. Fixing that meant replacing most of TftpServer/TftpContexts/TftpStates, so we
keep tftpy where it is sound - parsing requests and options (TftpPacketFactory,
TftpPacketRRQ/WRQ) and encoding OACK and ERROR packets - and own the dispatch here:

* one event-loop thread (selectors/epoll) owns all sockets and transfer state;
* a small thread pool does the slow part of a request (path checks, open, read or render
  via the resolver), so a slow boot decision never stalls other clients' packets;
* each transfer gets a socket bound to the address the request arrived on (IP_PKTINFO).
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import logging
import os
import queue
import resource
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from server.tftp import names, packets, paths
from server.tftp.content import (
    NETASCII_MAX,
    FileCache,
    FileSource,
    MemorySource,
    Source,
    to_netascii,
)
from server.tftp.dynamic import DynamicFailed, DynamicFiles
from server.tftp.options import negotiate
from server.tftp.stats import TftpStats
from server.tftp.transfer import Transfer

log = logging.getLogger(__name__)

IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)  # Linux value; typeshed lacks the name
_PKTINFO = struct.Struct("=I4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_ANC_SIZE = socket.CMSG_SPACE(_PKTINFO.size)
_BURST = 64  # packets handled per socket per wake-up, for fairness


@dataclass
class _Request:
    peer: tuple[str, int]
    local: str
    filename: str
    mode: str
    options: dict[str, str]
    source: Source | None = None
    error: tuple[int, str] | None = None
    received: float = field(default_factory=time.monotonic)


class TftpService:
    """A read-only TFTP server for `root`, with boot configs from `dynamic`."""

    def __init__(
        self,
        root: Path,
        dynamic: DynamicFiles | None = None,
        *,
        host: str = "0.0.0.0",
        port: int = 69,
        max_blksize: int = 1468,
        max_windowsize: int = 64,
        max_transfers: int = 500,
        per_source_max: int = 64,
        timeout: float = 1.0,
        retries: int = 5,
        workers: int = 4,
        stats: TftpStats | None = None,
        cache: FileCache | None = None,
    ) -> None:
        if not 8 <= max_blksize <= 65464:
            raise ValueError("max_blksize must be within 8..65464 (RFC 2348)")
        self.root, self.dynamic = Path(root), dynamic
        self.host, self._port = host, port
        self.max_blksize, self.max_windowsize = max_blksize, max(1, max_windowsize)
        self.max_transfers, self.per_source_max = max_transfers, per_source_max
        self.timeout, self.retries = timeout, retries
        self.stats = stats or TftpStats()
        self.cache = cache or FileCache()
        self._workers = workers
        self._thread: threading.Thread | None = None
        self._stopping = False
        tftpy_log = logging.getLogger("tftpy")
        if tftpy_log.level == logging.NOTSET:  # its per-packet logging costs throughput
            tftpy_log.setLevel(logging.WARNING)

    @property
    def port(self) -> int:
        """The bound UDP port (useful with port=0)."""
        return self._port

    def start(self) -> None:
        """Bind the listener and run the event loop in a thread; returns once bound."""
        _raise_fd_limit(2 * self.max_transfers + 256)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._listener.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self._listener.bind((self.host, self._port))
        except OSError:
            self._listener.close()
            raise
        self._listener.setblocking(False)
        self._port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, "listener")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._ready: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="tftp-prepare")
        self._peers: dict[tuple[str, int], Transfer | None] = {}  # None while preparing
        self._per_source: Counter[str] = Counter()
        self._timers: list[tuple[float, int, Transfer]] = []
        self._seq = itertools.count()
        self._broadcasts = _broadcast_addresses()
        self._broadcasts_at = time.monotonic()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tftp", daemon=True)
        self._thread.start()
        log.info("tftp serving %s on %s:%d", self.root, self.host, self._port)

    def stop(self) -> None:
        """Stop serving: active transfers get ERROR 0, sockets close, threads are joined."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake()
        self._thread.join()
        self._thread = None

    def __enter__(self) -> TftpService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- event loop -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                now = time.monotonic()
                wait = min(1.0, max(0.0, self._timers[0][0] - now)) if self._timers else 1.0
                events = self._sel.select(wait)
                now = time.monotonic()
                for key, _ in events:
                    if key.data == "listener":
                        self._on_listener(now)
                    elif key.data == "wake":
                        self._on_ready(now)
                    else:
                        self._on_transfer(key.data, now)
                self._expire(now)
        except Exception:
            log.exception("tftp event loop failed")
        finally:
            self._shutdown()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already awake (buffer full) or closing
            self._wake_w.send(b"\0")

    def _on_listener(self, now: float) -> None:
        for _ in range(_BURST):
            try:
                buf, anc, flags, addr = self._listener.recvmsg(2048, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("listener receive failed: %s", exc)
                return
            local, dest = self.host, self.host
            for level, kind, data in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    _, spec_dst, hdr_dst = _PKTINFO.unpack_from(data)
                    local, dest = socket.inet_ntoa(spec_dst), socket.inet_ntoa(hdr_dst)
            try:
                self._on_request(buf, flags, addr, local, dest, now)
            except Exception:  # never let one packet end the loop
                log.exception("request from %s failed", addr)

    def _on_request(
        self, buf: bytes, flags: int, addr: tuple[str, int], local: str, dest: str, now: float
    ) -> None:
        if self._is_broadcast(dest, now):
            # RFC 1123 4.2.3.4: ignore requests sent to a broadcast address.
            self.stats.packet_ignored("broadcast")
            return
        if len(buf) >= 2 and buf[0] == 0 and buf[1] == packets.ERROR:
            self.stats.packet_ignored("stray_error")  # RFC 1350: never answer an ERROR
            return
        if flags & socket.MSG_TRUNC:
            buf = buf[: packets.MAX_REQUEST + 1]  # parse_request refuses it as too long
        try:
            pkt = packets.parse_request(buf)
        except packets.MalformedRequest as exc:
            self.stats.packet_ignored("malformed")
            log.debug("%s:%d malformed request: %s", addr[0], addr[1], exc.message)
            self._reply(addr, local, exc.code, exc.message)
            return
        if pkt.opcode == packets.WRQ:
            log.info("tftp %s:%d %s: write request refused", addr[0], addr[1], pkt.filename)
            self._reply(addr, local, packets.ERR_ACCESS, "uploads are disabled")
            return
        if addr in self._peers:
            return  # the client resent its RRQ; the transfer already answers it
        if len(self._peers) >= self.max_transfers:
            self._refuse(addr, local, pkt.filename, "global")
            return
        if self._per_source[addr[0]] >= self.per_source_max:
            self._refuse(addr, local, pkt.filename, "per_source")
            return
        self._peers[addr] = None
        self._per_source[addr[0]] += 1
        opts = dict(pkt.options)
        req = _Request(addr, local, pkt.filename, pkt.mode, opts, received=now)
        self._pool.submit(self._prepare, req)

    def _refuse(self, addr: tuple[str, int], local: str, filename: str, cap: str) -> None:
        self.stats.refused_by_cap(cap)
        log.info("tftp %s:%d %s: refused, %s transfer cap reached", addr[0], addr[1], filename, cap)
        # No code fits exactly; firmware retries on any error. RFC 1350 code 0 + message.
        self._reply(addr, local, packets.ERR_UNDEFINED, "server busy, try again")

    def _reply(self, addr: tuple[str, int], local: str, code: int, message: str) -> None:
        """ERROR from the listener, with the request's destination as source (IP_PKTINFO)."""
        anc = []
        if local and local != "0.0.0.0":
            info = _PKTINFO.pack(0, socket.inet_aton(local), b"\0\0\0\0")
            anc = [(socket.IPPROTO_IP, IP_PKTINFO, info)]
        try:
            self._listener.sendmsg([packets.encode_error(code, message)], anc, 0, addr)
        except OSError as exc:
            log.debug("error reply to %s failed: %s", addr, exc)
            return
        self.stats.error_sent(code)

    # --- preparing a transfer (worker threads) ---------------------------------------------

    def _prepare(self, req: _Request) -> None:
        try:
            req.source = self._open(req.filename, req.mode, req.peer[0])
        except paths.Refused as exc:
            req.error = (exc.code, exc.message)
        except DynamicFailed as exc:
            req.error = (packets.ERR_UNDEFINED, str(exc))
        except Exception:
            log.exception("tftp %s %s: cannot prepare", req.peer[0], req.filename)
            req.error = (packets.ERR_UNDEFINED, "internal error")
        self._ready.put(req)
        self._wake()

    def _open(self, filename: str, mode: str, peer: str) -> Source:
        relpath = paths.normalize(filename)
        try:
            dynamic = names.parse(relpath) is not None
        except names.NoSuchDynamicFile:
            raise paths.Refused(packets.ERR_NOT_FOUND, "file not found") from None
        source: Source
        if dynamic:
            data = self.dynamic(relpath, peer) if self.dynamic else None
            if data is None:
                raise paths.Refused(packets.ERR_NOT_FOUND, "file not found")
            source = MemorySource(data)
        else:
            fd, st = paths.open_regular(self.root, relpath)
            try:
                cached = self.cache.get(fd, st)
            except BaseException:
                os.close(fd)
                raise
            if cached is None:
                source = FileSource(fd, st.st_size)
            else:
                os.close(fd)
                source = MemorySource(cached)
        if mode == "netascii":
            if source.size > NETASCII_MAX:
                source.close()
                raise paths.Refused(packets.ERR_ACCESS, "file too large for netascii")
            data = bytes(source.read(0, source.size))
            source.close()
            source = MemorySource(to_netascii(data))
        return source

    # --- running transfers (event loop) ----------------------------------------------------

    def _on_ready(self, now: float) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                req = self._ready.get_nowait()
            except queue.Empty:
                return
            try:
                self._begin(req, now)
            except Exception:
                log.exception("tftp %s %s: cannot start", req.peer[0], req.filename)
                if req.source is not None:
                    req.source.close()
                self._release(req.peer)

    def _begin(self, req: _Request, now: float) -> None:
        peer = req.peer
        if req.error is not None or req.source is None:
            code, message = req.error or (packets.ERR_UNDEFINED, "internal error")
            self._release(peer)
            log.info("tftp %s:%d %s: error %d %s", peer[0], peer[1], req.filename, code, message)
            self._reply(peer, req.local, code, message)
            return
        neg = negotiate(
            req.options,
            size=req.source.size,
            max_blksize=self.max_blksize,
            max_windowsize=self.max_windowsize,
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # RFC 1350: the transfer runs from a fresh TID; replying from the address the
            # request arrived on keeps multi-homed clients and firewalls happy.
            sock.bind((req.local, 0))
        except OSError:
            sock.close()
            raise
        t = Transfer(
            sock,
            peer,
            req.filename,
            req.source,
            neg,
            timeout=self.timeout,
            retries=self.retries,
        )
        t.started = req.received
        self._peers[peer] = t
        self.stats.transfer_started()
        self._sel.register(sock, selectors.EVENT_READ, t)
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
            # the transfer itself is not touched.
            if not (len(buf) >= 2 and buf[1] == packets.ERROR):
                self._send_tid_error(t.sock, addr)
            return
        result = t.on_packet(buf, now)
        if result is not None:
            self._finish(t, result, now)
        else:
            self._arm(t)

    def _send_tid_error(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        try:
            sock.sendto(packets.encode_error(packets.ERR_UNKNOWN_TID, "unknown transfer ID"), addr)
        except OSError:
            return
        self.stats.error_sent(packets.ERR_UNKNOWN_TID)

    def _arm(self, t: Transfer) -> None:
        if t.deadline < t.queued:
            t.queued = t.deadline
            heapq.heappush(self._timers, (t.deadline, next(self._seq), t))

    def _expire(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, t = heapq.heappop(timers)
            if deadline != t.queued or self._peers.get(t.peer) is not t:
                continue  # superseded by an earlier deadline, or finished
            t.queued = float("inf")
            if t.deadline > now:
                self._arm(t)
                continue
            result = t.on_timeout(now)
            if result is not None:
                self._finish(t, result, now)
            else:
                self._arm(t)

    def _finish(self, t: Transfer, result: str, now: float) -> None:
        if result in ("file_changed", "shutdown"):
            try:
                t.sock.sendto(packets.encode_error(packets.ERR_UNDEFINED, result), t.peer)
                self.stats.error_sent(packets.ERR_UNDEFINED)
            except OSError:
                pass
        self._sel.unregister(t.sock)
        t.sock.close()
        t.source.close()
        self._release(t.peer)
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

    def _release(self, peer: tuple[str, int]) -> None:
        if self._peers.pop(peer, False) is not False:
            self._per_source[peer[0]] -= 1
            if self._per_source[peer[0]] <= 0:
                del self._per_source[peer[0]]

    def _is_broadcast(self, dest: str, now: float) -> bool:
        if dest == "255.255.255.255" or 224 <= int(dest.split(".", 1)[0]) <= 239:
            return True
        if now - self._broadcasts_at > 30:  # interfaces come and go
            self._broadcasts, self._broadcasts_at = _broadcast_addresses(), now
        return dest in self._broadcasts

    def _shutdown(self) -> None:
        now = time.monotonic()
        for t in [t for t in self._peers.values() if t is not None]:
            self._finish(t, "shutdown", now)
        self._pool.shutdown(wait=True, cancel_futures=True)
        while True:
            try:
                req = self._ready.get_nowait()
            except queue.Empty:
                break
            if req.source is not None:
                req.source.close()
        self._peers.clear()
        self._per_source.clear()
        self._sel.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        log.info("tftp on %s:%d stopped", self.host, self._port)


def _broadcast_addresses() -> set[str]:
    """IPv4 broadcast addresses of this host's subnets (best effort, from netifaces).

    Computed from address and netmask: netifaces reports the interface's own address as
    "broadcast" for a veth configured without `brd`, which would make us ignore unicast.
    """
    try:
        import netifaces
    except ImportError:
        return set()
    found: set[str] = set()
    local: set[str] = set()
    try:
        for iface in netifaces.interfaces():
            for entry in netifaces.ifaddresses(iface).get(netifaces.AF_INET, []):
                addr, mask = entry.get("addr"), entry.get("netmask")
                if not addr:
                    continue
                local.add(addr)
                net = ipaddress.IPv4Interface(f"{addr}/{mask or 32}").network
                if net.prefixlen <= 30:  # /31 and /32 have no broadcast address
                    found.add(str(net.broadcast_address))
    except (OSError, ValueError):
        pass
    return found - local


def _raise_fd_limit(wanted: int) -> None:
    """Each transfer holds a socket (and a large file an fd): lift the soft limit if low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            log.warning("cannot raise the open-file limit to %d", wanted)

"""Bootfleet's TFTP service: tftpy's packet classes under our own selectors event loop.

Why not tftpy's TftpServer: its single select() loop does file I/O and INFO logging per
packet, ends listen() on several malformed packets, answers a wrong TID by disturbing the
transfer, follows symlinks out of its root, accepts uploads, and knows neither windowsize
nor timeout. Fixing that meant replacing most of TftpServer/TftpContexts/TftpStates, so we
keep tftpy where it is sound - parsing requests and options (TftpPacketFactory,
TftpPacketRRQ/WRQ) and encoding OACK and ERROR packets - and own the dispatch here:

* a listener thread reads requests, refuses what it must and enforces the caps;
* a small thread pool does the slow part of a request (path checks, open, read or render
  via the resolver), so a slow boot decision never stalls other clients' packets;
* `loops` event-loop threads (loop.py, epoll; one by default, see docs/tftp.md) each own a
  share of the transfers;
* each transfer gets a socket bound to the address the request arrived on (IP_PKTINFO).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import resource
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from server.tftp import names, packets, paths
from server.tftp.content import (
    FILE_CHUNK,
    NETASCII_CHUNK,
    NETASCII_MAX,
    FileCache,
    FileSource,
    MemorySource,
    NetasciiSource,
    Source,
)
from server.tftp.dynamic import DynamicFailed, DynamicFiles
from server.tftp.loop import EventLoop, LoopConfig, Peer, Request
from server.tftp.options import DEFAULT_MAX_TIMEOUT, MAX_BLKSIZE, MIN_BLKSIZE
from server.tftp.stats import TftpStats

log = logging.getLogger(__name__)

IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)  # Linux value; typeshed lacks the name
_PKTINFO = struct.Struct("=I4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_ANC_SIZE = socket.CMSG_SPACE(_PKTINFO.size)
# A transfer ends this long after its request, done or not. TFTP carries boot loaders (a
# few MiB: seconds); 64 MiB lock-step at 512 bytes is 131,072 round trips, ~130 s at 1 ms.
DEFAULT_MAX_TRANSFER_SECONDS = 300


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
        max_timeout: int = DEFAULT_MAX_TIMEOUT,
        max_transfer_seconds: float = DEFAULT_MAX_TRANSFER_SECONDS,
        workers: int = 4,
        loops: int = 1,
        stats: TftpStats | None = None,
        cache: FileCache | None = None,
    ) -> None:
        if not MIN_BLKSIZE <= max_blksize <= MAX_BLKSIZE:
            raise ValueError(f"max_blksize must be within {MIN_BLKSIZE}..{MAX_BLKSIZE} (RFC 2348)")
        self.root, self.dynamic = Path(root), dynamic
        self.host, self._port = host, port
        self.max_blksize, self.max_windowsize = max_blksize, max(1, max_windowsize)
        self.max_transfers, self.per_source_max = max_transfers, per_source_max
        self.timeout, self.retries = timeout, retries
        self.max_timeout, self.max_transfer_seconds = max_timeout, max_transfer_seconds
        self.stats = stats or TftpStats()
        self.cache = cache or FileCache()
        self.workers, self._nloops = workers, max(1, loops)
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
        """Bind the listener and start the threads; returns once bound."""
        _raise_fd_limit(2 * self.max_transfers + 256)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._listener.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self._listener.bind((self.host, self._port))
        except OSError:
            self._listener.close()
            raise
        self._port = self._listener.getsockname()[1]
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()  # stop() wakes the listener thread
        self._lock = threading.Lock()
        # (peer, file) of transfers being prepared or running: a resent RRQ is recognised,
        # while a client that reuses its port for the next file is not held up.
        self._active: set[tuple[Peer, str]] = set()
        self._per_source: Counter[str] = Counter()
        self._broadcasts = _broadcast_addresses()
        self._broadcasts_at = time.monotonic()
        config = LoopConfig(
            self.max_blksize,
            self.max_windowsize,
            self.timeout,
            self.retries,
            self.max_timeout,
            self.max_transfer_seconds,
        )
        self._loops = [
            EventLoop(f"tftp-loop-{i}", config, self.stats, self._release)
            for i in range(self._nloops)
        ]
        self._next_loop = itertools.count()
        for loop in self._loops:
            loop.start()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tftp-files")
        self._dynamic_pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tftp-dynamic")
        self._stopping = False
        self._thread = threading.Thread(target=self._listen, name="tftp-listener", daemon=True)
        self._thread.start()
        log.info("tftp serving %s on %s:%d", self.root, self.host, self._port)

    def stop(self) -> None:
        """Stop serving: active transfers get ERROR 0, sockets close, threads are joined."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake_w.send(b"\0")
        self._thread.join()
        self._thread = None
        for pool in (self._pool, self._dynamic_pool):
            pool.shutdown(wait=True, cancel_futures=True)
        for loop in self._loops:
            loop.stop()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        log.info("tftp on %s:%d stopped", self.host, self._port)

    def __enter__(self) -> TftpService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- requests (listener thread) ---------------------------------------------------------

    def _listen(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                sel.select()
                self._drain_listener()

    def _drain_listener(self) -> None:
        while not self._stopping:
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
                self._on_request(buf, flags, addr, local, dest)
            except Exception:  # never let one packet end the listener
                log.exception("request from %s failed", addr)

    def _on_request(self, buf: bytes, flags: int, addr: Peer, local: str, dest: str) -> None:
        if self._is_broadcast(dest):
            # RFC 1123 4.2.3.4: ignore requests sent to a broadcast address.
            self.stats.packet_ignored("broadcast")
            return
        if len(buf) < 2 or buf[0] != 0 or buf[1] not in (packets.RRQ, packets.WRQ):
            # Not a request: no TID to answer for, and an ERROR in reply to a few spoofed
            # bytes would make us a reflector. RFC 1350: an ERROR is never answered anyway.
            self.stats.packet_ignored("not_a_request")
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
        try:  # the name, once: where it lives decides the pool (and may refuse it)
            relpath = paths.normalize(pkt.filename)
            dynamic = names.parse(relpath) is not None
        except paths.Refused as exc:
            self._fail(addr, local, pkt.filename, exc.code, exc.message)
            return
        except names.NoSuchDynamicFile:
            self._fail(addr, local, pkt.filename, packets.ERR_NOT_FOUND, "file not found")
            return
        with self._lock:
            key = (addr, pkt.filename)
            if key in self._active:
                return  # the client resent its RRQ; the transfer already answers it
            if len(self._active) >= self.max_transfers:
                cap = "global"
            elif self._per_source[addr[0]] >= self.per_source_max:
                cap = "per_source"
            else:
                cap = ""
                self._active.add(key)
                self._per_source[addr[0]] += 1
        if cap:
            self.stats.refused_by_cap(cap)
            log.info("tftp %s:%d %s: refused, %s cap reached", addr[0], addr[1], pkt.filename, cap)
            # No code fits exactly; firmware retries on any error. RFC 1350 code 0 + message.
            self._reply(addr, local, packets.ERR_UNDEFINED, "server busy, try again")
            return
        # Boot configs wait on the resolver (a database); their own pool keeps a slow or hung
        # resolver from holding up the boot loaders.
        pool = self._dynamic_pool if dynamic else self._pool
        req = Request(addr, local, pkt.filename, dict(pkt.options), relpath, dynamic, pkt.mode)
        pool.submit(self._prepare, req)

    def _reply(self, addr: Peer, local: str, code: int, message: str) -> None:
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

    def _release(self, peer: Peer, filename: str) -> None:
        """Free the caps' slot of a transfer that ended (called from any thread)."""
        with self._lock:
            if (peer, filename) in self._active:
                self._active.discard((peer, filename))
                self._per_source[peer[0]] -= 1
                if self._per_source[peer[0]] <= 0:
                    del self._per_source[peer[0]]

    def _is_broadcast(self, dest: str) -> bool:
        if dest == "255.255.255.255" or 224 <= int(dest.split(".", 1)[0]) <= 239:
            return True
        now = time.monotonic()
        if now - self._broadcasts_at > 30:  # interfaces come and go
            self._broadcasts, self._broadcasts_at = _broadcast_addresses(), now
        return dest in self._broadcasts

    # --- preparing a transfer (worker threads) ---------------------------------------------

    def _prepare(self, req: Request) -> None:
        try:
            source = self._open(req.relpath, req.dynamic, req.mode, req.peer[0])
        except Exception as exc:
            if isinstance(exc, paths.Refused):
                code, message = exc.code, exc.message
            elif isinstance(exc, DynamicFailed):
                code, message = packets.ERR_UNDEFINED, str(exc)
            else:
                log.exception("tftp %s %s: cannot prepare", req.peer[0], req.filename)
                code, message = packets.ERR_UNDEFINED, "internal error"
            self._release(req.peer, req.filename)
            self._fail(req.peer, req.local, req.filename, code, message)
            return
        loop = self._loops[next(self._next_loop) % len(self._loops)]
        loop.submit(req, source)

    def _fail(self, peer: Peer, local: str, filename: str, code: int, message: str) -> None:
        log.info("tftp %s:%d %s: error %d %s", peer[0], peer[1], filename, code, message)
        self._reply(peer, local, code, message)

    def _open(self, relpath: str, dynamic: bool, mode: str, peer: str) -> Source:
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
                # netascii converts NETASCII_CHUNK at a time: read no more than that ahead
                chunk = NETASCII_CHUNK if mode == "netascii" else FILE_CHUNK
                source = FileSource(fd, st.st_size, chunk)
            else:
                os.close(fd)
                source = MemorySource(cached)
        if mode == "netascii":
            if source.size > NETASCII_MAX:
                source.close()
                raise paths.Refused(packets.ERR_ACCESS, "file too large for netascii")
            try:
                source = NetasciiSource(source)
            except BaseException:
                source.close()
                raise
        return source


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

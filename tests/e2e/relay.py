"""A lossy TFTP relay inside the lab namespace: firmware <-> relay <-> a real TFTP server.

The kernel here has no sch_netem, so the bad link is made in userspace. The relay listens on
its own address on the lab bridge, port 69 (DHCP names it as the TFTP server). Each request
opens a session with two fresh sockets: one faces the server (the request goes to the
server's port 69, the transfer to the TID it answers from), one faces the client (which so
sees a new TID, as from a real server). Every datagram, each way, is lost, duplicated,
delayed or let jump the queue by a seeded generator: two relays with the same seed make the
same decisions in the same order.

Counted per session, at the relay, before the impairment: what the server sent (datagrams
by kind, DATA payload bytes, distinct blocks), the request's options, and the times of the
request and of the client's ACK of the last block (the fetch is complete only then).
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.reliability.impair import Addr, Impairer

from .lab import _enter_netns


@dataclass(frozen=True)
class Impairment:
    loss: float = 0.02
    duplicate: float = 0.02
    reorder: float = 0.05
    delay: float = 0.004  # seconds; most packets wait 0.5-1.5 times this, reordered ones not
    seed: int = 7440


@dataclass
class Session:
    """One request and its transfer, as seen by the relay."""

    client: Addr
    filename: str
    options: dict[str, str]
    requested: float
    to_server: socket.socket
    to_client: socket.socket
    server: Addr | None = None  # the server's TID, once it answered
    from_server: Counter[str] = field(default_factory=Counter)  # datagrams by kind
    data_bytes: int = 0  # DATA payload bytes the server sent, repeats included
    blocks: set[int] = field(default_factory=set)  # distinct DATA block numbers (wire form)
    blksize: int = 512
    last_block: int | None = None  # the short block that ends the file
    size: int = 0  # bytes in the distinct blocks
    done: float | None = None  # when the client's ACK of the last block passed the relay
    client_errors: list[bytes] = field(default_factory=list)

    @property
    def data_packets(self) -> int:
        return self.from_server["DATA"]

    @property
    def resent(self) -> int:
        """DATA datagrams beyond one per block: retransmissions (timeout or window)."""
        return self.data_packets - len(self.blocks)


OPCODES = {1: "RRQ", 2: "WRQ", 3: "DATA", 4: "ACK", 5: "ERROR", 6: "OACK"}


def parse_request(buf: bytes) -> tuple[str, dict[str, str]]:
    parts = buf[2:].split(b"\0")
    words = [p.decode("latin-1") for p in parts[:-1]] if parts and parts[-1] == b"" else []
    if len(words) < 2:
        return "", {}
    options = {words[i].lower(): words[i + 1] for i in range(2, len(words) - 1, 2)}
    return words[0], options


class LossyRelay:
    """Run with `start()`/`close()`; `sessions` holds every request seen, in order."""

    def __init__(
        self, netns: str, address: str, server: Addr, impairment: Impairment = Impairment()
    ) -> None:
        self.netns, self.address, self.upstream = netns, address, server
        self.impairment = impairment
        self.link = Impairer(**vars(impairment))
        self.counts = self.link.counts
        self.sessions: list[Session] = []
        self._by_client: dict[Addr, Session] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"relay-{address}", daemon=True)

    def start(self) -> LossyRelay:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def transfer(self, filename: str) -> Session | None:
        """The session that carried `filename` furthest (PXE first asks only its size)."""
        mine = [s for s in self.sessions if s.filename == filename]
        return max(mine, key=lambda s: (s.done is not None, len(s.blocks)), default=None)

    # --- the loop, in its own thread inside the namespace --------------------------------

    def _main(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            _enter_netns(self.netns)
            listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            listener.bind((self.address, 69))
            sel.register(listener, selectors.EVENT_READ, None)
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            sel.close()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(self.link.wait()):
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    buf, addr = sock.recvfrom(70000)
                    if key.data is None:
                        self._on_request(sel, buf, addr)
                    else:
                        session, from_client = key.data
                        self._on_transfer(session, from_client, buf, addr)
                self.link.flush()
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            sel.close()

    def _on_request(self, sel: selectors.BaseSelector, buf: bytes, client: Addr) -> None:
        session = self._by_client.get(client)
        if session is None:  # a new request (a resent one goes the same way as the first)
            name, options = parse_request(buf)
            pair = []
            for _ in range(2):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((self.address, 0))
                pair.append(s)
            session = Session(client, name, options, time.monotonic(), pair[0], pair[1])
            if "blksize" in options and options["blksize"].isdigit():
                session.blksize = int(options["blksize"])  # until the OACK says otherwise
            self._by_client[client] = session
            self.sessions.append(session)
            sel.register(pair[0], selectors.EVENT_READ, (session, False))
            sel.register(pair[1], selectors.EVENT_READ, (session, True))
        self.link.schedule(session.to_server, buf, self.upstream)

    def _on_transfer(self, session: Session, from_client: bool, buf: bytes, addr: Addr) -> None:
        opcode = struct.unpack("!H", buf[:2])[0] if len(buf) >= 2 else 0
        if from_client:
            if session.server is None:
                return
            last = session.last_block
            if opcode == 4 and session.done is None and buf[2:4] == struct.pack("!H", last or 0):
                session.done = time.monotonic() if last is not None else None
            if opcode == 5:
                session.client_errors.append(buf[4:].rstrip(b"\0"))
            self.link.schedule(session.to_server, buf, session.server)
            return
        session.server = addr
        kind = OPCODES.get(opcode, "other")
        session.from_server[kind] += 1
        if kind == "OACK":
            _, options = parse_request(b"\0\6\0octet\0" + buf[2:])
            if options.get("blksize", "").isdigit():
                session.blksize = int(options["blksize"])
        elif kind == "DATA":
            block = struct.unpack("!H", buf[2:4])[0]
            payload = len(buf) - 4
            session.data_bytes += payload
            if block not in session.blocks:
                session.blocks.add(block)
                session.size += payload
            if payload < session.blksize:
                session.last_block = block
        self.link.schedule(session.to_client, buf, session.client)

"""A userspace stand-in for tc netem, for kernels without sch_netem: a UDP relay between one
TFTP client and the server that loses, duplicates, delays and so reorders packets, each
way, from a seeded generator (a run is reproducible decision for decision). `Impairer` is
the bad link itself, shared with the lab's relay (tests/e2e/relay.py)."""

from __future__ import annotations

import heapq
import itertools
import random
import selectors
import socket
import threading
import time
from collections import Counter

Addr = tuple[str, int]


class Impairer:
    """Decides each datagram's fate (lost, duplicated, delayed or sent at once, so ahead of
    the delayed ones) and holds the delayed ones until they are due."""

    def __init__(
        self, *, loss: float, duplicate: float, reorder: float, delay: float, seed: int
    ) -> None:
        self.loss, self.duplicate, self.reorder, self.delay = loss, duplicate, reorder, delay
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self._queue: list[tuple[float, int, socket.socket, bytes, Addr]] = []
        self._seq = itertools.count()

    def schedule(self, out: socket.socket, data: bytes, target: Addr) -> None:
        now = time.monotonic()
        if self.rng.random() < self.loss:
            self.counts["lost"] += 1
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        self.counts["duplicated"] += copies - 1
        for _ in range(copies):
            # most packets wait `delay` (+ jitter); a reordered one jumps the queue
            if self.rng.random() < self.reorder:
                at = now
                self.counts["reordered"] += 1
            else:
                at = now + self.delay * (0.5 + self.rng.random())
            heapq.heappush(self._queue, (at, next(self._seq), out, data, target))
        self.counts["passed"] += 1

    def wait(self, limit: float = 0.05) -> float:
        """Seconds a select() may sleep before the next datagram is due."""
        if not self._queue:
            return limit
        return max(0.0, min(limit, self._queue[0][0] - time.monotonic()))

    def flush(self) -> None:
        """Send every datagram that is due."""
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            _at, _n, out, data, target = heapq.heappop(self._queue)
            out.sendto(data, target)


class ImpairedRelay:
    def __init__(
        self,
        server: Addr,
        *,
        loss: float = 0.05,
        duplicate: float = 0.10,
        reorder: float = 0.25,
        delay: float = 0.004,
        seed: int = 2544,
    ) -> None:
        self.listener = server
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind((server[0], 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind((server[0], 0))
        self.port = self.front.getsockname()[1]
        self.link = Impairer(
            loss=loss, duplicate=duplicate, reorder=reorder, delay=delay, seed=seed
        )
        self.counts = self.link.counts
        self.client: Addr | None = None
        self.server: Addr | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="impaired-relay", daemon=True)

    def __enter__(self) -> ImpairedRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.front.close()
        self.back.close()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.front, selectors.EVENT_READ, True)
        sel.register(self.back, selectors.EVENT_READ, False)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(self.link.wait()):
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    data, addr = sock.recvfrom(70000)
                    if key.data:  # from the client
                        self.client = addr
                        is_request = data[:2] in (b"\0\1", b"\0\2")
                        target = self.listener if is_request else self.server
                        if target is not None:
                            self.link.schedule(self.back, data, target)
                    else:
                        self.server = addr
                        if self.client is not None:
                            self.link.schedule(self.front, data, self.client)
                self.link.flush()
        finally:
            sel.close()

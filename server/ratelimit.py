"""Per-source token buckets for what unauthenticated machines may call: the boot scripts
(/boot.ipxe, /ipxe) and the installer callbacks (/api/v1/installs/...).

Boot networks are flat L2 segments, so every machine has its own source address and a
per-address limit does not punish a classroom; the defaults are generous (a machine needs a
handful of these calls per install). The number of tracked addresses is capped, so spoofed
sources cannot grow memory without bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

LIMITED_PREFIXES = ("/boot.ipxe", "/ipxe", "/api/v1/installs/")
MAX_SOURCES = 65536


def applies(path: str) -> bool:
    """Whether requests for `path` count against their source's bucket."""
    return path.startswith(LIMITED_PREFIXES)


class RateLimiter:
    """`rate` requests per second per source, in bursts of up to `burst`; rate 0 is off."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_sources = max_sources
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, source: str) -> float:
        """Spend one token of `source`: 0.0 if allowed, else seconds until the next token."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(source, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[source] = (tokens, now)  # most recently used last
            while len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)  # forget the longest-idle source
            return wait

    def sources(self) -> int:
        with self._lock:
            return len(self._buckets)

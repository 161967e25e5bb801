"""Option negotiation for read requests (RFC 2347, 2348, 2349, 7440)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_BLKSIZE = 512  # RFC 1350
MIN_BLKSIZE, MAX_BLKSIZE = 8, 65464  # RFC 2348
MIN_TIMEOUT, MAX_TIMEOUT = 1, 255  # RFC 2349
# The largest `timeout` honoured by default: the gap our backoff grows to anyway
# (transfer.MAX_RTO). A silent peer that asked 255 held its slot 6 x 255 s.
DEFAULT_MAX_TIMEOUT = 8
MIN_WINDOW, MAX_WINDOW = 1, 65535  # RFC 7440
# A window leaves as one burst. A client's default UDP receive buffer (Linux: 208 KiB of
# kernel memory, several KiB per datagram) drops the tail of bigger bursts: atftp at
# blksize 8192 lost most windows of 16 and more blocks. So a window also stays within this
# many bytes of DATA (RFC 7440 lets us answer a smaller windowsize).
WINDOW_BYTES = 64 << 10


@dataclass(frozen=True)
class Negotiated:
    """What a transfer runs with; `oack` is empty when no option was accepted."""

    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: int | None = None
    oack: dict[str, str] = field(default_factory=dict)


def _number(text: str) -> int | None:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    return int(text)


def negotiate(
    requested: Mapping[str, str],
    *,
    size: int,
    max_blksize: int,
    max_windowsize: int,
    max_timeout: int = DEFAULT_MAX_TIMEOUT,
    window_bytes: int = WINDOW_BYTES,
) -> Negotiated:
    """Accept what we support from `requested`, echoing the client's spelling of each name.

    RFC 2347: names and values are case-insensitive; unknown or invalid options are ignored
    (left out of the OACK); the OACK holds only options the client asked for.
    """
    blksize, windowsize, timeout = DEFAULT_BLKSIZE, 1, None
    oack: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in requested.items():
        key = name.lower()
        if key in seen:  # a repeated option: the first one counts
            continue
        seen.add(key)
        number = _number(value)
        if number is None:
            continue
        if key == "blksize" and number >= MIN_BLKSIZE:
            # RFC 2348: answer with a size <= the request; clamp to our (MTU-derived) maximum.
            blksize = min(number, max_blksize, MAX_BLKSIZE)
            oack[name] = str(blksize)
        elif key == "tsize" and size > 0:
            # RFC 2349: on a read request the client sends 0 and we answer the size. For an
            # empty file we leave tsize out (RFC 2347 lets us ignore any option): curl 7.88
            # aborts on "tsize 0" in an OACK ("invalid tsize value in OACK packet").
            oack[name] = str(size)
        elif key == "timeout" and MIN_TIMEOUT <= number <= min(max_timeout, MAX_TIMEOUT):
            # RFC 2349: accept by echoing the value; the OACK may not answer another one, so
            # a longer timeout is left out and our own applies.
            timeout = number
            oack[name] = str(number)
        elif key == "windowsize" and number >= MIN_WINDOW:
            windowsize = min(number, max_windowsize, MAX_WINDOW)  # RFC 7440: <= request
            oack[name] = str(windowsize)
    for name in oack:
        if name.lower() == "windowsize":  # needs the final blksize, whatever the order
            windowsize = max(1, min(windowsize, window_bytes // blksize))
            oack[name] = str(windowsize)
    return Negotiated(blksize=blksize, windowsize=windowsize, timeout=timeout, oack=oack)

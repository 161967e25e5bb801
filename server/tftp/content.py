"""Where DATA comes from: small files cached in memory, large ones read in big chunks."""

from __future__ import annotations

import os
import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict
from typing import Protocol

# netascii is converted as it is sent, but sized at open by a pass over the whole file (tsize
# and the last block need the converted size): that pass is what this bounds. Nobody boots
# a large text file.
NETASCII_MAX = 64 << 20
FILE_CHUNK = 256 << 10  # bytes a large file is read ahead by
NETASCII_CHUNK = 64 << 10  # raw bytes converted at a time


class SourceChanged(Exception):
    """The file got shorter than it was when the transfer began."""


class Source(Protocol):
    size: int

    def read(self, offset: int, length: int) -> bytes | memoryview: ...

    def close(self) -> None: ...


class MemorySource:
    """Content held in memory (cached boot loaders, rendered configs, netascii)."""

    __slots__ = ("_view", "size")

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self.size = len(data)

    def read(self, offset: int, length: int) -> memoryview:
        return self._view[offset : offset + length]

    def close(self) -> None:
        self._view.release()


class FileSource:
    """A large file read with pread in chunks of `chunk` bytes; the size is fixed at open."""

    __slots__ = ("_buf", "_chunk", "_fd", "_start", "size")

    def __init__(self, fd: int, size: int, chunk: int = FILE_CHUNK) -> None:
        self._fd, self.size, self._chunk = fd, size, chunk
        self._buf, self._start = b"", 0

    def read(self, offset: int, length: int) -> bytes | memoryview:
        end = min(offset + length, self.size)
        if not (self._start <= offset and end <= self._start + len(self._buf)):
            want = min(max(self._chunk, length), self.size - offset)
            self._buf, self._start = os.pread(self._fd, want, offset), offset
            if len(self._buf) < want:
                raise SourceChanged(f"expected {want} bytes at offset {offset}")
        return memoryview(self._buf)[offset - self._start : end - self._start]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FileCache:
    """LRU of whole small files keyed by identity and version (dev, inode, size, mtime)."""

    def __init__(self, max_bytes: int = 256 << 20, max_file: int = 16 << 20) -> None:
        self.max_bytes, self.max_file = max_bytes, max_file
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self._total = 0

    def get(self, fd: int, st: os.stat_result) -> bytes | None:
        """Return the whole file (from cache or read now), or None if it is too large."""
        if st.st_size > self.max_file:
            return None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
                return data
        data = _read_all(fd, st.st_size)
        with self._lock:
            if key not in self._items and len(data) <= self.max_bytes:
                self._items[key] = data
                self._total += len(data)
                while self._total > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._total -= len(old)
        return data


def _read_all(fd: int, size: int) -> bytes:
    parts, offset = [], 0
    while offset < size:
        part = os.pread(fd, min(size - offset, 4 << 20), offset)
        if not part:
            raise SourceChanged(f"expected {size} bytes")
        parts.append(part)
        offset += len(part)
    return b"".join(parts)


class NetasciiSource:
    """`inner` in netascii, converted as it is read, so no transfer holds a converted copy.

    Each raw byte becomes one or two bytes on its own (to_netascii), so any raw chunk
    converts alone. A pass at open counts where each chunk starts in the converted stream
    (and the size). A block may end inside a pair (CR | LF, CR | NUL): blocks are cut from
    the converted chunk, so the pair's second byte begins the next block. A retransmission
    goes back at most one window, reconverting the chunk it falls in.
    """

    __slots__ = ("_buf", "_chunk", "_inner", "_start", "_starts", "size")

    def __init__(self, inner: Source, chunk: int = NETASCII_CHUNK) -> None:
        self._inner, self._chunk = inner, chunk
        self._starts = array("q", [0])  # converted offset of raw chunk k; then the size
        total = 0
        for offset in range(0, inner.size, chunk):
            raw = bytes(inner.read(offset, min(chunk, inner.size - offset)))
            total += len(raw) + raw.count(b"\r") + raw.count(b"\n")
            self._starts.append(total)
        self.size = total
        self._buf, self._start = b"", 0

    def read(self, offset: int, length: int) -> memoryview:
        end = min(offset + length, self.size)
        if not (self._start <= offset and end <= self._start + len(self._buf)):
            k = bisect_right(self._starts, offset) - 1
            parts = [self._convert(k)]
            start = reach = self._starts[k]
            reach += len(parts[0])
            while reach < end:  # the block runs into the next chunk
                k += 1
                parts.append(self._convert(k))
                reach += len(parts[-1])
            self._buf, self._start = b"".join(parts), start
        return memoryview(self._buf)[offset - self._start : end - self._start]

    def _convert(self, k: int) -> bytes:
        offset = k * self._chunk
        raw = self._inner.read(offset, min(self._chunk, self._inner.size - offset))
        out = to_netascii(bytes(raw))
        if len(out) != self._starts[k + 1] - self._starts[k]:
            raise SourceChanged(f"netascii chunk {k} changed size")
        return out

    def close(self) -> None:
        self._buf = b""
        self._inner.close()


def to_netascii(data: bytes) -> bytes:
    """RFC 764/1350 netascii: CR -> CR NUL, LF -> CR LF (Unix text files have bare LF)."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")

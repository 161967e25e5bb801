"""Where DATA comes from: small files cached in memory, large ones read in big chunks."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Protocol

NETASCII_MAX = 64 << 20  # netascii is converted in memory; nobody boots a large text file


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

    def __init__(self, fd: int, size: int, chunk: int = 256 << 10) -> None:
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


def to_netascii(data: bytes) -> bytes:
    """RFC 764/1350 netascii: CR -> CR NUL, LF -> CR LF (Unix text files have bare LF)."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")

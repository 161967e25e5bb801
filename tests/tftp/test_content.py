"""File sources, the small-file cache and netascii conversion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.tftp.content import (
    FileCache,
    FileSource,
    MemorySource,
    NetasciiSource,
    SourceChanged,
    to_netascii,
)


def test_netascii() -> None:
    assert to_netascii(b"a\nb\rc\r\nd") == b"a\r\nb\r\0c\r\0\r\nd"


# Raw texts for the streamed conversion, read in chunks of 4 raw bytes: pairs cut at every
# place of a chunk and a block, bare CRs, CR LF already in the file, and nothing at all.
NETASCII_TEXTS = [
    b"",
    b"\n",
    b"\r",
    b"abc\rdef\nghi\r\n",
    b"\r\n" * 9,
    b"x\n" * 11,
    bytes(range(256)),
]


@pytest.mark.parametrize("raw", NETASCII_TEXTS)
@pytest.mark.parametrize("blksize", [1, 2, 3, 5, 8])
def test_netascii_stream_equals_the_whole_conversion(raw: bytes, blksize: int) -> None:
    want = to_netascii(raw)
    src = NetasciiSource(MemorySource(raw), chunk=4)
    assert src.size == len(want)
    blocks = [bytes(src.read(off, blksize)) for off in range(0, src.size + 1, blksize)]
    assert b"".join(blocks) == want
    for off in reversed(range(0, src.size + 1, blksize)):  # windows going back (resends)
        assert bytes(src.read(off, blksize)) == want[off : off + blksize]


def test_netascii_stream_notices_a_changed_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"a\nb" * 1000)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    src = NetasciiSource(FileSource(fd, 3000, chunk=100), chunk=100)
    try:
        (tmp_path / "f").write_bytes(b"a\nb" * 100 + b"ab\n\n" * 675)  # same size, more LF
        assert bytes(src.read(0, 100)) == to_netascii(b"a\nb" * 100)[:100]  # unchanged part
        with pytest.raises(SourceChanged):
            src.read(1000, 512)
    finally:
        src.close()


def test_file_source_reads_across_chunks(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    (tmp_path / "f").write_bytes(data)
    src = FileSource(os.open(tmp_path / "f", os.O_RDONLY), len(data), chunk=1000)
    try:
        got = b"".join(bytes(src.read(off, 300)) for off in range(0, len(data), 300))
        assert got == data
        assert bytes(src.read(9_900, 300)) == data[9_900:]
        assert bytes(src.read(0, 300)) == data[:300]  # going back re-reads
    finally:
        src.close()


def test_file_source_notices_a_shrunk_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 5000)
    src = FileSource(os.open(tmp_path / "f", os.O_RDONLY), 5000, chunk=1000)
    try:
        os.truncate(tmp_path / "f", 100)
        with pytest.raises(SourceChanged):
            src.read(2000, 512)
    finally:
        src.close()


def test_cache_hits_and_sees_new_versions(tmp_path: Path) -> None:
    cache = FileCache(max_bytes=100, max_file=60)
    path = tmp_path / "f"
    path.write_bytes(b"a" * 50)

    def get() -> bytes | None:
        fd = os.open(path, os.O_RDONLY)
        try:
            return cache.get(fd, os.fstat(fd))
        finally:
            os.close(fd)

    first = get()
    assert first == b"a" * 50 and get() is first
    path.write_bytes(b"b" * 40)  # new size and mtime: a new key
    assert get() == b"b" * 40
    path.write_bytes(b"c" * 61)
    assert get() is None  # too large to cache: the caller streams it


def test_memory_source() -> None:
    src = MemorySource(b"0123456789")
    assert bytes(src.read(8, 5)) == b"89" and src.size == 10

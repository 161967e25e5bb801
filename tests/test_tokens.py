"""The site key: made whole or not at all, the same for two starters at once, and an empty or
truncated one refused with a line naming the file (the web session key derives from it)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from server.errors import StartupError
from server.tokens import TOKEN_BYTES, load_site_key
from tests.serve import Served

WHOLE = bytes(range(TOKEN_BYTES)).hex()


def test_first_use_makes_a_whole_private_key(tmp_path: Path) -> None:
    key = load_site_key(tmp_path / "data")
    path = tmp_path / "data" / "site.key"
    assert len(key) == TOKEN_BYTES
    assert path.read_text() == key.hex() + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["site.key"]  # no temporary file left
    assert load_site_key(tmp_path / "data") == key


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "empty"),  # a crash between creating the file and writing it
        ("\n", "empty"),
        (WHOLE[:32] + "\n", "16 of 32 bytes"),  # cut short on a byte boundary
        (WHOLE[:63], "not hex digits"),  # ... or inside one
        ("z" * 64 + "\n", "not hex digits"),
    ],
)
def test_a_broken_key_is_refused_naming_the_file(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "site.key").write_text(text)
    with pytest.raises(StartupError) as caught:
        load_site_key(tmp_path)
    message = caught.value.message
    assert str(tmp_path / "site.key") in message and why in message
    assert "\n" not in message
    assert (tmp_path / "site.key").read_text() == text  # left for the operator to restore


def _start_together(barrier: multiprocessing.synchronize.Barrier, dirs: list[Path]) -> None:
    for d in dirs:
        barrier.wait()
        key = load_site_key(d)
        (d / f"got-{multiprocessing.current_process().pid}").write_text(key.hex())


def test_two_starters_at_once_use_one_key(tmp_path: Path) -> None:
    dirs = [tmp_path / f"d{i}" for i in range(150)]
    for d in dirs:
        d.mkdir()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2, timeout=30)
    procs = [ctx.Process(target=_start_together, args=(barrier, dirs)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    for d in dirs:
        on_disk = (d / "site.key").read_text().strip()
        got = [g.read_text() for g in d.glob("got-*")]
        assert got == [on_disk, on_disk], d
        assert len(bytes.fromhex(on_disk)) == TOKEN_BYTES
        assert sorted(p.name for p in d.iterdir() if not p.name.startswith("got-")) == ["site.key"]


def _slow_writer(barrier: multiprocessing.synchronize.Barrier, d: Path) -> None:
    write = os.write

    def slow(fd: int, data: bytes) -> int:
        time.sleep(0.5)  # a slow disk, or a crash, between making the file and filling it
        return write(fd, data)

    os.write = slow  # this process only
    barrier.wait()
    (d / "got-slow").write_text(load_site_key(d).hex())


def _quick_starter(barrier: multiprocessing.synchronize.Barrier, d: Path) -> None:
    barrier.wait()
    time.sleep(0.2)  # while the slow one writes
    (d / "got-quick").write_text(load_site_key(d).hex())


def test_a_starter_never_reads_a_key_still_being_written(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2, timeout=30)
    procs = [
        ctx.Process(target=f, args=(barrier, tmp_path)) for f in (_slow_writer, _quick_starter)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    on_disk = (tmp_path / "site.key").read_text().strip()
    assert len(bytes.fromhex(on_disk)) == TOKEN_BYTES
    assert (tmp_path / "got-slow").read_text() == on_disk
    assert (tmp_path / "got-quick").read_text() == on_disk


def test_serve_with_an_empty_key_stops_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "site.key").write_text("")
    server = Served(tmp_path / "data", tmp_path / "img").start(wait=False)
    status, out = server.wait_exit(), server.output()
    assert status == 1, out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if str(tmp_path / "data" / "site.key") in line]
    assert len(lines) == 1 and "empty" in lines[0], out

"""py-spy samples of a Bootfleet process while a section runs, summed per function."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Frames where a thread waits rather than works; dropped so the shares are of busy time.
IDLE = (
    "Condition.wait",
    "Event.wait",
    "wait (threading",
    "_worker (concurrent",
    "select (sel",
    "poll (wasyncore",
)


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


@contextmanager
def sampled(pid: int, seconds: int, raw: Path, *, gil: bool = False) -> Iterator[None]:
    """Record `pid` for up to `seconds` while the block runs (nothing if py-spy is missing).

    `gil=True` keeps only samples of the thread holding the GIL: for a many-threaded server
    that is where the CPU goes, without threads that merely wait for a lock or the GIL."""
    exe = py_spy()
    proc = None
    if exe is not None:
        argv = [exe, "record", "-p", str(pid), "-d", str(seconds), "-r", "200"]
        argv += ["-f", "raw", "-o", str(raw), "--nonblocking"] + (["--gil"] if gil else [])
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        if proc is not None:
            proc.wait(timeout=seconds + 30)


def _name(frame: str) -> str:
    func, _, where = frame.partition(" (")
    return f"{func} ({where.split(':')[0].rsplit('/', 1)[-1]})" if where else func


def summarize(raw: Path, top: int = 15) -> list[tuple[str, float, float]]:
    """(function, % of busy samples inside it, % spent in its own code), busiest first."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        return []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if any(mark in frames[-1] for mark in IDLE):
            continue
        n = int(count)
        total += n
        for name in {_name(f) for f in frames}:
            inclusive[name] += n
        own[_name(frames[-1])] += n
    if not total:
        return []
    ranked = sorted(own, key=lambda k: own[k], reverse=True)[:top]
    return [(k, 100 * inclusive[k] / total, 100 * own[k] / total) for k in ranked]

"""Event loops: transfers spread over however many loops there are, each byte-exact, and a
socket descriptor reused by the next transfer is never confused with the finished one."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server.tftp.loop import SPIN_TRANSFERS

from .conftest import ServiceFactory
from .helpers import Raw, download, payload


@pytest.mark.parametrize("loops", [1, 3])
def test_parallel_downloads_over_loops(
    make_service: ServiceFactory, root: Path, tmp_path: Path, loops: int
) -> None:
    files = {}
    for i in range(12):
        data = payload(40_000 + 997 * i, seed=i)
        (root / f"p{i}.bin").write_bytes(data)
        files[f"p{i}.bin"] = hashlib.sha256(data).hexdigest()
    service = make_service(loops=loops, max_blksize=1468)
    out = tmp_path / "out"
    out.mkdir()

    def fetch(name: str) -> str:
        done = download("curl", service.port, name, out / name, blksize=1468)
        assert done.returncode == 0, done.stderr
        return hashlib.sha256((out / name).read_bytes()).hexdigest()

    for _round in range(2):  # the second round reuses the first round's descriptors
        with ThreadPoolExecutor(12) as pool:
            got = dict(zip(files, pool.map(fetch, files), strict=True))
        assert got == files
    assert service.stats.results["ok"] == 24 and service.stats.active == 0
    assert [loop.begun for loop in service._loops] == [24 // loops] * loops  # round robin


def test_a_busy_loop_that_goes_quiet_sleeps(make_service: ServiceFactory, root: Path) -> None:
    """With SPIN_TRANSFERS or more transfers the loop polls without blocking for a while
    before it sleeps; when their clients all fall silent it must still go to sleep, not burn
    a core until the timers fire."""
    (root / "quiet.bin").write_bytes(payload(5000))
    service = make_service(timeout=5.0, retries=1)
    clients = [Raw(service.port) for _ in range(SPIN_TRANSFERS + 8)]
    try:
        for c in clients:
            c.rrq("quiet.bin")
        for c in clients:
            opcode, block, _, _ = c.recv()  # DATA 1, then never an ACK
            assert (opcode, block) == (3, 1)
        assert service.stats.active == len(clients)
        cpu = time.process_time()
        time.sleep(1.0)
        assert time.process_time() - cpu < 0.3  # spinning through it would be ~1.0
        assert service.stats.active == len(clients)  # still waiting for their ACKs
    finally:
        for c in clients:
            c.close()

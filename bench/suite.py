"""The benchmark sections. Each takes the running servers and returns plain figures."""

from __future__ import annotations

import functools
import hashlib
import math
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import httpload, tftpc
from bench.peers import LOOPBACK, READY_FILE, Server, cpu_seconds, machine_cpu, rss_kib
from bench.registry import UNREGISTERED

KERNEL = "kernel.bin"  # 14 MiB
LOADER = "loader.bin"  # 1 MiB
BIG = "big.img"  # 1 GiB, sparse
KERNEL_SIZE = 14 << 20
LOADER_SIZE = 1 << 20


def make_tree(root: Path) -> dict[str, str]:
    """The files every server serves; returns their SHA-256 by name."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    files = {KERNEL: os.urandom(KERNEL_SIZE), LOADER: os.urandom(LOADER_SIZE), READY_FILE: b"ok\n"}
    sums = {}
    for name, data in files.items():
        (root / name).write_bytes(data)
        os.chmod(root / name, 0o644)
        sums[name] = hashlib.sha256(data).hexdigest()
    with open(root / BIG, "wb") as f:
        f.truncate(1 << 30)
    os.chmod(root / BIG, 0o644)
    return sums


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


# --- 1. single transfer with curl ----------------------------------------------------------


def curl_tftp(port: int, name: str, blksize: int, expect: int) -> float:
    url = f"tftp://{LOOPBACK}:{port}/{name}"
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", "--max-time", "120"]
    argv += ["--tftp-blksize", str(blksize), url]
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=150, check=True).stdout
    seconds = time.perf_counter() - t0
    if int(float(out or 0)) != expect:
        raise RuntimeError(f"curl got {out} bytes of {name}, expected {expect}")
    return seconds


def single(servers: list[Server], blksizes: tuple[int, ...], repeat: int) -> dict[str, Any]:
    out: dict[str, dict[int, list[float]]] = {s.name: {b: [] for b in blksizes} for s in servers}
    for _ in range(repeat):  # interleaved, so a noisy second hits every server alike
        for b in blksizes:
            for s in servers:
                assert s.tftp_port is not None
                out[s.name][b].append(curl_tftp(s.tftp_port, KERNEL, b, KERNEL_SIZE))
    return out


# --- 2. boot storm --------------------------------------------------------------------------


@contextmanager
def rss_watch(pid: int, period: float = 0.05) -> Iterator[list[int]]:
    """Sample the resident set of `pid` (and children) while the block runs; KiB."""
    samples: list[int] = [rss_kib(pid)]
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(period):
            samples.append(rss_kib(pid))

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield samples
    finally:
        stop.set()
        t.join()
        samples.append(rss_kib(pid))


@contextmanager
def cpu_watch(server: Server) -> Iterator[dict[str, float]]:
    """CPU seconds the server, this process (the client) and the machine used while the
    block ran, and the machine's busy share of all its cores: whether the two shared cores,
    not the server, set the wall time. The server's is NaN where it cannot be accounted."""
    out: dict[str, float] = {}
    server0, client0, (busy0, total0) = cpu_seconds(server.pid), _own_cpu(), machine_cpu()
    try:
        yield out
    finally:
        busy, total = machine_cpu()
        used = cpu_seconds(server.pid) - server0
        out["server_cpu"] = used if server.cpu_accounted else math.nan
        out["client_cpu"] = _own_cpu() - client0
        out["machine_busy"] = (busy - busy0) / (total - total0) if total > total0 else math.nan


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def storm_once(server: Server, clients: int, sums: dict[str, str]) -> dict[str, float]:
    assert server.tftp_port is not None
    with rss_watch(server.pid) as rss, cpu_watch(server) as cpu:
        wall, results = tftpc.fetch_many(
            (LOOPBACK, server.tftp_port),
            [LOADER] * clients,
            sums,
            blksize=1468,
            timeout=1.0,
            retries=5,
            deadline=120,
        )
    times = [r.seconds for r in results if r.ok]
    failures = [r for r in results if not r.ok]
    return {
        "wall": wall,
        "failed": len(failures),
        "p50": pct(times, 50),
        "p99": pct(times, 99),
        "rss_peak_mib": max(rss) / 1024,
        **cpu,
        "first_error": failures[0].error if failures else "",  # type: ignore[dict-item]
    }


def storm(
    servers: list[Server], sizes: tuple[int, ...], repeat: int, sums: dict[str, str]
) -> dict[int, dict[str, list[dict[str, float]]]]:
    out: dict[int, dict[str, list[dict[str, float]]]] = {
        n: {s.name: [] for s in servers} for n in sizes
    }
    for _ in range(repeat):
        for n in sizes:
            for s in servers:
                out[n][s.name].append(storm_once(s, n, sums))
                time.sleep(0.5)  # let forked children (tftp-hpa) exit
    return out


# --- 3. RFC 7440 windowsize -----------------------------------------------------------------


def window(
    servers: list[Server], windows: tuple[int, ...], repeat: int, sums: dict[str, str]
) -> dict[str, dict[int, list[float]]]:
    """14 MiB at blksize 1468 with our own client: Bootfleet at each windowsize, the peers
    (which do not implement RFC 7440) lock-step."""
    out: dict[str, dict[int, list[float]]] = {
        s.name: {w: [] for w in (windows if s.name == "bootfleet" else (1,))} for s in servers
    }
    for _ in range(repeat):
        for w in windows:
            for s in servers:
                if w not in out[s.name]:
                    continue  # peers without RFC 7440 answer lock-step whatever is asked
                assert s.tftp_port is not None
                wall, results = tftpc.fetch_many(
                    (LOOPBACK, s.tftp_port), [KERNEL], sums, blksize=1468, window=w, deadline=120
                )
                if not results[0].ok:
                    raise RuntimeError(f"{s.name} windowsize {w}: {results[0].error}")
                out[s.name][w].append(wall)
    return out


# --- 4. boot decision -----------------------------------------------------------------------


def ipxe_http(
    bootfleet: Server, nginx: Server, nginx_root: Path, clients: int, work: Path, seconds: int
) -> dict[str, Any]:
    """/ipxe over HTTP for rotating registered MACs, for MACs nobody registered (each boot
    counted in the discovered list: a write), and nginx's static file of that size."""
    assert bootfleet.http_port is not None and nginx.http_port is not None
    import urllib.request

    url = f"http://{LOOPBACK}:{bootfleet.http_port}/ipxe?mac=52:54:00:00:00:07&arch=x86_64"
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read()
    (nginx_root / "ipxe-same-size.txt").write_bytes(b"#" * len(body))
    script = httpload.write_rotate_script(work / "rotate-macs.lua", clients)
    # 2,000 machines nobody registered, booting again and again (a lab before its import)
    unknown = httpload.write_rotate_script(work / "unknown-macs.lua", 2000, base=UNREGISTERED)
    base = f"http://{LOOPBACK}:{bootfleet.http_port}"
    loads = {
        "bootfleet": (bootfleet, base, script),
        "unregistered": (bootfleet, base, unknown),
        "nginx": (nginx, f"http://{LOOPBACK}:{nginx.http_port}/ipxe-same-size.txt", None),
        # the same server's static iPXE script (no registry): what Flask + waitress cost
        "static_route": (bootfleet, f"{base}/boot.ipxe", None),
    }
    # Each gets an untimed 2 s warm-up first: right after the 100,000-row import the first
    # seconds read a cold index, which is not the steady state.
    for _, target, lua in loads.values():
        httpload.wrk(target, seconds=2, connections=16, script=lua)
    out: dict[str, Any] = {"size": len(body)}
    for name, (server, target, lua) in loads.items():
        with cpu_watch(server) as cpu:
            load = httpload.wrk(target, seconds=seconds, connections=16, script=lua)
        out[name] = {**load.__dict__, **_per_request(cpu, load.requests)}
    return out


def _per_request(cpu: dict[str, float], requests: int) -> dict[str, float]:
    """The server's CPU per request (µs) and the machine's busy share during a load."""
    us = cpu["server_cpu"] / requests * 1e6 if requests else math.nan
    return {"server_cpu_us": us, "machine_busy": cpu["machine_busy"]}


def tftp_config(
    servers: list[tuple[str, Server, Callable[[int], str]]], requests: int, seconds: float
) -> dict[str, dict[str, float]]:
    """Small-file TFTP request rate and latency with 16 requests in flight."""
    out = {}
    for label, server, name_for in servers:
        assert server.tftp_port is not None
        load = functools.partial(
            tftpc.closed_loop,
            (LOOPBACK, server.tftp_port),
            name_for,
            concurrency=16,
            seconds=seconds,
            blksize=1468,
            timeout=1.0,
            retries=3,
            deadline=seconds + 10,
        )
        load(requests=min(requests, 1000))  # untimed warm-up: pools started, pages read
        with cpu_watch(server) as cpu:
            wall, results = load(requests=requests)
        times = [r.seconds * 1000 for r in results if r.ok]
        out[label] = {
            "requests_per_s": len(times) / wall,
            "p50_ms": pct(times, 50),
            "p99_ms": pct(times, 99),
            "failed": sum(1 for r in results if not r.ok),
            "requests": len(results),
            **_per_request(cpu, len(results)),
        }
    return out


# --- 6. memory through a 1 GiB download ----------------------------------------------------


def big_download(server: Server) -> dict[str, float]:
    assert server.http_port is not None
    url = f"http://{LOOPBACK}:{server.http_port}/images/{BIG}"
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", "--max-time", "300", url]
    before = rss_kib(server.pid) / 1024
    t0 = time.perf_counter()
    with rss_watch(server.pid) as rss:
        got = subprocess.run(argv, capture_output=True, text=True, timeout=320, check=True).stdout
    seconds = time.perf_counter() - t0
    if int(float(got)) != 1 << 30:
        raise RuntimeError(f"1 GiB download got {got} bytes")
    return {
        "seconds": seconds,
        "rss_before_mib": before,
        "rss_max_mib": max(rss) / 1024,
        "rss_min_mib": min(rss) / 1024,
        "rss_after_mib": rss[-1] / 1024,
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")

"""The registry side: 100,000 clients imported from CSV, then pages of the client list."""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.peers import LOOPBACK

GROUPS = 50
PROFILE = {
    "name": "debian12",
    "kernel": "debian/linux",
    "initrd": ["debian/initrd.gz"],
    "cmdline": "auto=true priority=critical hostname={{ hostname }}",
}


UNREGISTERED = 0x7F000000  # mac(i) from here on is never registered: a machine nobody knows


def mac(i: int) -> str:
    """The i-th benchmark MAC (the wrk script computes the same ones)."""
    return "52:54:" + ":".join(f"{(i >> s) & 255:02x}" for s in (24, 16, 8, 0))


def write_csv(path: Path, count: int) -> Path:
    """mac,hostname,profile,groups for `count` clients in GROUPS rooms."""
    lines = ["mac,hostname,profile,groups"]
    lines += [f"{mac(i)},pc-{i:06d},debian12,room{i % GROUPS}" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def bootfleet_cli(data_dir: Path, *args: str, timeout: float = 300) -> str:
    exe = str(Path(sys.executable).with_name("bootfleet"))
    done = subprocess.run(
        [exe, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


class Api:
    """A keep-alive HTTP/1.1 connection to the admin API."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def timed_get(self, path: str, repeat: int) -> list[float]:
        """Milliseconds for each of `repeat` GETs of `path` (each must answer 200)."""
        out = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            status, body = self.call("GET", path)
            out.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return out


def run(data_dir: Path, port: int, work: Path, count: int) -> dict[str, object]:
    """Import `count` clients with the CLI, then time the first and a filtered page."""
    token = bootfleet_cli(data_dir, "token", "create").strip()
    api = Api(port, token)
    status, body = api.call("POST", "/api/v1/profiles", PROFILE)
    if status not in (201, 409):
        raise RuntimeError(f"profile create: {status} {body[:200]!r}")
    csv_file = write_csv(work / "clients.csv", count)
    t0 = time.perf_counter()
    out = bootfleet_cli(data_dir, "client", "import", str(csv_file), timeout=600)
    import_s = time.perf_counter() - t0
    if f"imported {count}" not in out:
        raise RuntimeError(f"import said: {out!r}")
    first = api.timed_get("/api/v1/clients", 20)
    filtered = api.timed_get("/api/v1/clients?state=idle&group=room7", 20)
    searched = api.timed_get("/api/v1/clients?q=pc-0999", 5)
    return {
        "clients": count,
        "import_s": import_s,
        "first_page_ms": statistics.median(first),
        "filtered_page_ms": statistics.median(filtered),
        "filtered_page_max_ms": max(filtered),
        "search_page_ms": statistics.median(searched),
        "token": token,
    }

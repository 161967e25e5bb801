"""A mixed load against a real `bootfleet serve` for a bounded time: a TFTP storm (boot
loader and per-MAC configs), admin API calls and whole installs through the installer
callbacks. Zero errors, and the server's memory (RSS) stays flat."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import requests

from server.config import Settings
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import PROFILE, mac, token_in
from tests.reliability.tftpclient import fetch
from tests.serve import Served, admin_token, free_port

SECONDS = 60  # the issue asks for a bounded minute
LOADER = bytes((i * 31 + 7) & 0xFF for i in range(200_000))
MACHINES = 40  # registered; installs cycle through them


@pytest.mark.slow  # a bounded minute; `make test` (and so CI) still runs it
def test_mixed_load_holds(settings: Settings) -> None:
    data, images = settings.data_dir, settings.images
    (images / "undionly.kpxe").write_bytes(LOADER)
    auth = {"Authorization": f"Bearer {admin_token(data)}"}
    # one source address sends everything here, so the per-source limit is off for this test
    server = Served(
        data,
        images,
        "--rate-limit",
        "0",
        "--log-level",
        "WARNING",
        tftp_port=free_port(socket.SOCK_DGRAM),
    ).start()
    url, tftp = server.url, server.tftp_port
    counts: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def record(kind: str, ok: bool, what: str) -> None:
        with lock:
            counts[kind] += 1
            if not ok:
                errors.append(f"{kind}: {what}")

    def tftp_storm(n: int) -> None:
        while not stop.is_set():
            blksize = (512, 1468)[n % 2]
            got = fetch(tftp, "undionly.kpxe", blksize=blksize)
            record("tftp loader", got == LOADER, f"{len(got)} bytes")
            cfg = fetch(tftp, f"pxelinux.cfg/01-{mac(1000 + n).replace(':', '-')}")
            record("tftp config", b"LOCALBOOT 0" in cfg, cfg[:60].decode(errors="replace"))

    def admin(n: int) -> None:
        with requests.Session() as http:
            i = 0
            while not stop.is_set():
                i += 1
                r = http.get(f"{url}/api/v1/clients?limit=50", headers=auth, timeout=30)
                record("api list", r.status_code == 200, r.text[:100])
                m = mac(1 + (i + n) % MACHINES)
                r = http.get(f"{url}/api/v1/clients/{m}", headers=auth, timeout=30)
                record("api show", r.status_code == 200, r.text[:100])
                r = http.get(f"{url}/metrics", timeout=30)
                record("metrics", r.status_code == 200, r.text[:100])

    def installer(n: int) -> None:
        with requests.Session() as http:
            i = 0
            while not stop.is_set():
                m = mac(1 + (2 * i + n) % MACHINES)  # each thread its own half of the machines
                i += 1
                r = http.post(f"{url}/api/v1/clients/{m}/reinstall", headers=auth, timeout=30)
                record("reinstall", r.status_code == 200, r.text[:100])
                r = http.get(f"{url}/ipxe?mac={m}", timeout=30)
                record("ipxe", r.status_code == 200, r.text[:100])
                token = token_in(r.text)
                for percent in (10, 50, 90):
                    r = http.post(
                        f"{url}/api/v1/installs/{token}/progress",
                        json={"percent": percent},
                        timeout=30,
                    )
                    record("progress", r.status_code == 200, r.text[:100])
                r = http.post(f"{url}/api/v1/installs/{token}/done", json={}, timeout=30)
                record("done", r.status_code == 200, r.text[:100])

    try:
        http = requests.Session()
        assert http.post(f"{url}/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
        for n in range(1, MACHINES + 1):
            r = http.post(
                f"{url}/api/v1/clients", json={"mac": mac(n), "profile": "debian12"}, headers=auth
            )
            assert r.status_code == 201
        workers: list[tuple[Callable[[int], None], int]] = [
            *((tftp_storm, n) for n in range(4)),
            *((admin, n) for n in range(2)),
            *((installer, n) for n in range(2)),
        ]
        threads = [threading.Thread(target=f, args=(n,), daemon=True) for f, n in workers]
        rss: list[int] = []
        for t in threads:
            t.start()
        end = time.monotonic() + SECONDS
        while time.monotonic() < end and not errors:
            rss.append(server.rss_kib())
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a load thread hung"
        assert server.proc is not None and server.proc.poll() is None, server.output()
    finally:
        stop.set()
        server.stop()
    assert not errors, errors[:10]
    for kind in ("tftp loader", "tftp config", "api list", "reinstall", "progress", "done"):
        assert counts[kind] > 10, counts
    # flat: the last third of the run needs no more memory than the middle third, give or
    # take allocator noise (10 % + 8 MiB); a leak per request would show as a steady climb
    third = len(rss) // 3
    middle, last = max(rss[third : 2 * third]), max(rss[2 * third :])
    assert last <= middle * 1.10 + 8192, f"RSS grew: {middle} -> {last} KiB ({rss})"
    total = sum(counts.values())
    FIGURES["load: requests/transfers without error"] += total
    FIGURES["load: seconds held"] += SECONDS
    FIGURES["load: server RSS KiB, middle third max"] = middle
    FIGURES["load: server RSS KiB, last third max"] = last
    for kind, n in counts.items():
        FIGURES[f"load: {kind}"] += n


def test_tftp_per_source_cap_in_a_real_server(settings: Settings) -> None:
    """One address opening many transfers at once gets `--tftp-per-source` of them and an
    ERROR for the rest; another address is served meanwhile."""
    data, images = settings.data_dir, settings.images
    (images / "undionly.kpxe").write_bytes(LOADER)
    cap = 4
    server = Served(
        data, images, "--tftp-per-source", str(cap), tftp_port=free_port(socket.SOCK_DGRAM)
    ).start()
    socks = []
    try:
        for _ in range(10):  # ten transfers from 127.0.0.1, none acknowledged
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.settimeout(10)
            s.sendto(b"\0\1undionly.kpxe\0octet\0", ("127.0.0.1", server.tftp_port))
            socks.append(s)
        replies = Counter(s.recvfrom(70000)[0][:2] for s in socks)
        assert replies == Counter({b"\0\3": cap, b"\0\5": 10 - cap}), replies  # DATA / ERROR
        other = fetch_from("127.0.0.2", server.tftp_port, "undionly.kpxe")
        assert other == LOADER  # another machine is not held back
    finally:
        for s in socks:
            s.close()
        server.stop()
    FIGURES["tftp per-source cap: refused at the cap"] += 10 - cap


def fetch_from(source: str, port: int, name: str) -> bytes:
    """A lock-step download from a given source address."""
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(10)
        s.sendto(b"\0\1" + name.encode() + b"\0octet\0", ("127.0.0.1", port))
        out, expected = bytearray(), 1
        for _ in range(100_000):
            data, tid = s.recvfrom(70000)
            opcode, number = struct.unpack("!HH", data[:4])
            assert opcode == 3, data[:80]
            if number == expected & 0xFFFF:
                out += data[4:]
                expected += 1
            s.sendto(b"\0\4" + struct.pack("!H", number), tid)
            if len(data) - 4 < 512 and number == (expected - 1) & 0xFFFF:
                return bytes(out)
        raise AssertionError("transfer did not end")

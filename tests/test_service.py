"""`bootfleet serve` as a real process: it starts, says where it listens, serves, and stops
cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).with_name("bootfleet")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN),
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--images-dir",
            str(tmp_path / "img"),
            "--bind",
            "127.0.0.1",
            "--http-port",
            str(port),
            "--no-tftp",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, port


def wait_http(port: int, proc: subprocess.Popen[str]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read() if proc.stdout else "exited")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                assert r.read().startswith(b"ok\n")
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("serve did not answer")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc, port = start(tmp_path)
    try:
        wait_http(port, proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_then_stops_cleanly(
    served: tuple[subprocess.Popen[str], int], sig: signal.Signals
) -> None:
    proc, port = served
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/boot.ipxe", timeout=5) as r:
        assert r.read().startswith(b"#!ipxe")
    os.kill(proc.pid, sig)
    assert proc.wait(timeout=15) == 0
    out = proc.stdout.read() if proc.stdout else ""
    assert f"HTTP  port {port}: admin API http://127.0.0.1:{port}/api/v1/" in out
    assert "advertised to clients as http://127.0.0.1:" in out
    assert "bootfleet token create --data-dir" in out
    assert "stopped" in out


def test_missing_interface_stops_with_a_clear_message(tmp_path: Path) -> None:
    proc, _ = start(tmp_path, "--bind", "0.0.0.0", "--interface", "nosuch0")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "no network interface named 'nosuch0'" in out and "Traceback" not in out


def test_interface_without_ipv4_stops_with_a_clear_message(tmp_path: Path) -> None:
    """An interface that exists but has no IPv4 address: a fresh veth pair of our own."""
    name = f"bfv{os.getpid() % 100000}"
    made = subprocess.run(
        ["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot create a veth pair (needs root): {made.stderr.decode().strip()}")
    try:
        proc, _ = start(tmp_path, "--bind", "0.0.0.0", "--interface", name)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 1 and f"interface '{name}' has no IPv4 address" in out
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [
                str(BIN),
                "serve",
                "--data-dir",
                str(tmp_path / "d"),
                "--bind",
                "127.0.0.1",
                "--http-port",
                str(port),
                "--no-tftp",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert str(port) in proc.stderr + proc.stdout


def test_waitress_queueing_is_not_logged_per_request(caplog: pytest.LogCaptureFixture) -> None:
    """Every request that finds the HTTP threads busy would log a warning (a boot storm)."""
    from waitress.task import ThreadedTaskDispatcher

    from server.service import configure_logging

    configure_logging("INFO")
    dispatcher = ThreadedTaskDispatcher()  # no threads started: the task must queue
    with caplog.at_level(logging.DEBUG):
        dispatcher.add_task(object())
    assert len(dispatcher.queue) == 1
    assert not [r for r in caplog.records if r.name == "waitress.queue"]
    assert logging.getLogger("tftpy").getEffectiveLevel() == logging.WARNING


def raw_exchange(port: int, head: bytes, body: bytes = b"", quiet: float = 5.0) -> bytes:
    """Send `head` then `body` on a fresh connection; what comes back until the server closes
    it or stays quiet for `quiet` seconds. A reset, while sending or reading, ends it too."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=quiet) as s:
        try:
            s.sendall(head)
            s.sendall(body)
            while chunk := s.recv(65536):
                got += chunk
        except TimeoutError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            got += b"<reset>"
    return got


def post_head(length: int) -> bytes:
    return (
        "POST /api/v1/clients HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    served: tuple[subprocess.Popen[str], int],
) -> None:
    """Unauthenticated, with a 200 MB Content-Length: waitress would buffer the body (to a
    temporary file) before the app could say 413. It answers as soon as it has the head."""
    from server.api import MAX_BODY

    proc, port = served
    for length in (200 * 1000 * 1000, MAX_BODY + 1):
        began = time.monotonic()
        answer = raw_exchange(port, post_head(length))
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"exceeds max_body" in answer
        assert time.monotonic() - began < 4  # not the quiet timeout
    # A client that sends 20 MB of the 200 without listening is answered, or (the server
    # closing with its bytes unread) reset, at once: not left to fill the disk in silence.
    began = time.monotonic()
    answer = raw_exchange(port, post_head(200 * 1000 * 1000), b"{" * 20_000_000)
    assert answer.startswith(b"HTTP/1.1 413 ") or answer.endswith(b"<reset>"), answer[:200]
    assert time.monotonic() - began < 4
    # a body of exactly the limit reaches the app (which wants a token first)
    answer = raw_exchange(port, post_head(MAX_BODY), b" " * MAX_BODY)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        assert r.read().startswith(b"ok\n")
    assert proc.poll() is None

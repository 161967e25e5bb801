"""`bootfleet serve` as a real process: it starts, says where it listens, serves, and stops
cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve import Served


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "data", tmp_path / "img").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_then_stops_cleanly(served: Served, sig: signal.Signals) -> None:
    with urllib.request.urlopen(f"{served.url}/boot.ipxe", timeout=5) as r:
        assert r.read().startswith(b"#!ipxe")
    assert served.stop(sig) == 0
    out, port = served.output(), served.port
    assert f"HTTP  port {port}: admin API http://127.0.0.1:{port}/api/v1/" in out
    assert "advertised to clients as http://127.0.0.1:" in out
    assert "bootfleet token create --data-dir" in out
    assert "stopped" in out


def stops_by_itself(tmp_path: Path, *extra: str, port: int = 0) -> tuple[int, str]:
    """Start a server that must refuse to run: its exit status and output."""
    server = Served(tmp_path / "data", tmp_path / "img", *extra, port=port).start(wait=False)
    return server.wait_exit(), server.output()


def test_missing_interface_stops_with_a_clear_message(tmp_path: Path) -> None:
    status, out = stops_by_itself(tmp_path, "--bind", "0.0.0.0", "--interface", "nosuch0")
    assert status == 1
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
        status, out = stops_by_itself(tmp_path, "--bind", "0.0.0.0", "--interface", name)
        assert status == 1 and f"interface '{name}' has no IPv4 address" in out
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status, out = stops_by_itself(tmp_path, port=port)
    assert status == 1
    assert "Traceback" not in out
    assert str(port) in out


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
    it, then how it ended: b"<closed>", b"<reset>" (while sending or reading), or b"<quiet>"
    (nothing for `quiet` seconds: the server kept the connection open, waiting)."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=quiet) as s:
        try:
            s.sendall(head)
            s.sendall(body)
            while chunk := s.recv(65536):
                got += chunk
            got += b"<closed>"
        except TimeoutError:
            got += b"<quiet>"
        except (ConnectionResetError, BrokenPipeError):
            got += b"<reset>"
    return got


def post_head(length: int) -> bytes:
    return (
        "POST /api/v1/clients HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def test_a_body_over_the_limit_is_refused_before_it_is_read(served: Served) -> None:
    """Unauthenticated, with a 200 MB Content-Length: waitress would buffer the body (to a
    temporary file) before the app could say 413. It answers as soon as it has the head."""
    from server.app import MAX_BODY

    port = served.port
    for length in (200 * 1000 * 1000, MAX_BODY + 1):
        answer = raw_exchange(port, post_head(length))
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"exceeds max_body" in answer
        assert answer.endswith(b"<closed>")  # the server hung up: it waits for no body
    # A client that sends 20 MB of the 200 without listening is answered, or (the server
    # closing with its bytes unread) reset: not left to fill the disk in silence.
    answer = raw_exchange(port, post_head(200 * 1000 * 1000), b"{" * 20_000_000)
    assert answer.startswith(b"HTTP/1.1 413 ") or answer.endswith(b"<reset>"), answer[:200]
    assert not answer.endswith(b"<quiet>")
    # a body of exactly the limit reaches the app (which wants a token first)
    answer = raw_exchange(port, post_head(MAX_BODY), b" " * MAX_BODY)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        assert r.read().startswith(b"ok\n")
    assert served.proc is not None and served.proc.poll() is None

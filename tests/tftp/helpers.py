"""Test helpers: a raw TFTP socket client, the real command-line clients, a lossy relay."""

from __future__ import annotations

import random
import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

HOST = "127.0.0.1"
GUARD = 10.0  # seconds before a test gives up waiting for a packet (a hang guard, not a check)


class Raw:
    """A hand-driven TFTP client on one UDP socket, for protocol-level checks."""

    def __init__(self, port: int, host: str = HOST) -> None:
        self.server = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(GUARD)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        self.sock.sendto(data, addr or self.server)

    def rrq(self, name: str | bytes, mode: str = "octet", **options: object) -> None:
        self.send(request(1, name, mode, options))

    def recv(self) -> tuple[int, int, bytes, tuple[str, int]]:
        """(opcode, block or error code, payload, source address)."""
        data, addr = self.sock.recvfrom(70000)
        opcode, number = struct.unpack("!HH", data[:4])
        return opcode, number, data[4:], addr

    def read_on(self, tid: tuple[str, int], block: int, data: bytes, blksize: int = 512) -> bytes:
        """Go on with a lock-step read whose DATA `block` (payload `data`) just came from
        `tid`: ACK to the end; the bytes from that block on."""
        out = bytearray(data)
        while len(data) == blksize:
            self.send(ack(block), tid)
            opcode, block, data, source = self.recv()
            assert (opcode, source) == (3, tid)
            out += data
        self.send(ack(block), tid)
        return bytes(out)

    def fetch(self, name: str, mode: str = "octet", **options: object) -> bytes:
        """Download lock-step, acking every block; fails the test on an ERROR."""
        self.rrq(name, mode, **options)
        opcode, number, payload, tid = self.recv()
        blksize = 512
        if opcode == 6:
            oack = parse_oack(struct.pack("!H", number) + payload)
            blksize = int({k.lower(): v for k, v in oack.items()}.get("blksize", 512))
            self.send(ack(0), tid)
            opcode, number, payload, tid = self.recv()
        out = bytearray()
        expected = 1
        while True:
            assert opcode == 3, f"expected DATA, got {opcode} {number} {payload!r}"
            if number == expected & 0xFFFF:
                out += payload
                expected += 1
            self.send(ack(number), tid)
            if number == (expected - 1) & 0xFFFF and len(payload) < blksize:
                return bytes(out)
            opcode, number, payload, addr = self.recv()
            assert addr == tid


def request(
    opcode: int, name: str | bytes, mode: str = "octet", opts: dict[str, object] | None = None
) -> bytes:
    raw = name if isinstance(name, bytes) else name.encode()
    out = struct.pack("!H", opcode) + raw + b"\0" + mode.encode() + b"\0"
    for key, value in (opts or {}).items():
        out += key.encode() + b"\0" + str(value).encode() + b"\0"
    return out


def ack(block: int) -> bytes:
    return struct.pack("!HH", 4, block & 0xFFFF)


def error(code: int, message: bytes = b"stop") -> bytes:
    return struct.pack("!HH", 5, code) + message + b"\0"


def parse_oack(payload: bytes) -> dict[str, str]:
    parts = payload.split(b"\0")[:-1]
    return {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts), 2)}


# --- real clients --------------------------------------------------------------------------

CLIENT_TOOLS = {"curl": "curl", "tftp-hpa": "tftp", "atftp": "atftp", "busybox": "busybox"}


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (see .ci/debian-packages.txt)")
    return path


def run(argv: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def download(
    client: str,
    port: int,
    name: str,
    out: Path,
    *,
    blksize: int | None = None,
    windowsize: int | None = None,
    mode: str = "octet",
    host: str = HOST,
) -> subprocess.CompletedProcess[str]:
    """Fetch `name` with a real client into `out`; returns the finished process."""
    if client == "curl":
        argv = [need("curl"), "-sS", "-o", str(out)]
        if blksize:
            argv += ["--tftp-blksize", str(blksize)]
        return run([*argv, f"tftp://{host}:{port}/{name}"], out.parent)
    if client == "tftp-hpa":
        assert blksize in (None, 512) and windowsize is None, "tftp-hpa sends no options"
        argv = [need("tftp"), "-m", mode, host, str(port), "-c", "get", name, str(out)]
        return run(argv, out.parent)
    if client == "atftp":
        argv = [need("atftp"), "--tftp-timeout", "1"]
        if blksize:
            argv += ["--option", f"blksize {blksize}"]
        if windowsize:
            argv += ["--option", f"windowsize {windowsize}"]
        return run([*argv, "-g", "-r", name, "-l", str(out), host, str(port)], out.parent)
    if client == "busybox":
        argv = [need("busybox"), "tftp"]
        if blksize:
            argv += ["-b", str(blksize)]
        return run([*argv, "-g", "-r", name, "-l", str(out), host, str(port)], out.parent)
    raise ValueError(client)


def tftpy_download(port: int, name: str, out: Path, blksize: int | None = None) -> None:
    from tftpy import TftpClient

    options = {"blksize": blksize} if blksize else {}
    TftpClient(HOST, port, options).download(name, str(out), timeout=2)


# --- a lossy link --------------------------------------------------------------------------


class LossyRelay:
    """UDP relay between one client and the server that drops a share of packets each way.

    The client talks to the relay's port only; the relay follows the server's transfer TID.
    Drops come from a seeded generator, so a run is reproducible packet for packet.
    """

    def __init__(self, server_port: int, loss: float = 0.1, seed: int = 1350) -> None:
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind((HOST, 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind((HOST, 0))
        for s in (self.front, self.back):
            s.settimeout(0.2)
        self.port = self.front.getsockname()[1]
        self.listener = (HOST, server_port)
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.loss, self.rng = loss, random.Random(seed)
        self.dropped = self.passed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.front, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.back, False), daemon=True),
        ]

    def __enter__(self) -> LossyRelay:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self.front.close()
        self.back.close()

    def _pump(self, sock: socket.socket, from_client: bool) -> None:
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(70000)
            except TimeoutError:
                continue
            with self._lock:
                target: tuple[str, int] | None
                if from_client:
                    self.client, out = addr, self.back
                    # a request goes to the listener, the rest to the transfer's TID
                    target = self.listener if data[:2] in (b"\0\1", b"\0\2") else self.server
                else:
                    self.server, target, out = addr, self.client, self.front
                drop = self.rng.random() < self.loss
                if drop:
                    self.dropped += 1
                else:
                    self.passed += 1
            if target is not None and not drop:
                out.sendto(data, target)


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that make misplaced blocks visible."""
    block = bytes((i * 7 + seed) & 0xFF for i in range(251))
    return (block * (size // 251 + 1))[:size]

"""A real `bootfleet serve` for tests: the installed command in a subprocess on a free loopback
port, its output in a log file, ready once /healthz answers, stopped by its own PID.

    with Served(data_dir, images_dir, "--grace-seconds", "2") as server:
        requests.get(f"{server.url}/boot.ipxe")

Leaving the `with` block stops the server with SIGTERM and fails the test unless it exits 0.
The other commands run to their end with cli() (stdout, or the test fails with the output) or
run_cli() (the finished process, for a test that expects a failure).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import requests

BIN = Path(sys.executable).with_name("bootfleet")
START_SECONDS = 60.0  # a cold start on a busy 2-core machine; it normally takes one second
STOP_SECONDS = 30.0


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing is bound to now (TCP; SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bootfleet_cli() -> list[str]:
    """The installed `bootfleet` command, else the package run as a module."""
    return [str(BIN)] if BIN.exists() else [sys.executable, "-m", "server.cli"]


def clean_env() -> dict[str, str]:
    """This environment without BOOTFLEET_* settings: a test's server reads only its flags."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BOOTFLEET_")}


def run_cli(
    *args: str,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`bootfleet ARGS` (with `--data-dir` after them if given) run to its end, in this
    environment without BOOTFLEET_* settings plus `env`."""
    argv = [*bootfleet_cli(), *args]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean_env(), **(env or {})},
        check=False,
    )


def cli(
    *args: str,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> str:
    """run_cli(), which must exit 0; its stdout."""
    done = run_cli(*args, data_dir=data_dir, env=env, timeout=timeout)
    assert done.returncode == 0, f"bootfleet {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def serve_command(
    data_dir: Path,
    images_dir: Path,
    *extra: str,
    bind: str = "127.0.0.1",
    http_port: int,
    tftp_port: int = 0,
) -> list[str]:
    """`bootfleet serve` with its state in `data_dir`; `tftp_port` 0 turns TFTP off."""
    return [
        *bootfleet_cli(),
        "serve",
        "--data-dir",
        str(data_dir),
        "--images-dir",
        str(images_dir),
        "--bind",
        bind,
        "--http-port",
        str(http_port),
        *(("--tftp-port", str(tftp_port)) if tftp_port else ("--no-tftp",)),
        *extra,
    ]


class Served:
    def __init__(
        self, data_dir: Path, images_dir: Path, *extra: str, port: int = 0, tftp_port: int = 0
    ) -> None:
        self.data_dir = data_dir
        self.images_dir = images_dir
        self.extra = extra
        self.port = port or free_port()
        self.tftp_port = tftp_port  # 0: TFTP off
        self.log = data_dir.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Served:
        args = serve_command(
            self.data_dir,
            self.images_dir,
            *self.extra,
            http_port=self.port,
            tftp_port=self.tftp_port,
        )
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=clean_env()
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"serve did not answer within {timeout} s:\n{self.output()}")

    def wait_exit(self, timeout: float = START_SECONDS) -> int:
        """For a server that must stop by itself (a bad flag, a busy port): its exit status."""
        assert self.proc is not None
        proc, self.proc = self.proc, None
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_SECONDS)
            raise AssertionError(f"serve still ran after {timeout} s:\n{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_SECONDS)
        self.proc = None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """`sig` (SIGTERM), then SIGKILL if it does not end; its exit status (None: not
        running)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                return proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait(timeout=STOP_SECONDS)

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def __enter__(self) -> Served:
        return self if self.proc is not None else self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = self.stop()
        if kind is None and status not in (0, None):
            raise AssertionError(f"serve exited {status} on SIGTERM:\n{self.output()}")


def admin_token(data_dir: Path, *extra: str) -> str:
    """An admin token made with the CLI, as an operator would."""
    out = subprocess.run(
        [*bootfleet_cli(), "token", "create", "--data-dir", str(data_dir), *extra],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    return out.stdout.strip()

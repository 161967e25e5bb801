"""A real `bootfleet serve` subprocess for tests: started on a free loopback port, its output
in a log file, stopped (or killed with SIGKILL) by its own PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.reliability.pg import free_port

BIN = Path(sys.executable).with_name("bootfleet")


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
        args = [
            str(BIN),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--images-dir",
            str(self.images_dir),
            "--bind",
            "127.0.0.1",
            "--http-port",
            str(self.port),
            *(("--tftp-port", str(self.tftp_port)) if self.tftp_port else ("--no-tftp",)),
            *self.extra,
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, tries: int = 400) -> None:
        assert self.proc is not None
        for _ in range(tries):
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"serve did not answer:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not end; its exit status."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait(timeout=20)

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


def admin_token(data_dir: Path, *extra: str) -> str:
    """An admin token made with the CLI, as an operator would."""
    out = subprocess.run(
        [str(BIN), "token", "create", "--data-dir", str(data_dir), *extra],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()

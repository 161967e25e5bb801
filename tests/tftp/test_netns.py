"""Across a real link: a veth pair into a network namespace (198.18.0.0/15), with netem loss.

Needs root and iproute2; the loss test also needs the kernel's netem qdisc and skips
without it (some VM kernels ship no sch_netem).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import ServiceFactory

SERVER_IP, CLIENT_IP = "198.18.7.1", "198.18.7.2"


@dataclass
class Link:
    ns: str
    host_if: str
    ns_if: str

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, *argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )


def ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def link() -> Iterator[Link]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    tag = f"bf{os.getpid() % 100000}"
    found = Link(ns=f"{tag}ns", host_if=f"{tag}h", ns_if=f"{tag}c")
    try:
        ip("netns", "add", found.ns)
        ip("link", "add", found.host_if, "type", "veth", "peer", "name", found.ns_if)
        ip("link", "set", found.ns_if, "netns", found.ns)
        ip("addr", "add", f"{SERVER_IP}/30", "dev", found.host_if)
        ip("link", "set", found.host_if, "up")
        found.run("ip", "addr", "add", f"{CLIENT_IP}/30", "dev", found.ns_if)
        found.run("ip", "link", "set", found.ns_if, "up")
        found.run("ip", "link", "set", "lo", "up")
        yield found
    finally:
        ip("link", "del", found.host_if, check=False)
        ip("netns", "del", found.ns, check=False)


def atftp_in_ns(link: Link, port: int, name: str, out: Path, host: str = SERVER_IP) -> str:
    if shutil.which("atftp") is None:
        pytest.skip("atftp is not installed")
    done = link.run(
        "atftp", "--tftp-timeout", "1", "--option", "blksize 1468", "-g", "-r", name,
        "-l", str(out), host, str(port), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize("bind", [SERVER_IP, "0.0.0.0"])
def test_across_veth(
    bind: str, link: Link, make_service: ServiceFactory, root: Path, tmp_path: Path
) -> None:
    service = make_service(host=bind)
    out = tmp_path / "out"
    atftp_in_ns(link, service.port, "sub/undionly.kpxe", out)
    assert out.read_bytes() == (root / "sub" / "undionly.kpxe").read_bytes()


def test_netem_ten_percent_loss(
    link: Link, make_service: ServiceFactory, root: Path, tmp_path: Path
) -> None:
    netem = ["qdisc", "add", "dev"]
    added = link.run("tc", *netem, link.ns_if, "root", "netem", "loss", "10%", check=False)
    if added.returncode != 0:
        pytest.skip(f"no netem in this kernel: {added.stderr.strip()}")
    subprocess.run(
        ["tc", *netem, link.host_if, "root", "netem", "loss", "10%"], check=True, timeout=30
    )
    data = os.urandom(150_000)
    (root / "lossy.bin").write_bytes(data)
    service = make_service(host=SERVER_IP, timeout=0.1, retries=12)
    out = tmp_path / "out"
    atftp_in_ns(link, service.port, "lossy.bin", out)
    assert out.read_bytes() == data

"""A network namespace joined to this one by a veth pair, for traffic shaped with tc netem.

Only 198.18.0.0/15 addresses (RFC 2544 benchmarking) are used; everything is deleted in the
finalizer (deleting the namespace deletes the veth pair with it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

HOST_IP = "198.18.200.1"
PEER_IP = "198.18.200.2"


def sh(*argv: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=check)


@dataclass
class Link:
    ns: str
    host_dev: str
    peer_dev: str

    def shape(self, netem: str) -> None:
        """Apply one netem spec to both directions (server->client and client->server)."""
        for dev, ns in ((self.host_dev, None), (self.peer_dev, self.ns)):
            sh("tc", "qdisc", "replace", "dev", dev, "root", "netem", *netem.split(), ns=ns)

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A command inside the namespace (the client side)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@contextlib.contextmanager
def veth_namespace() -> Iterator[Link]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("network namespaces need root, ip and tc")
    tag = f"{os.getpid() % 100000}"
    link = Link(ns=f"bfrel{tag}", host_dev=f"bfrh{tag}", peer_dev=f"bfrn{tag}")
    try:
        probe = sh("ip", "netns", "add", link.ns, check=False)
        if probe.returncode != 0:
            pytest.skip(f"cannot create a network namespace: {probe.stderr.strip()}")
        sh("ip", "link", "add", link.host_dev, "type", "veth", "peer", "name", link.peer_dev)
        sh("ip", "link", "set", link.peer_dev, "netns", link.ns)
        sh("ip", "addr", "add", f"{HOST_IP}/30", "dev", link.host_dev)
        sh("ip", "link", "set", link.host_dev, "up")
        sh("ip", "addr", "add", f"{PEER_IP}/30", "dev", link.peer_dev, ns=link.ns)
        sh("ip", "link", "set", link.peer_dev, "up", ns=link.ns)
        sh("ip", "link", "set", "lo", "up", ns=link.ns)
        if (
            sh(
                "tc",
                "qdisc",
                "add",
                "dev",
                link.host_dev,
                "root",
                "netem",
                "delay",
                "1ms",
                check=False,
            ).returncode
            != 0
        ):
            pytest.skip("tc netem is not available (kernel module sch_netem)")
        yield link
    finally:
        sh("ip", "link", "del", link.host_dev, check=False)
        sh("ip", "netns", "del", link.ns, check=False)

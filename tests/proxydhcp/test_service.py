"""`bootfleet serve --proxy-dhcp` as a real process: it listens and answers, or stops with one
clear line when its port is taken (a local dnsmasq) or the address is unusable."""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path

import pytest

from server.config import Settings
from server.errors import InvalidInput
from tests.serve import Served, free_port

from .client import discover, options_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="SO_BINDTODEVICE on lo needs root")


def serve(tmp_path: Path, *extra: str) -> Served:
    return Served(tmp_path / "data", tmp_path / "img", *extra)


def stops_by_itself(server: Served) -> tuple[int, str]:
    code = server.start(wait=False).wait_exit()
    return code, server.output()


def test_serve_answers_on_the_pxe_port_and_counts(tmp_path: Path) -> None:
    dhcp_port, pxe_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    server = serve(
        tmp_path,
        "--proxy-dhcp",
        "--proxy-dhcp-port",
        str(dhcp_port),
        "--proxy-dhcp-pxe-port",
        str(pxe_port),
        "--proxy-dhcp-files",
        "efi64=grubnetx64.efi",
    )
    with server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(10)
            sock.sendto(discover(arch=7, msg_type=3), ("127.0.0.1", pxe_port))
            reply, _ = sock.recvfrom(4096)
        assert options_of(reply)[67] == b"grubnetx64.efi"
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'bootfleet_proxydhcp_answers_total{kind="ack",arch="efi64"} 1' in metrics
    out = server.output()
    assert f"proxyDHCP ports {dhcp_port}+{pxe_port} on lo" in out
    assert "proxyDHCP ack to 52:54:00:12:34:56: arch efi64, file grubnetx64.efi" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--proxy-dhcp-files", "mips=x.efi"), "want NAME=FILE"),
        (("--proxy-dhcp-scope", "everyone"), "Invalid value for '--proxy-dhcp-scope'"),
        (("--advertise", "boot.example"), "proxyDHCP needs an IPv4 address"),
    ],
)
def test_bad_settings_are_one_line(tmp_path: Path, extra: tuple[str, ...], message: str) -> None:
    code, out = stops_by_itself(serve(tmp_path, "--proxy-dhcp", "--proxy-dhcp-port", "0", *extra))
    assert code != 0 and message in out and "Traceback" not in out, out


def test_port_taken_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("0.0.0.0", 0))
        port = taken.getsockname()[1]
        code, out = stops_by_itself(serve(tmp_path, "--proxy-dhcp", "--proxy-dhcp-port", str(port)))
    assert code == 1, out
    assert f"proxyDHCP: port {port} in use" in out and "Traceback" not in out, out


def test_settings_from_the_environment() -> None:
    env = {"BOOTFLEET_PROXY_DHCP": "on", "BOOTFLEET_PROXY_DHCP_SCOPE": "reinstall"}
    s = Settings.load(env=env)
    assert s.proxy_dhcp and s.proxy_dhcp_scope == "reinstall" and s.proxy_dhcp_discovery_control
    assert not Settings.load(env={}).proxy_dhcp
    with pytest.raises(InvalidInput, match="BOOTFLEET_PROXY_DHCP_SCOPE"):
        Settings.load(env={"BOOTFLEET_PROXY_DHCP_SCOPE": "everyone"})

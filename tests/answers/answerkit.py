"""Helpers for the answer-file tests: render as the renderer does, sample data, a recorder."""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

from server.catalog import Catalog
from server.render import Renderer

TEMPLATES = Path(__file__).resolve().parents[2] / "pxe_templates"
INSTALL_URL = "http://198.18.0.1:8080/api/v1/installs/tok-3f9a1c"
SHA512_HASH = "$6$rounds=4096$saltsalt$" + "a" * 86
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@x"

Render = Callable[..., str]


def context(name: str, **variables: object) -> dict[str, object]:
    """The renderer's context for a sample client: fixed keys plus the checked variables."""
    checked = Catalog(TEMPLATES).check(name, variables)
    return {
        "install_url": INSTALL_URL,
        "server_url": "http://198.18.0.1:8080",
        "images_url": "http://198.18.0.1:8080/images",
        "mac": "52:54:00:12:34:56",
        "hostname": "web01.example.org",
        "profile": f"{name}-test",
        "arch": "x86_64",
        **checked,
    }


def render_template(
    name: str, _context: dict[str, object] | None = None, **variables: object
) -> str:
    """Render answers/<name>.j2 for the sample client; `_context` overrides context keys."""
    values = {**context(name, **variables), **(_context or {})}
    return Renderer(TEMPLATES, "http://198.18.0.1:8080").render_answer(name, values)


# `efibootmgr` as OVMF shows it after an OS installer added its own entry first.
EFIBOOTMGR = """BootCurrent: 0003
Timeout: 0 seconds
BootOrder: 0005,0001,0002,0003,0004
Boot0000* UiApp
Boot0001* UEFI QEMU HARDDISK QM00001
Boot0002* UEFI PXEv4 (MAC:525400123456)
Boot0003* UEFI PXEv6 (MAC:525400123456)
Boot0004* EFI Internal Shell
Boot0005* debian
"""
EFIBOOTMGR_NETFIRST = "0002,0003,0005,0001,0004"


def awk_program(script: str) -> str:
    """The awk program of a template's netfirst step (between `awk '` and the closing `'`)."""
    start = script.index("awk '") + len("awk '")
    return script[start : script.index("'", start)]


Recorder = tuple[str, list[tuple[str, str, bytes]]]


class RecordingHandler(BaseHTTPRequestHandler):
    posts: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.posts.append((self.path, self.headers["Content-Type"], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass

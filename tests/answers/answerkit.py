"""Helpers for the answer-file tests: answer files as the server serves them, sample data, a
recorder.

Every answer file under test comes from `serve_answer`: a Bootfleet of its own (app factory,
registry, renderer), a registered client, a reinstall, a network boot and
GET <install url>/answer. No test renders a template any other way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar
from unittest import mock

from server.app import create_app
from server.config import Settings
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope
from server.tokens import install_token
from tests.helpers import boot_installer

SERVER_URL = "http://198.18.0.1:8080"
MAC = "52:54:00:12:34:56"
HOSTNAME = "web01.example.org"
# A fixed site key and install salt make the install token, and so every served file, the same
# on every run (the golden files depend on it).
SITE_KEY = bytes(range(32))
SALT = "5a175a175a175a175a175a175a175a17"
INSTALL_URL = f"{SERVER_URL}/api/v1/installs/{install_token(SITE_KEY, SALT)}"
SHA512_HASH = "$6$rounds=4096$saltsalt$" + "a" * 86
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@x"
LINUX = {"root_password_hash": SHA512_HASH, "ssh_keys": [SSH_KEY], "packages": ["vim"]}
# The sample client's variables for each template: the golden files are served with these.
SAMPLES: dict[str, dict[str, object]] = {
    "debian-preseed": LINUX,
    "kickstart": LINUX,
    "ubuntu-autoinstall": LINUX,
    "windows-unattend": {"admin_password": "Sample-Passw0rd"},
}

Serve = Callable[..., str]


def serve_answer(
    root: Path,
    template: str,
    variables: Mapping[str, object],
    *,
    hostname: str = HOSTNAME,
    profile: str | None = None,
) -> bytes:
    """The answer file a fresh Bootfleet under `root` serves to the sample client whose
    profile uses `template` with `variables`: registered, reinstalled, booted, fetched."""
    images = root / "images" / "debian"
    images.mkdir(parents=True)
    (images / "linux").write_bytes(b"kernel")
    (images / "initrd.gz").write_bytes(b"initrd")
    (root / "data").mkdir()
    (root / "data" / "site.key").write_text(SITE_KEY.hex() + "\n")
    settings = Settings(
        data_dir=root / "data",
        images_dir=root / "images",
        advertise="198.18.0.1",
        http_port=8080,
        tftp_enabled=False,
    )
    fleet = Fleet.open(settings)
    try:
        http = create_app(fleet=fleet, test_config={"TESTING": True}).test_client()
        with session_scope(fleet.engine, write=True) as s:
            _, secret = admin_tokens.create(s, "answers")
        auth = {"Authorization": f"Bearer {secret}"}
        name = profile or f"{template}-test"
        body = {
            "name": name,
            "kernel": "debian/linux",
            "initrd": ["debian/initrd.gz"],
            "answer_template": template,
            "variables": dict(variables),
        }
        r = http.post("/api/v1/profiles", json=body, headers=auth)
        assert r.status_code == 201, r.text
        body = {"mac": MAC, "hostname": hostname, "profile": name}
        r = http.post("/api/v1/clients", json=body, headers=auth)
        assert r.status_code == 201, r.text
        with mock.patch("server.registry.installs.new_salt", return_value=SALT):
            r = http.post(f"/api/v1/clients/{MAC}/reinstall", headers=auth)
        assert r.status_code == 200, r.text
        path = boot_installer(http, MAC)
        assert SERVER_URL + path == INSTALL_URL, path
        r = http.get(path + "/answer")
        assert r.status_code == 200, r.text
        return r.data
    finally:
        fleet.close()


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

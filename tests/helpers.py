"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from flask.testing import FlaskClient

from tests.serve import cli

INSTALL_URL = re.compile(r"bootfleet\.install=(\S+)")


def install_path(script: str) -> str:
    """The callback base path (/api/v1/installs/<token>) from a rendered installer config."""
    match = INSTALL_URL.search(script)
    assert match, script
    return "/api/v1/installs/" + match.group(1).rsplit("/", 1)[1]


def boot_installer(client: FlaskClient, mac: str) -> str:
    """Fetch the per-MAC iPXE script as firmware would; return the install callback path."""
    r = client.get(f"/ipxe?mac={mac}&arch=x86_64")
    assert r.status_code == 200, r.text
    return install_path(r.text)


def state(client: FlaskClient, auth: dict[str, str], mac: str) -> str:
    r = client.get(f"/api/v1/clients/{mac}", headers=auth)
    assert r.status_code == 200, r.text
    return str(r.json["state"])


def check_golden(path: Path, data: bytes) -> None:
    """`data` byte for byte against a golden file; UPDATE_GOLDEN=1 rewrites the file first."""
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(data)
    assert data == path.read_bytes(), f"{path} differs (UPDATE_GOLDEN=1 rewrites it)"


def cli_profile(data_dir: Path, images_dir: Path, name: str = "p1") -> None:
    """A profile `name` made with `bootfleet profile create`, booting a stand-in kernel and
    initrd written under `images_dir`."""
    (images_dir / "debian").mkdir(parents=True, exist_ok=True)
    (images_dir / "debian" / "linux").write_bytes(b"k")
    (images_dir / "debian" / "initrd.gz").write_bytes(b"i")
    cli(
        "profile",
        "create",
        name,
        "--kernel",
        "debian/linux",
        "--initrd",
        "debian/initrd.gz",
        "--images-dir",
        str(images_dir),
        data_dir=data_dir,
    )

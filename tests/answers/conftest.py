"""Render answer templates the way the lead's renderer does (the contract in docs/profiles.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jinja2
import pytest

from server.catalog import Catalog

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


def render_template(name: str, **variables: object) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    return env.get_template(f"answers/{name}.j2").render(context(name, **variables))


@pytest.fixture
def render() -> Render:
    return render_template

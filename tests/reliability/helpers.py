"""Small helpers the reliability tests share: registering clients, booting them, tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from flask.testing import FlaskClient

from server.app import create_app
from server.config import Settings
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope

INSTALL_URL = re.compile(r"/api/v1/installs/([A-Za-z0-9_-]{43})")

PROFILE = {
    "name": "debian12",
    "kernel": "debian/linux",
    "initrd": ["debian/initrd.gz"],
    "cmdline": "auto=true hostname={{ hostname }}",
}


class HttpClient(Protocol):
    """What both Flask's test client and a requests.Session offer (get/post with headers)."""

    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...


def mac(n: int) -> str:
    """The n-th test MAC, locally administered unicast (52:54:00 is QEMU's prefix)."""
    return f"52:54:00:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


def token_in(script: str) -> str:
    """The install token inside an iPXE script (the installer's install URL)."""
    found = INSTALL_URL.search(script)
    assert found, f"no install URL in:\n{script}"
    return found.group(1)


def status(response: Any) -> int:
    return int(getattr(response, "status_code", 0))


@contextmanager
def admin_app(settings: Settings) -> Iterator[tuple[FlaskClient, dict[str, str]]]:
    """A test client of the app on its own Fleet, and an admin token's header; closed after."""
    fleet = Fleet.open(settings)
    try:
        with session_scope(fleet.engine, write=True) as s:
            _, secret = admin_tokens.create(s)
        app = create_app(fleet=fleet, test_config={"TESTING": True})
        yield app.test_client(), {"Authorization": f"Bearer {secret}"}
    finally:
        fleet.close()

"""Web UI fixtures: a test client signed in through the real sign-in form, and a simulated
installer that reports through the callback URL the iPXE script hands out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, f"page has no CSRF field:\n{html[:500]}"
    return match.group(1)


@dataclass
class UI:
    """A signed-in test client that sends the session's CSRF token with every POST."""

    client: FlaskClient
    csrf: str

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> TestResponse:
        return self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kw)

    def confirm(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> TestResponse:
        """POST an action as the JavaScript confirm() dialog would: with confirmed=1."""
        return self.post(path, {"confirmed": "1", **(data or {})}, **kw)


def sign_in(client: FlaskClient, token: str) -> UI:
    csrf = csrf_from(client.get("/ui/login").text)
    r = client.post("/ui/login", data={"csrf_token": csrf, "token": token})
    assert r.status_code == 303, r.text
    return UI(client, csrf_from(client.get("/ui/").text))  # sign-in rotates the token


@pytest.fixture
def ui(client: FlaskClient, token: str) -> UI:
    return sign_in(client, token)


class Installer:
    """What a booted installer does: fetch its iPXE script, then report on its callback."""

    def __init__(self, client: FlaskClient, mac: str) -> None:
        r = client.get(f"/ipxe?mac={mac}")
        match = re.search(r"bootfleet\.install=(\S+)", r.text)
        assert match, f"no installer for {mac}:\n{r.text}"
        self.client = client
        self.path = urlsplit(match.group(1)).path

    def report(self, what: str, **body: Any) -> None:
        r = self.client.post(f"{self.path}/{what}", json=body)
        assert r.status_code == 200, r.text


@pytest.fixture
def installer(client: FlaskClient) -> Any:
    return lambda mac: Installer(client, mac)


@pytest.fixture(name="sign_in")
def sign_in_fixture() -> Any:
    """sign_in(client, token) -> UI, for tests that need a second session."""
    return sign_in


@pytest.fixture(name="csrf_from")
def csrf_from_fixture() -> Any:
    return csrf_from

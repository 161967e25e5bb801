"""Web UI fixtures: a browser-like test client signed in through the real sign-in form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF field"
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


def sign_in(client: FlaskClient, token: str) -> UI:
    page = client.get("/ui/login")
    csrf = csrf_from(page.text)
    r = client.post("/ui/login", data={"csrf_token": csrf, "token": token})
    assert r.status_code == 303, r.text
    # sign-in starts a fresh session with a new CSRF token
    return UI(client, csrf_from(client.get("/ui/").text))


@pytest.fixture
def ui(client: FlaskClient, token: str) -> UI:
    return sign_in(client, token)

"""Sessions only under /ui/: boot and API requests never open or sign a session cookie."""

import pytest
from flask import Flask, request
from flask.sessions import NullSession, SecureCookieSession


@pytest.mark.parametrize(
    ("path", "real"),
    [
        ("/ui", True),
        ("/ui/", True),
        ("/ui/login", True),
        ("/ui/clients/x/live.json", True),
        ("/ipxe", False),
        ("/boot.ipxe", False),
        ("/api/v1/installs/t/progress", False),
        ("/api/v1/clients", False),
        ("/uix", False),
        ("/", False),
    ],
)
def test_session_opens_only_under_ui(app: Flask, path: str, real: bool) -> None:
    with app.test_request_context(path):
        opened = app.session_interface.open_session(app, request)
    assert isinstance(opened, SecureCookieSession)
    assert isinstance(opened, NullSession) is not real


def test_boot_request_with_a_ui_cookie_sets_no_cookie(app: Flask) -> None:
    client = app.test_client()
    client.set_cookie("bootfleet_ui", "anything", path="/")
    r = client.get("/ipxe?mac=52:54:00:00:00:01")
    assert r.status_code == 200 and "Set-Cookie" not in r.headers

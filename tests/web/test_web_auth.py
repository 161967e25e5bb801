"""Sign-in, the session cookie, CSRF and sign-out (server/web/auth.py)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.app import create_app
from server.fleet import Fleet
from server.registry import admin_tokens, clients
from server.registry.database import session_scope
from server.web import session_key

MAC = "52:54:00:12:34:56"


def state_of(fleet: Fleet, mac: str) -> str:
    with session_scope(fleet.engine) as s:
        return clients.get(s, mac).state


def test_root_redirects_to_the_ui(client: FlaskClient) -> None:
    r = client.get("/")
    assert r.status_code == 302
    assert r.headers["Location"] == "/ui/"


@pytest.mark.parametrize(
    "path", ["/ui/", "/ui/clients", f"/ui/clients/{MAC}", "/ui/profiles", "/ui/images"]
)
def test_pages_need_sign_in(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 303
    assert r.headers["Location"].startswith("/ui/login?next=")


def test_live_endpoint_without_session_is_401_json(client: FlaskClient) -> None:
    r = client.get("/ui/live/dashboard.json")
    assert r.status_code == 401
    assert r.json is not None and r.json["error"]["message"]


def test_sign_in_sets_a_strict_httponly_cookie_without_the_token(
    client: FlaskClient, token: str, csrf_from: Any
) -> None:
    csrf = csrf_from(client.get("/ui/login").text)
    r = client.post("/ui/login", data={"csrf_token": csrf, "token": f"  {token}\n"})
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == "/ui/"
    cookie = next(v for k, v in r.headers.items() if k == "Set-Cookie")
    assert cookie.startswith("bootfleet_ui=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/ui" in cookie
    assert token not in cookie
    assert client.get("/ui/").status_code == 200


@pytest.mark.parametrize("wrong", ["", "nope", "x" * 300])
def test_wrong_token_is_refused(client: FlaskClient, csrf_from: Any, wrong: str) -> None:
    csrf = csrf_from(client.get("/ui/login").text)
    r = client.post("/ui/login", data={"csrf_token": csrf, "token": wrong})
    assert r.status_code == 401
    assert "Unknown or revoked admin token." in r.text
    assert client.get("/ui/").status_code == 303


def test_sign_in_without_csrf_is_refused(client: FlaskClient, token: str) -> None:
    client.get("/ui/login")
    r = client.post("/ui/login", data={"token": token})
    assert r.status_code == 403
    assert "CSRF" in r.text
    assert client.get("/ui/").status_code == 303


def test_sign_in_returns_to_the_page_asked_for(
    client: FlaskClient, token: str, csrf_from: Any
) -> None:
    r = client.get("/ui/clients?state=failed")
    assert r.headers["Location"] == "/ui/login?next=/ui/clients?state%3Dfailed"
    csrf = csrf_from(client.get(r.headers["Location"]).text)
    r = client.post(
        "/ui/login", data={"csrf_token": csrf, "token": token, "next": "/ui/clients?state=failed"}
    )
    assert r.headers["Location"] == "/ui/clients?state=failed"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/ui/",
        "/api/v1/clients",
        "/ui\\..\\x",
        "javascript:1",
    ],
)
def test_sign_in_never_redirects_off_the_ui(
    client: FlaskClient, token: str, csrf_from: Any, target: str
) -> None:
    csrf = csrf_from(client.get("/ui/login").text)
    r = client.post("/ui/login", data={"csrf_token": csrf, "token": token, "next": target})
    assert r.headers["Location"] == "/ui/"


@pytest.mark.parametrize(
    "headers, data",
    [
        ({}, {}),  # no token at all
        ({}, {"csrf_token": "forged"}),
        ({"X-CSRF-Token": "forged"}, {}),
    ],
)
def test_post_without_the_right_csrf_token_changes_nothing(
    ui: Any, registered: str, fleet: Fleet, headers: dict[str, str], data: dict[str, str]
) -> None:
    r = ui.client.post(
        f"/ui/clients/{registered}/reinstall", data={"confirmed": "1", **data}, headers=headers
    )
    assert r.status_code == 403
    assert "CSRF" in r.text
    assert state_of(fleet, registered) == "idle"


def test_csrf_token_in_a_header_is_accepted(ui: Any, registered: str, fleet: Fleet) -> None:
    r = ui.client.post(
        f"/ui/clients/{registered}/reinstall",
        data={"confirmed": "1"},
        headers={"X-CSRF-Token": ui.csrf},
    )
    assert r.status_code == 303, r.text
    assert state_of(fleet, registered) == "pending"


def test_a_csrf_token_from_another_session_is_refused(
    app: Flask, token: str, registered: str, fleet: Fleet, sign_in: Any
) -> None:
    alice = sign_in(app.test_client(), token)
    bob = sign_in(app.test_client(), token)
    assert alice.csrf != bob.csrf
    r = bob.client.post(
        f"/ui/clients/{registered}/reinstall", data={"csrf_token": alice.csrf, "confirmed": "1"}
    )
    assert r.status_code == 403
    assert state_of(fleet, registered) == "idle"


def test_revoking_the_token_ends_the_session(ui: Any, fleet: Fleet, token: str) -> None:
    assert ui.get("/ui/").status_code == 200
    with session_scope(fleet.engine, write=True) as s:
        row = admin_tokens.verify(s, token)
        assert row is not None and row.id is not None
        admin_tokens.revoke(s, row.id)
    r = ui.get("/ui/clients")
    assert r.status_code == 303
    assert r.headers["Location"].startswith("/ui/login")
    assert ui.get("/ui/live/dashboard.json").status_code == 401


def test_sign_out(ui: Any) -> None:
    r = ui.post("/ui/logout")
    assert r.status_code == 303
    assert r.headers["Location"] == "/ui/login"
    assert ui.get("/ui/").status_code == 303


def test_sign_out_needs_csrf(ui: Any) -> None:
    assert ui.client.post("/ui/logout").status_code == 403
    assert ui.get("/ui/").status_code == 200


def test_session_key_comes_from_the_site_key(fleet: Fleet, app: Flask) -> None:
    assert app.secret_key == session_key(fleet.policy.site_key)
    assert session_key(b"a" * 32) != session_key(b"b" * 32)


def test_a_session_survives_a_restart(fleet: Fleet, token: str, sign_in: Any) -> None:
    """A second app on the same site key (a restart, or a sibling server) accepts the
    cookie the first one issued."""
    first = create_app(fleet=fleet, test_config={"TESTING": True}).test_client()
    sign_in(first, token)
    cookie = first.get_cookie("bootfleet_ui", path="/ui")
    assert cookie is not None
    second = create_app(fleet=fleet, test_config={"TESTING": True}).test_client()
    assert second.get("/ui/").status_code == 303
    second.set_cookie("bootfleet_ui", cookie.value, path="/ui")
    assert second.get("/ui/").status_code == 200


def test_pages_send_safe_headers(ui: Any) -> None:
    r = ui.get("/ui/")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"


def test_static_files_need_no_session(client: FlaskClient) -> None:
    for name in ("ui.css", "ui.js"):
        r = client.get(f"/ui/static/{name}")
        assert r.status_code == 200
        r.close()


def ui_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, concrete URL) of every UI route but the sign-in page and static files."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("web.") or rule.endpoint in ("web.login", "web.static"):
            continue
        url = rule.rule.replace("<mac>", MAC).replace("<name>", "debian12")
        url = url.replace("<int:install_id>", "1").replace("<path:rest>", "no/such/page")
        url = (
            url.replace("<int:hook_id>", "1")
            .replace("<int:wave_id>", "1")
            .replace("<any(pause, resume, cancel):action>", "pause")
        )
        assert "<" not in url, f"no sample value for {rule.rule}"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, url))
    return routes


def test_every_ui_route_refuses_without_a_session(
    app: Flask, client: FlaskClient, registered: str, ui: Any, fleet: Fleet, csrf_from: Any
) -> None:
    """No session: pages redirect to sign-in, JSON says 401, and a POST is refused: without
    a CSRF token (403), or with the token of a session that never signed in (to sign-in)."""
    routes = ui_routes(app)
    assert len(routes) >= 20, routes
    stranger = app.test_client()
    visitor = app.test_client()  # has seen the sign-in form, so holds a CSRF token
    visitor_csrf = csrf_from(visitor.get("/ui/login").text)
    form = {"confirmed": "1", "action": "reinstall", "mac": MAC, "text": f"{MAC},x,,"}
    for method, url in routes:
        r = stranger.open(url, method=method, data=form)
        if method == "POST":
            assert r.status_code == 403, (method, url, r.status_code)
            r = visitor.post(url, data={**form, "csrf_token": visitor_csrf})
            assert r.status_code == 303, (method, url, r.status_code)
            assert r.headers["Location"].startswith("/ui/login?next=")
        elif url.endswith(".json"):
            assert r.status_code == 401, (method, url, r.status_code)
        else:
            assert r.status_code == 303, (method, url, r.status_code)
            assert r.headers["Location"].startswith("/ui/login?next=")
        # the signed-in client reaches every page (whatever the page then answers)
        if method == "GET":
            assert ui.get(url).status_code in (200, 404), url
            assert ui.get(url).mimetype == ("application/json" if ".json" in url else "text/html")
    assert state_of(fleet, registered) == "idle"


def test_secure_cookie_behind_tls_is_one_setting(
    fleet: Fleet, token: str, csrf_from: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOTFLEET_FLASK_SESSION_COOKIE_SECURE", "true")
    client = create_app(fleet=fleet, test_config={"TESTING": True}).test_client()
    csrf = csrf_from(client.get("/ui/login").text)
    r = client.post("/ui/login", data={"csrf_token": csrf, "token": token})
    assert "Secure" in r.headers["Set-Cookie"]


def test_the_sign_in_page_sends_a_signed_in_admin_on(ui: Any) -> None:
    r = ui.get("/ui/login?next=/ui/profiles")
    assert r.status_code == 303
    assert r.headers["Location"] == "/ui/profiles"

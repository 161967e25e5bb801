"""Admin endpoints need a live admin token; boot endpoints need none; callbacks need theirs."""

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope


def admin_routes(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "_doc", None)
        if meta is None or meta.auth != "admin":
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<int:{name}>", "1").replace(f"<{name}>", "52:54:00:12:34:56")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return routes


def test_there_are_admin_routes(app: Flask) -> None:
    assert len(admin_routes(app)) >= 20


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer wrong",
        "Bearer " + "a" * 300,
        "bearer 0000000000000000000000000000000000000000000000000000000000000000",
    ],
)
def test_every_admin_route_refuses_a_missing_or_wrong_token(
    app: Flask, client: FlaskClient, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in admin_routes(app):
        r = client.open(path, method=method, headers=headers, json={})
        assert r.status_code == 401, f"{method} {path}: {r.status_code} {r.text}"
        assert r.json["error"]["code"] == "unauthorized"


def test_revoked_token_is_refused(
    app: Flask, client: FlaskClient, fleet: Fleet, token: str, auth: dict
) -> None:
    assert client.get("/api/v1/profiles", headers=auth).status_code == 200
    with session_scope(fleet.engine, write=True) as s:
        row = admin_tokens.verify(s, token)
        assert row is not None and row.id is not None
        admin_tokens.revoke(s, row.id)
    for method, path in admin_routes(app):
        r = client.open(path, method=method, headers=auth, json={})
        assert r.status_code == 401, f"{method} {path}"


def test_scheme_is_case_insensitive(client: FlaskClient, token: str) -> None:
    assert (
        client.get("/api/v1/profiles", headers={"Authorization": f"bearer {token}"}).status_code
        == 200
    )


@pytest.mark.parametrize(
    "path",
    ["/boot.ipxe", "/ipxe?mac=52:54:00:12:34:56", "/healthz", "/metrics", "/api/v1/openapi.json"],
)
def test_boot_endpoints_need_no_token(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_tokens_are_stored_hashed(fleet: Fleet, token: str) -> None:
    with session_scope(fleet.engine) as s:
        rows = admin_tokens.list_tokens(s)
    assert rows and all(token not in (r.token_hash, r.name) for r in rows)
    assert rows[0].prefix == token[:8]

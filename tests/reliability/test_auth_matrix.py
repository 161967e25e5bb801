"""Who may call what: admin endpoints need a live admin token, installer callbacks need the
token of the current, unfinished install; secrets never leak into logs or answers."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.api.docs import Doc
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import PROFILE, mac, token_in

SERVER = Path(__file__).resolve().parents[2] / "server"
# Routes that are public on purpose and carry no @doc.
UNDOCUMENTED_PUBLIC = {"static", "docs.openapi"}
SAMPLE = {"mac": "52:54:00:12:34:56", "name": "lab", "token": "0" * 64, "relpath": "x"}


def admin_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, concrete URL) of every route whose view is documented as admin-only."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "root" or rule.endpoint.startswith("web."):
            continue  # the web UI signs in with a session: tests/web/test_web_auth.py
        meta: Doc | None = getattr(app.view_functions[rule.endpoint], "_doc", None)
        if meta is None:
            assert rule.endpoint in UNDOCUMENTED_PUBLIC, f"{rule.rule} has no @doc"
            continue
        if meta.auth != "admin":
            continue
        url = re.sub(
            r"<(?:(\w+):)?(\w+)>",
            lambda m: "7" if m.group(1) == "int" else SAMPLE.get(m.group(2), "x"),
            rule.rule,
        )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, url))
    return routes


@pytest.fixture
def revoked(fleet: Fleet) -> str:
    with session_scope(fleet.engine, write=True) as s:
        row, secret = admin_tokens.create(s, "old")
        assert row.id is not None
        admin_tokens.revoke(s, row.id)
    return secret


def test_every_admin_route_refuses_without_a_live_token(
    app: Flask, client: FlaskClient, registered: str, token: str, revoked: str
) -> None:
    routes = admin_routes(app)
    assert len(routes) >= 20, routes
    bad_headers = {
        "none": {},
        "empty bearer": {"Authorization": "Bearer "},
        "wrong scheme": {"Authorization": f"Basic {token}"},
        "wrong token": {"Authorization": "Bearer " + "f" * 64},
        "token with a changed last digit": {
            "Authorization": "Bearer " + token[:-1] + ("0" if token[-1] != "0" else "1")
        },
        "revoked token": {"Authorization": f"Bearer {revoked}"},
        "overlong token": {"Authorization": "Bearer " + "a" * 5000},
    }
    tried = 0
    for method, url in routes:
        for why, headers in bad_headers.items():
            r = client.open(url, method=method, headers=headers, json={})
            assert r.status_code == 401, f"{method} {url} with {why}: {r.status_code} {r.text}"
            assert r.json and r.json["error"]["code"] == "unauthorized"
            tried += 1
    # the same routes with the live token are not refused (whatever else they answer)
    for method, url in routes:
        r = client.open(url, method=method, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code != 401, f"{method} {url} refused a live token"
    FIGURES["auth matrix requests refused"] += tried


def boot(client: FlaskClient, auth: dict[str, str], address: str) -> str:
    """Register `address`, request its reinstall, boot it; its install token."""
    r = client.post(
        "/api/v1/clients", json={"mac": address, "profile": PROFILE["name"]}, headers=auth
    )
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/clients/{address}/reinstall", headers=auth)
    assert r.status_code == 200, r.text
    r = client.get(f"/ipxe?mac={address}")
    return token_in(r.text)


def test_install_tokens_act_only_on_their_own_live_install(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    a, b = mac(1), mac(2)
    token_a, token_b = boot(client, auth, a), boot(client, auth, b)
    assert token_a != token_b

    # A's token moves only A
    r = client.post(f"/api/v1/installs/{token_a}/progress", json={"percent": 10})
    assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/clients/{a}", headers=auth).json["state"] == "installing"
    assert client.get(f"/api/v1/clients/{b}", headers=auth).json["state"] == "booting"

    # a spent token (after done) is refused for every callback
    assert client.post(f"/api/v1/installs/{token_a}/done", json={}).status_code == 200
    for method, path, body in CALLBACKS:
        r = client.open(f"/api/v1/installs/{token_a}/{path}", method=method, json=body)
        assert r.status_code == 409, f"spent token: {path} gave {r.status_code}"
    assert client.get(f"/api/v1/clients/{a}", headers=auth).json["state"] == "installed"

    # a superseded token (cancel + reinstall of B) is refused; the new one works
    assert client.post(f"/api/v1/clients/{b}/cancel", headers=auth).status_code == 200
    assert client.post(f"/api/v1/clients/{b}/reinstall", headers=auth).status_code == 200
    for method, path, body in CALLBACKS:
        r = client.open(f"/api/v1/installs/{token_b}/{path}", method=method, json=body)
        assert r.status_code == 409, f"superseded token: {path} gave {r.status_code}"
    new_b = token_in(client.get(f"/ipxe?mac={b}").text)
    assert new_b != token_b
    r = client.post(f"/api/v1/installs/{new_b}/progress", json={"percent": 5})
    assert r.status_code == 200

    # unknown, malformed and overlong tokens: 401, never a 5xx
    for bad in ("0" * 64, token_a[:-1] + "x", "x" * 129, "%00", "..", token_a.upper()):
        for method, path, body in CALLBACKS:
            r = client.open(f"/api/v1/installs/{bad}/{path}", method=method, json=body)
            assert r.status_code in (401, 404), f"{bad!r} {path}: {r.status_code} {r.text}"


CALLBACKS = [
    ("GET", "answer", None),
    ("POST", "progress", {"percent": 50}),
    ("POST", "done", {}),
    ("POST", "failed", {"log": "x"}),
]


# --- constant time: the design, asserted on the source -----------------------------------------

SECRET_WORDS = ("token", "secret", "password", "csrf", "site_key")


def _names(node: ast.AST) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id.lower())
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr.lower())
    return found


def _is_sql_column(node: ast.AST) -> bool:
    """`Model.column == value` builds SQL: the database compares (hashes), not Python."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id[:1].isupper()
    )


def test_no_secret_is_compared_with_equals() -> None:
    """Tokens are found by their hash in SQL; a raw secret never meets `==` in Python (an
    early-exit compare leaks the matching prefix through timing). Where two secrets must be
    compared directly (the web UI's CSRF token), hmac.compare_digest is the way."""
    offenders = []
    checked = 0
    for path in sorted(SERVER.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            checked += 1
            if _is_sql_column(node.left):
                continue
            for operand in [node.left, *node.comparators]:
                if any(word in name for name in _names(operand) for word in SECRET_WORDS):
                    offenders.append(f"{path.relative_to(SERVER.parent)}:{node.lineno}")
    assert checked > 50, "the walk found too few comparisons to mean anything"
    assert not offenders, f"secret compared with ==: {offenders}"


def test_tokens_are_looked_up_by_hash() -> None:
    """Both lookups go through token_hash() before they touch the database."""
    for module, func in (
        ("registry/admin_tokens.py", "verify"),
        ("registry/installs.py", "by_token"),
    ):
        tree = ast.parse((SERVER / module).read_text())
        body = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == func)
        calls = {
            c.func.id
            for c in ast.walk(body)
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
        }
        assert "token_hash" in calls, f"{module}:{func} does not hash the token"


# --- nothing secret in logs or answers ----------------------------------------------------------


def test_no_secret_in_any_log_line_or_admin_answer(
    client: FlaskClient,
    fleet: Fleet,
    auth: dict[str, str],
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []

    def call(method: str, url: str, **kw: object) -> str:
        r = client.open(url, method=method, **kw)  # type: ignore[arg-type]
        answers.append(r.get_data(as_text=True))
        return r.get_data(as_text=True)

    password_hash = "$6$rounds=5000$pepperpepper$SECRETHASHVALUEabcdefghijklmnop"
    call(
        "POST",
        "/api/v1/profiles",
        json={**PROFILE, "variables": {"root_password_hash": password_hash}},
        headers=auth,
    )
    a, b = mac(10), mac(11)
    for m in (a, b):
        call("POST", "/api/v1/clients", json={"mac": m, "profile": "debian12"}, headers=auth)
        call("POST", f"/api/v1/clients/{m}/reinstall", headers=auth)
    script_a = client.get(f"/ipxe?mac={a}").text  # the booting machine must get its URL
    script_b = client.get(f"/ipxe?mac={b}").text
    token_a, token_b = token_in(script_a), token_in(script_b)
    call("POST", f"/api/v1/installs/{token_a}/progress", json={"percent": 30, "message": "disk"})
    call("POST", f"/api/v1/installs/{token_a}/done", json={"message": "ok"})
    call("POST", f"/api/v1/installs/{token_b}/failed", json={"log": "oops", "message": "no"})
    call("POST", f"/api/v1/installs/{token_b}/done", json={})  # refused: spent
    call("GET", "/api/v1/clients/" + "0" * 12, headers={"Authorization": "Bearer " + "e" * 64})
    for m in (a, b):
        call("GET", f"/api/v1/clients/{m}", headers=auth)
        call("GET", f"/api/v1/clients/{m}/events", headers=auth)
        call("GET", f"/api/v1/clients/{m}/installs", headers=auth)
        call("GET", f"/api/v1/clients/{m}/installs/1", headers=auth)
        call("GET", f"/api/v1/clients/{m}/installs/2", headers=auth)
    call("GET", "/api/v1/clients", headers=auth)
    call("GET", "/metrics")
    with session_scope(fleet.engine) as s:
        hashes = {t.token_hash for t in admin_tokens.list_tokens(s)}
        from sqlmodel import select

        from server.models import Install

        hashes |= {i.token_hash for i in s.exec(select(Install))}
        salts = {i.salt for i in s.exec(select(Install))}
    secrets = {token, token_a, token_b, "e" * 64} | hashes | salts | {fleet.policy.site_key.hex()}
    assert len(caplog.records) > 0, "the lifecycle logged nothing: the check would be empty"
    lines = [r.getMessage() for r in caplog.records]
    for secret in secrets:
        for line in lines:
            assert secret not in line, f"secret in log line: {line}"
        for answer in answers:
            assert secret not in answer, f"secret in API answer: {answer[:300]}"
    # A password hash in variables is the admin's own data (shown to admin tokens, put into
    # the answer file); it must not leak into logs, the event log or boot scripts.
    events = [call("GET", f"/api/v1/clients/{m}/events", headers=auth) for m in (a, b)]
    for text in [*lines, *events, script_a, script_b, client.get("/metrics").text]:
        assert password_hash not in text, f"password hash leaked: {text[:300]}"
    FIGURES["log lines checked for secrets"] += len(lines)

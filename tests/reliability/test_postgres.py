"""The registry and the one-shot lifecycle on a real PostgreSQL server (and on SQLite)."""

from __future__ import annotations

from pathlib import Path

from server.api import create_app
from server.config import Settings
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope
from tests.reliability.helpers import PROFILE, mac, token_in


def test_full_lifecycle(settings: Settings, db_url: str) -> None:
    fleet = Fleet.open(settings.replace(database_url=db_url))
    try:
        app = create_app(fleet=fleet, test_config={"TESTING": True})
        http = app.test_client()
        with session_scope(fleet.engine, write=True) as s:
            _, secret = admin_tokens.create(s)
        auth = {"Authorization": f"Bearer {secret}"}
        assert http.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
        m = mac(1)
        r = http.post(
            "/api/v1/clients",
            json={"mac": m, "profile": "debian12", "groups": ["lab"], "variables": {"x": [1, "a"]}},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        assert http.post(f"/api/v1/clients/{m}/reinstall", headers=auth).status_code == 200
        token = token_in(http.get(f"/ipxe?mac={m}").text)
        r = http.post(f"/api/v1/installs/{token}/progress", json={"percent": 40})
        assert r.status_code == 200, r.text
        assert http.post(f"/api/v1/installs/{token}/done", json={}).status_code == 200
        body = http.get(f"/api/v1/clients/{m}", headers=auth).json
        assert body["state"] == "installed" and body["install"]["progress"] == 100
        assert body["variables"] == {"x": [1, "a"]} and body["groups"] == ["lab"]
        kinds = [
            e["kind"] for e in http.get(f"/api/v1/clients/{m}/events", headers=auth).json["items"]
        ]
        assert kinds == ["installed", "progress", "installing", "boot", "reinstall", "registered"]
        page = http.get("/api/v1/clients?state=installed&q=52:54", headers=auth).json
        assert page["total"] == 1
        assert http.get("/healthz").status_code == 200
    finally:
        fleet.engine.dispose()


def test_migrate_is_idempotent(settings: Settings, db_url: str, tmp_path: Path) -> None:
    for _ in range(2):
        fleet = Fleet.open(settings.replace(database_url=db_url))
        fleet.engine.dispose()

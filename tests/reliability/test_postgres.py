"""The registry and the one-shot lifecycle on a real PostgreSQL server (and on SQLite)."""

from __future__ import annotations

import threading
import time

import requests
from flask.testing import FlaskClient

from server.app import create_app
from server.config import Settings
from server.fleet import Fleet
from server.reaper import reap
from server.registry import admin_tokens
from server.registry.database import session_scope
from server.registry.migrations import SCHEMA_VERSION, current_version, migrate
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import PROFILE, admin_app, mac, token_in
from tests.serve import Served, admin_token


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
        fleet.close()


def test_migrate_is_idempotent(settings: Settings, db_url: str) -> None:
    """Opening a used registry again migrates it again: the schema stays at the current
    version and every row (token, profile, group, client, install, events) as it was."""
    settings = settings.replace(database_url=db_url)
    m = mac(2)

    def read_all(http: FlaskClient, auth: dict[str, str]) -> list[object]:
        paths = ["/profiles", "/groups", f"/clients/{m}", f"/clients/{m}/events"]
        answers = [http.get(f"/api/v1{path}", headers=auth) for path in paths]
        assert [r.status_code for r in answers] == [200] * len(paths), answers[0].text
        return [r.json for r in answers]

    with admin_app(settings) as (http, auth):
        assert http.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
        body = {"mac": m, "profile": "debian12", "groups": ["lab"], "variables": {"x": 1}}
        assert http.post("/api/v1/clients", json=body, headers=auth).status_code == 201
        assert http.post(f"/api/v1/clients/{m}/reinstall", headers=auth).status_code == 200
        assert http.get(f"/ipxe?mac={m}").status_code == 200  # an install under way
        before = read_all(http, auth)
    assert before[2]["state"] == "booting" and before[3]["items"]  # type: ignore[index]
    fleet = Fleet.open(settings)  # migrates (again) as it opens
    try:
        assert current_version(fleet.engine) == SCHEMA_VERSION
        assert migrate(fleet.engine) == SCHEMA_VERSION
        assert current_version(fleet.engine) == SCHEMA_VERSION
        http = create_app(fleet=fleet, test_config={"TESTING": True}).test_client()
        assert read_all(http, auth) == before
    finally:
        fleet.close()


ROUNDS = 10


def test_two_servers_share_one_registry(settings: Settings, pg_url: str) -> None:
    """Two `bootfleet serve` on one PostgreSQL database and one data dir (site.key): a pending
    client fetching its script from both at the same moment starts exactly one install."""
    data, images = settings.data_dir, settings.images
    db = ("--database-url", pg_url)
    token = admin_token(data, *db)
    auth = {"Authorization": f"Bearer {token}"}
    servers = [Served(data, images, *db).start(), Served(data, images, *db).start()]
    try:
        a, b = (s.url for s in servers)
        http = requests.Session()
        assert http.post(f"{a}/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
        for n in range(ROUNDS):
            m = mac(n + 1)
            body = {"mac": m, "profile": "debian12"}
            assert http.post(f"{b}/api/v1/clients", json=body, headers=auth).status_code == 201
            assert http.post(f"{a}/api/v1/clients/{m}/reinstall", headers=auth).status_code == 200
            barrier = threading.Barrier(4)
            scripts: list[tuple[int, str]] = []

            def fetch(
                url: str,
                m: str = m,
                barrier: threading.Barrier = barrier,
                scripts: list[tuple[int, str]] = scripts,
            ) -> None:
                with requests.Session() as own:
                    barrier.wait(timeout=30)
                    r = own.get(f"{url}/ipxe?mac={m}", timeout=30)
                    scripts.append((r.status_code, r.text))

            threads = [threading.Thread(target=fetch, args=(u,)) for u in (a, b, a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert [s for s, _ in scripts] == [200] * 4, scripts
            tokens = {token_in(text) for _, text in scripts}
            assert len(tokens) == 1, "two installers handed out for one reinstall"
            installs = http.get(f"{b}/api/v1/clients/{m}/installs", headers=auth).json()["items"]
            assert len(installs) == 1 and installs[0]["state"] == "booting"
            events = http.get(f"{a}/api/v1/clients/{m}/events", headers=auth).json()["items"]
            assert [e["kind"] for e in events].count("boot") == 1, events
            # the token works on either server: both derive it from the shared site.key
            (tok,) = tokens
            r = http.post(f"{b}/api/v1/installs/{tok}/progress", json={"percent": 1})
            assert r.status_code == 200, r.text
            assert http.post(f"{a}/api/v1/installs/{tok}/done", json={}).status_code == 200
        FIGURES["two-server simultaneous boots (4 fetches each)"] += ROUNDS
    finally:
        for s in servers:
            s.stop()


def test_deadlines_fire(settings: Settings, db_url: str) -> None:
    """The reaper compares stored deadlines with the clock the same way on both backends."""
    fleet = Fleet.open(settings.replace(database_url=db_url, boot_timeout=1))
    try:
        http = create_app(fleet=fleet, test_config={"TESTING": True}).test_client()
        with session_scope(fleet.engine, write=True) as s:
            _, secret = admin_tokens.create(s)
        auth = {"Authorization": f"Bearer {secret}"}
        assert http.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
        for n in (1, 2):
            body = {"mac": mac(n), "profile": "debian12"}
            assert http.post("/api/v1/clients", json=body, headers=auth).status_code == 201
            assert http.post(f"/api/v1/clients/{mac(n)}/reinstall", headers=auth).status_code == 200
        token_in(http.get(f"/ipxe?mac={mac(1)}").text)  # booting, deadline in 1 s
        assert reap(fleet.engine) == []  # not yet
        failed: list[str] = []
        for _ in range(200):  # bounded: 200 rounds of 50 ms
            failed = reap(fleet.engine)
            if failed:
                break
            time.sleep(0.05)
        assert failed == [mac(1)]  # the pending one has no deadline
        body = http.get(f"/api/v1/clients/{mac(1)}", headers=auth).json
        assert body["state"] == "failed" and body["install"]["result"] == "deadline"
        assert body["install"]["deadline_at"] is None and body["install"]["finished_at"].endswith(
            "Z"
        )
        assert reap(fleet.engine) == []  # once only
    finally:
        fleet.close()

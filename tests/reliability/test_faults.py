"""A registry that is locked or gone answers 503 with Retry-After, never a crash or a 500,
and the service recovers by itself when the lock is released or the server is back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from server.app import create_app
from server.config import Settings
from server.errors import Unavailable
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope
from tests.reliability import pg
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import PROFILE, mac
from tests.reliability.pg import PgServer


def setup_registry(fleet: Fleet) -> tuple[FlaskClient, dict[str, str]]:
    http = create_app(fleet=fleet, test_config={"TESTING": True}).test_client()
    with session_scope(fleet.engine, write=True) as s:
        _, secret = admin_tokens.create(s)
    auth = {"Authorization": f"Bearer {secret}"}
    assert http.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    r = http.post("/api/v1/clients", json={"mac": mac(1), "profile": "debian12"}, headers=auth)
    assert r.status_code == 201
    return http, auth


def assert_unavailable(r: object) -> None:
    status = r.status_code  # type: ignore[attr-defined]
    assert status == 503, f"{status}: {r.get_data(as_text=True)}"  # type: ignore[attr-defined]
    assert int(r.headers["Retry-After"]) > 0  # type: ignore[attr-defined]
    assert r.json["error"]["code"] == "unavailable"  # type: ignore[attr-defined]


def test_locked_sqlite_gives_503_then_recovers(settings: Settings) -> None:
    fleet = Fleet.open(settings.replace(db_busy_timeout=200))
    try:
        http, auth = setup_registry(fleet)
        r = http.post("/api/v1/clients", json={"mac": mac(3), "profile": "debian12"}, headers=auth)
        assert r.status_code == 201
        assert http.post(f"/api/v1/clients/{mac(3)}/reinstall", headers=auth).status_code == 200
        holder = sqlite3.connect(settings.data_dir / "bootfleet.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # held far longer than the 200 ms busy timeout
        try:
            writes = [
                lambda: http.post(f"/api/v1/clients/{mac(1)}/reinstall", headers=auth),
                lambda: http.post("/api/v1/clients", json={"mac": mac(2)}, headers=auth),
                lambda: http.get(f"/ipxe?mac={mac(3)}"),  # an install's boot: a transition
            ]
            for call in writes:
                assert_unavailable(call())
            # WAL: readers are not blocked by a writer, so the admin can still look, and an
            # idle machine still gets its local boot (decided on a read); its sighting waits
            assert http.get(f"/api/v1/clients/{mac(1)}", headers=auth).status_code == 200
            r = http.get(f"/ipxe?mac={mac(1)}&arch=x86_64")
            assert r.status_code == 200 and "local boot" in r.text, r.text
            with pytest.raises(Unavailable):
                fleet.booter.registry.flush()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        fleet.booter.registry.flush()  # the queued sighting is written once the lock is gone
        seen = http.get(f"/api/v1/clients/{mac(1)}", headers=auth).json
        assert (seen["last_arch"], seen["last_ip"]) == ("x86_64", "127.0.0.1")
        # recovered by itself: the very same calls now go through
        r = http.post(f"/api/v1/clients/{mac(1)}/reinstall", headers=auth)
        assert r.status_code == 200, r.text
        assert http.post("/api/v1/clients", json={"mac": mac(2)}, headers=auth).status_code == 201
        assert "installing" in http.get(f"/ipxe?mac={mac(1)}").text
        FIGURES["fault: locked SQLite -> 503 -> recovered"] += 1
    finally:
        fleet.close()


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL server of this test's own, to stop and start again."""
    with pg.running() as server:
        yield server


def test_postgres_down_gives_503_then_recovers(settings: Settings, own_pg: PgServer) -> None:
    fleet = Fleet.open(settings.replace(database_url=own_pg.new_database()))
    try:
        http, auth = setup_registry(fleet)
        own_pg.stop()
        calls = [
            lambda: http.get(f"/api/v1/clients/{mac(1)}", headers=auth),
            lambda: http.post(f"/api/v1/clients/{mac(1)}/reinstall", headers=auth),
            lambda: http.get(f"/ipxe?mac={mac(1)}"),
            lambda: http.get("/healthz"),
            lambda: http.post("/api/v1/installs/" + "0" * 64 + "/done", json={}),
        ]
        for _ in range(2):  # a second round: the broken pooled connections are not reused
            for call in calls:
                assert_unavailable(call())
        own_pg.start()  # same port, same data: the server is back
        assert http.get("/healthz").status_code == 200
        r = http.post(f"/api/v1/clients/{mac(1)}/reinstall", headers=auth)
        assert r.status_code == 200, r.text
        assert "installing" in http.get(f"/ipxe?mac={mac(1)}").text
        FIGURES["fault: PostgreSQL down -> 503 -> recovered"] += 1
    finally:
        fleet.close()

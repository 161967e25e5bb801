"""Shared fixtures: a fresh registry per test, the app, its test client and an admin token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.app import create_app
from server.config import Settings
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope
from tests.reliability import pg
from tests.reliability.pg import PgServer

MAC = "52:54:00:12:34:56"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    images = tmp_path / "images"
    (images / "debian").mkdir(parents=True)
    (images / "debian" / "linux").write_bytes(b"kernel")
    (images / "debian" / "initrd.gz").write_bytes(b"initrd")
    return Settings(
        data_dir=tmp_path / "data",
        images_dir=images,
        advertise="198.18.0.1",
        http_port=8080,
        tftp_enabled=False,
    )


@pytest.fixture
def fleet(settings: Settings) -> Iterator[Fleet]:
    f = Fleet.open(settings)
    yield f
    f.close()


@pytest.fixture
def app(fleet: Fleet) -> Flask:
    return create_app(fleet=fleet, test_config={"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def token(fleet: Fleet) -> str:
    with session_scope(fleet.engine, write=True) as s:
        _, secret = admin_tokens.create(s, "test")
    return secret


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PROFILE = {
    "name": "debian12",
    "kernel": "debian/linux",
    "initrd": ["debian/initrd.gz"],
    "cmdline": "auto=true priority=critical hostname={{ hostname }}",
    "variables": {"locale": "en_US.UTF-8"},
}


@pytest.fixture
def registered(client: FlaskClient, auth: dict[str, str]) -> str:
    """A profile and one client using it; returns the client's MAC."""
    r = client.post("/api/v1/profiles", json=PROFILE, headers=auth)
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/clients",
        json={"mac": MAC, "hostname": "pc01", "profile": "debian12", "groups": ["lab"]},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    return MAC


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the session."""
    with pg.running() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh PostgreSQL database for one test."""
    if not pg_server.started:
        pg_server.start()
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The registry URL, once for a SQLite file and once for a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'bootfleet.db'}"
    return str(request.getfixturevalue("pg_url"))

"""Timestamps read back from disk are aware UTC, and the grace window and the reaper use
them after a restart: on a SQLite file and on PostgreSQL, whose time zone here is not UTC
(a server set up in local time, as initdb does by default).

PostgreSQL is also tried with the columns `timestamp without time zone`: what the schema
got from a sqlmodel before 0.0.45 (pyproject allows 0.0.22), which mapped `datetime` to a
naive DateTime; `migrate()` never alters an existing table."""

from __future__ import annotations

from datetime import UTC, timedelta

import psycopg
import pytest
from sqlalchemy import DateTime
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from server.config import Settings
from server.fleet import Fleet
from server.models import Install, UtcTimestamp, utcnow
from server.reaper import reap
from server.registry import clients, installs
from server.registry.database import session_scope
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import PROFILE, admin_app, mac

FAR_ZONE = "Pacific/Kiritimati"  # UTC+14: any confusion of local and UTC shows by hours


def test_every_datetime_column_is_a_utc_timestamp() -> None:
    """Not left to sqlmodel: before 0.0.45 it made naive DateTime columns of `datetime`, and
    this file's restart test failed there on SQLite too (naive values read back; the grace
    window raised "can't subtract offset-naive and offset-aware datetimes")."""
    columns = [
        c
        for table in SQLModel.metadata.sorted_tables
        for c in table.columns
        if isinstance(c.type, DateTime | UtcTimestamp)
    ]
    assert len(columns) >= 15
    assert all(isinstance(c.type, UtcTimestamp) for c in columns), columns


def far_zone(url: str) -> None:
    u = make_url(url)
    dsn = f"host={u.host} port={u.port} user={u.username} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {u.database} SET timezone TO '{FAR_ZONE}'")


def naive_columns(url: str) -> None:
    """Every timestamptz column of the registry becomes `timestamp without time zone`."""
    u = make_url(url)
    dsn = f"host={u.host} port={u.port} user={u.username} dbname={u.database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type = 'timestamp with time zone'"
        ).fetchall()
        assert found
        for table, column in found:
            conn.execute(
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}"'
                f" TYPE timestamp without time zone USING \"{column}\" AT TIME ZONE 'UTC'"
            )


@pytest.fixture
def url(db_url: str) -> str:
    if db_url.startswith("postgresql"):
        far_zone(db_url)
    return db_url


def booting_client(settings: Settings) -> str:
    """A client whose installer boot config went out; the server then stops."""
    with admin_app(settings) as (http, auth):
        assert http.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
        m = mac(7)
        r = http.post("/api/v1/clients", json={"mac": m, "profile": "debian12"}, headers=auth)
        assert r.status_code == 201, r.text
        assert http.post(f"/api/v1/clients/{m}/reinstall", headers=auth).status_code == 200
        assert "/api/v1/installs/" in http.get(f"/ipxe?mac={m}").text
        return m


def test_restart_reads_aware_utc_and_reaps(settings: Settings, url: str) -> None:
    restart_and_reap(settings.replace(database_url=url))
    FIGURES[f"timestamps read back aware UTC after a restart, {url.split(':')[0]}"] += 1


def test_naive_columns_on_postgres(settings: Settings, pg_url: str) -> None:
    settings = settings.replace(database_url=pg_url)
    Fleet.open(settings).close()  # the schema, as migrate() makes it
    naive_columns(pg_url)
    far_zone(pg_url)
    restart_and_reap(settings)


def restart_and_reap(settings: Settings) -> None:
    """Boot a client, restart, check the values read back, then reap it after a restart."""
    m = booting_client(settings)

    fleet = Fleet.open(settings)  # a new engine: every value below comes from disk
    try:
        with session_scope(fleet.engine) as s:
            install = installs.current(s, clients.get(s, m))
            assert install is not None and install.booted_at and install.deadline_at
            for value in (install.created_at, install.booted_at, install.deadline_at):
                assert value.tzinfo is not None and value.utcoffset() == timedelta(0), value
            assert abs(utcnow() - install.booted_at) < timedelta(minutes=1), install.booted_at
            assert installs.within_grace(install, fleet.policy)
            later = install.booted_at + timedelta(seconds=fleet.policy.grace_seconds + 1)
            assert not installs.within_grace(install, fleet.policy, later)
            assert reap(fleet.engine) == []  # the boot deadline is minutes away
        with session_scope(fleet.engine, write=True) as s:
            row = s.get(Install, install.id)
            assert row is not None
            row.deadline_at = utcnow() - timedelta(seconds=1)
            s.add(row)
    finally:
        fleet.close()

    fleet = Fleet.open(settings)
    try:
        assert reap(fleet.engine) == [m]
        with session_scope(fleet.engine) as s:
            row = s.get(Install, install.id)
            assert row is not None and row.finished_at is not None
            assert row.finished_at.tzinfo == UTC
            assert abs(utcnow() - row.finished_at) < timedelta(minutes=1), row.finished_at
    finally:
        fleet.close()

"""Upgrades keep the registry: a database made by release 0.1.0 (schema 1), loaded from the
dumps in tests/fixtures/ (made by that release's code, see make_registry_v1.py), is opened by
this release as `bootfleet serve` opens it, on SQLite and on PostgreSQL, and every row is
still there, read back the same."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, inspect, select
from sqlalchemy.engine import Engine

from server import backup
from server.app import create_app
from server.cli import main
from server.config import Settings
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import make_engine, session_scope
from server.registry.migrations import SCHEMA_VERSION, current_version
from tests.reliability.pg import PgServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# What make_registry_v1.py put in: every table has rows.
EXPECTED_ROWS = {
    "admintoken": 2,
    "client": 5,
    "clientgroup": 3,
    "clientgrouplink": 10,
    "discovered": 3,
    "event": 19,
    "install": 4,
    "meta": 1,
    "profile": 2,
}
STATES = {
    "52:54:00:00:00:01": "installed",
    "52:54:00:00:00:02": "failed",
    "52:54:00:00:00:03": "booting",
    "52:54:00:00:00:04": "pending",
    "52:54:00:00:00:05": "idle",
}


def load_sqlite(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.executescript((FIXTURES / "registry-v1.sqlite.sql").read_text())
    finally:
        conn.close()
    return f"sqlite:///{path}"


def load_postgres(server: PgServer) -> str:
    url = server.new_database()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    dump = FIXTURES / "registry-v1.postgres.sql"
    subprocess.run(
        [str(server.bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(dump)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def v1_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A registry as release 0.1.0 left it, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return load_sqlite(tmp_path / "data" / "bootfleet.db")
    return load_postgres(request.getfixturevalue("pg_server"))


def schema(url: str) -> dict[str, Any]:
    """Columns, indexes and unique constraints of every table, as the database reports them."""
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {
            table: (
                # by name: ALTER TABLE ADD COLUMN appends, create_all follows the model
                sorted(
                    (c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)
                ),
                sorted((i["name"], tuple(i["column_names"])) for i in found.get_indexes(table)),
                sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(table)),
                found.get_pk_constraint(table)["constrained_columns"],
            )
            for table in found.get_table_names()
        }
    finally:
        engine.dispose()


def every_row(
    engine: Engine, columns: dict[str, list[str]] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows in primary-key order, read through the database's own catalogue
    (not today's models), so a column that lost or changed data would show. With `columns`
    (table -> column names), only those tables and columns: what an older schema had."""
    meta = MetaData()
    meta.reflect(engine)
    rows = {}
    with engine.connect() as conn:
        for name, table in meta.tables.items():
            if columns is not None and name not in columns:
                continue
            cols = [table.c[c] for c in columns[name]] if columns is not None else table.columns
            order = list(table.primary_key.columns) or list(table.columns)
            rows[name] = [tuple(r) for r in conn.execute(select(*cols).order_by(*order))]
    return rows


def column_names(engine: Engine) -> dict[str, list[str]]:
    meta = MetaData()
    meta.reflect(engine)
    return {name: [c.name for c in table.columns] for name, table in meta.tables.items()}


def settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        images_dir=tmp_path / "images",
        database_url=url,
        advertise="198.18.0.1",
        tftp_enabled=False,
    )


def test_the_fixture_is_schema_1_with_rows_in_every_table(v1_url: str) -> None:
    engine = make_engine(v1_url)
    try:
        assert current_version(engine) == 1
        counts = {name: len(rows) for name, rows in every_row(engine).items()}
        assert counts == EXPECTED_ROWS
        assert "ix_event_at" not in {i["name"] for i in inspect(engine).get_indexes("event")}
    finally:
        engine.dispose()


def test_the_new_release_keeps_every_row(v1_url: str, tmp_path: Path) -> None:
    engine = make_engine(v1_url)
    before = every_row(engine)
    v1_columns = column_names(engine)
    engine.dispose()

    fleet = Fleet.open(settings_for(v1_url, tmp_path))  # what `bootfleet serve` runs first
    try:
        after = every_row(fleet.engine, v1_columns)
        # what later schemas added: new tables empty, new columns empty (NULL) in every row
        for name, cols in column_names(fleet.engine).items():
            added = [c for c in cols if c not in v1_columns.get(name, [])]
            if added:
                values = every_row(fleet.engine, {name: added})[name]
                assert all(v is None for row in values for v in row), (name, added)
        assert current_version(fleet.engine) == SCHEMA_VERSION == 3
        version_row = ("schema_version", str(SCHEMA_VERSION))
        assert after.pop("meta") == [version_row] and before.pop("meta") == [
            ("schema_version", "1")
        ]
        assert after == before
        indexes = inspect(fleet.engine)
        assert "ix_event_at" in {i["name"] for i in indexes.get_indexes("event")}
        assert "ix_discovered_last_seen_at" in {
            i["name"] for i in indexes.get_indexes("discovered")
        }

        # and the service reads them: states, groups, an install's log, the discovered list
        with session_scope(fleet.engine, write=True) as s:
            _, secret = admin_tokens.create(s, "upgrade")
        auth = {"Authorization": f"Bearer {secret}"}
        http = create_app(fleet=fleet, test_config={"TESTING": True}).test_client()
        r = http.get("/api/v1/clients", headers=auth)
        assert r.status_code == 200, r.text
        listed = r.json["items"]
        assert {c["mac"]: c["state"] for c in listed} == STATES
        assert all("lab" in c["groups"] for c in listed)
        r = http.get("/api/v1/clients/52:54:00:00:00:02/installs", headers=auth)
        assert r.status_code == 200, r.text
        (failed,) = r.json["items"]
        assert failed["state"] == "failed" and failed["message"] == "disk full", r.text
        r = http.get(f"/api/v1/clients/52:54:00:00:00:02/installs/{failed['id']}", headers=auth)
        assert "E: no space left\ufffdon device" in r.text, r.text
        r = http.get("/api/v1/discovered", headers=auth)
        assert r.status_code == 200, r.text
        assert [d["mac"] for d in r.json["items"]] == [f"52:54:00:aa:00:0{n}" for n in (2, 1, 0)]
    finally:
        fleet.close()


def test_an_upgraded_schema_is_the_schema_of_a_fresh_install(
    v1_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if v1_url.startswith("sqlite"):
        fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        fresh = request.getfixturevalue("pg_server").new_database()
    for url in (v1_url, fresh):
        Fleet.open(settings_for(url, tmp_path)).close()
    assert schema(v1_url) == schema(fresh)


def test_dry_run_names_the_pending_step_and_changes_nothing(v1_url: str) -> None:
    out = CliRunner().invoke(
        main, ["db", "migrate", "--dry-run", "--database-url", v1_url], catch_exceptions=False
    )
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        "schema at version 1; migrate would run 2 step(s):",
        "  1 -> 2: index event.at and discovered.last_seen_at (retention, the discovered list);"
        " no row changes",
        "  2 -> 3: add tables hook, delivery, wave, wavemember; add clientgroup.wake_address and"
        " discovered.requested_at/manufacturer/product/serial/uuid; no row changes",
    ]
    engine = make_engine(v1_url)
    try:
        assert current_version(engine) == 1
        assert "ix_event_at" not in {i["name"] for i in inspect(engine).get_indexes("event")}
    finally:
        engine.dispose()


def test_a_backup_of_the_old_release_restores_into_the_new(tmp_path: Path) -> None:
    old = load_sqlite(tmp_path / "backup" / "bootfleet-0.1.0.db")
    engine = make_engine(old)
    before = every_row(engine)
    v1_columns = column_names(engine)
    engine.dispose()
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'bootfleet.db'}"

    done = backup.restore(url, data, backup.sqlite_path(old), keep_pending=True)

    assert done.armed == ["52:54:00:00:00:03", "52:54:00:00:00:04"]
    engine = make_engine(url)
    try:
        assert current_version(engine) == SCHEMA_VERSION
        after = every_row(engine, v1_columns)
        assert after.pop("meta") == [("schema_version", str(SCHEMA_VERSION))]
        before.pop("meta")
        assert after == before
    finally:
        engine.dispose()

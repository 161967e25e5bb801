"""The boot path's way to the database (server/registry/driver.py): the registry's own Core
statements, run on the SQLite driver, read and write what Core and the ORM do."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, bindparam, insert
from sqlalchemy.engine import Connection, Engine
from sqlmodel import select

from server.errors import Unavailable
from server.lifecycle import State
from server.models import Client, Discovered, Event, utcnow
from server.registry import driver, events
from server.registry.database import make_engine, session_scope
from server.registry.migrations import migrate
from server.registry.seen import _FIND, _SEEN

A, B, C = "52:54:00:00:0d:01", "52:54:00:00:0d:02", "52:54:00:00:0d:03"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    found = make_engine(db_url, busy_timeout_ms=300)
    migrate(found)
    yield found
    found.dispose()


def add_client(engine: Engine, mac: str, state: State = State.IDLE) -> int:
    with session_scope(engine, write=True) as s:
        client = Client(mac=mac, hostname="pc-" + mac[-2:], state=state)
        s.add(client)
        s.flush()
        assert client.id is not None
        return client.id


def test_reading_a_client_gives_what_core_gives(engine: Engine) -> None:
    cid = add_client(engine, A, State.PENDING)
    with driver.reading(engine) as conn:
        row = conn.execute(_FIND, {"b_mac": A}).first()
        missing = conn.execute(_FIND, {"b_mac": B}).first()
    with engine.connect() as core:
        expected = core.execute(_FIND, {"b_mac": A}).first()
    assert tuple(row) == tuple(expected) == (cid, State.PENDING)
    assert type(row[1]) is State  # the column type's result processor ran
    assert (row.id, row.state) == (cid, State.PENDING)  # columns by name, as Core rows
    assert missing is None


def test_an_in_list_gets_a_placeholder_per_item_and_typed_results(engine: Engine) -> None:
    add_client(engine, A)
    sighting = events.Sighting(B, None, None, utcnow())
    with driver.writing(engine) as conn:
        events.seen_unregistered_many(conn, [sighting])
    with driver.reading(engine) as conn:
        three = conn.execute(events._KNOWN, {"macs": [A, B, C]}).all()
        one = conn.execute(events._KNOWN, {"macs": [B]}).all()
        none = conn.execute(events._KNOWN, {"macs": []}).all()
        table = Client.__table__  # type: ignore[attr-defined]
        stmt = select(table.c.mac).where(table.c.mac.not_in(bindparam("macs", expanding=True)))
        all_but_none = conn.execute(stmt, {"macs": []}).all()
    assert sorted(three) == [(A, True), (B, False)]
    assert all(type(flag) is bool for _, flag in three)
    assert one == [(B, False)]
    assert none == []
    assert [tuple(r) for r in all_but_none] == [(A,)]


def test_a_written_timestamp_reads_back_through_the_orm_unchanged(engine: Engine) -> None:
    cid = add_client(engine, A)
    at = utcnow().replace(microsecond=123456) - timedelta(days=3)
    with driver.writing(engine) as conn:
        n = conn.execute(
            _SEEN,
            [{"b_id": cid, "b_mac": A, "b_ip": "198.18.0.7", "b_arch": None, "b_seen": at}],
        ).rowcount
    assert n == 1
    with session_scope(engine) as s:
        client = s.get(Client, cid)
        assert client is not None
        assert (client.last_seen_at, client.last_ip, client.last_arch) == (at, "198.18.0.7", None)
        # and the database compares it with a value the ORM binds (same stored format)
        found = s.exec(select(Client.id).where(Client.last_seen_at == at)).all()
    assert found == [cid]


def test_an_insert_fills_scalar_column_defaults_as_core_does(engine: Engine) -> None:
    at = utcnow()
    with driver.writing(engine) as conn:
        conn.execute(insert(Event.__table__), [{"mac": A, "at": at, "kind": "note"}])  # type: ignore[attr-defined]
    with session_scope(engine) as s:
        [e] = s.exec(select(Event)).all()
    assert (e.mac, e.at, e.kind, e.detail, e.source) == (A, at, "note", "", None)


def test_a_failed_block_writes_nothing_and_frees_the_database(engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="half-way"), driver.writing(engine) as conn:
        events.seen_unregistered_many(conn, [events.Sighting(A, None, None, utcnow())])
        raise RuntimeError("half-way")
    with session_scope(engine) as s:
        assert s.get(Discovered, A) is None
        assert s.exec(select(Event)).all() == []
    with driver.writing(engine) as conn:  # no transaction was left open
        events.seen_unregistered_many(conn, [events.Sighting(A, None, None, utcnow())])
    with session_scope(engine) as s:
        assert s.get(Discovered, A) is not None


def test_a_missing_parameter_is_an_error_not_null(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bf.db'}")
    migrate(engine)
    with pytest.raises(KeyError, match="b_mac"), driver.reading(engine) as conn:
        conn.execute(_FIND, {})
    engine.dispose()


def test_a_callable_default_must_be_passed(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bf.db'}")
    table = Table(
        "stamped",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String),
        Column("at", DateTime, default=utcnow),
    )
    table.create(engine)
    with pytest.raises(TypeError, match="pass a value for at"), driver.writing(engine) as conn:
        conn.execute(insert(table), [{"name": "x"}])
    with driver.writing(engine) as conn:
        conn.execute(insert(table), [{"name": "x", "at": utcnow()}])
    engine.dispose()


def test_returning_is_refused_rather_than_its_rows_dropped(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bf.db'}")
    migrate(engine)
    table = Event.__table__  # type: ignore[attr-defined]
    row = {"mac": A, "at": utcnow(), "kind": "note"}
    with pytest.raises(TypeError, match="RETURNING"), driver.writing(engine) as conn:
        conn.execute(insert(table).returning(table.c.id), [row])
    with session_scope(engine) as s:
        assert s.exec(select(Event)).all() == []
    engine.dispose()


def test_a_locked_database_is_unavailable_and_nothing_is_held(tmp_path: Path) -> None:
    path = tmp_path / "bf.db"
    engine = make_engine(f"sqlite:///{path}", busy_timeout_ms=200)
    migrate(engine)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process (the CLI) holds the write lock
    try:
        with pytest.raises(Unavailable), driver.writing(engine) as conn:
            conn.execute(
                _SEEN, [{"b_id": 1, "b_mac": A, "b_ip": None, "b_arch": None, "b_seen": utcnow()}]
            )
    finally:
        other.execute("ROLLBACK")
        other.close()
    with driver.writing(engine) as conn:  # the writer lock and the connection came back
        events.seen_unregistered_many(conn, [events.Sighting(A, None, None, utcnow())])
    engine.dispose()


def test_other_databases_get_a_core_connection(engine: Engine) -> None:
    with driver.reading(engine) as r, driver.writing(engine) as w:
        kinds = {type(r), type(w)}
    if engine.dialect.name == "sqlite":
        assert kinds == {driver.DriverConnection}
    else:
        assert kinds == {Connection}


def test_a_statement_built_anew_is_compiled_anew(tmp_path: Path) -> None:
    """Each new statement object, as hooks.payload builds them per call, gets its own SQL and
    its own rows, however many came before it (past the cache's size too)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'bf.db'}")
    migrate(engine)
    add_client(engine, A)
    table = Client.__table__  # type: ignore[attr-defined]
    columns = [table.c.mac, table.c.hostname, table.c.state]
    expected = [A, "pc-01", State.IDLE]
    with driver.reading(engine) as conn:
        for i in range(driver.CACHE_MAX + 10):
            stmt = select(columns[i % 3]).where(table.c.mac == bindparam("m"))
            assert conn.execute(stmt, {"m": A}).all() == [(expected[i % 3],)]
            assert conn.execute(stmt, {"m": B}).all() == []
    engine.dispose()

"""Client operations record their own events, in the caller's transaction; a database that
fails part-way leaves nothing half-written (server/registry/clients.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from server.errors import NotFound, Unavailable
from server.fleet import Fleet
from server.models import Client, ClientCreate, ClientUpdate, Event
from server.registry import clients, events, installs
from server.registry.database import make_engine, session_scope

NEW = "52:54:00:00:0c:01"


def log(fleet: Fleet, mac: str) -> list[tuple[str, str, str | None]]:
    """The client's events, oldest first: (kind, detail, source)."""
    with session_scope(fleet.engine) as s:
        return [(e.kind, e.detail, e.source) for e in reversed(events.list_events(s, mac))]


def test_create_update_delete_each_record_one_event(fleet: Fleet, registered: str) -> None:
    with session_scope(fleet.engine, write=True) as s:
        clients.create(s, ClientCreate(mac=NEW, profile="debian12"), fleet.checks, "alice")
    with session_scope(fleet.engine, write=True) as s:
        change = ClientUpdate(hostname="pc77", profile="debian12", groups=[], variables={})
        clients.update(s, NEW, change, fleet.checks, "bob")
    with session_scope(fleet.engine, write=True) as s:
        clients.delete(s, NEW, "carol")
    assert log(fleet, NEW) == [
        ("registered", "profile debian12", "alice"),
        ("updated", "hostname", "bob"),  # sent four fields; only the host name changed
        ("deleted", "", "carol"),
    ]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (ClientUpdate(hostname="pc01"), "no change"),
        (ClientUpdate(groups=["lab", "lab"]), "no change"),
        (ClientUpdate(groups=["lab", "room7"]), "groups"),
        (ClientUpdate(profile=None), "profile"),
        (ClientUpdate(variables={"x": "1"}, hostname="pc02"), "hostname, variables"),
    ],
)
def test_update_names_only_the_fields_that_changed(
    fleet: Fleet, registered: str, change: ClientUpdate, detail: str
) -> None:
    with session_scope(fleet.engine, write=True) as s:
        clients.update(s, registered, change, fleet.checks, "test")
    assert log(fleet, registered)[-1] == ("updated", detail, "test")


def test_csv_import_records_one_event_per_client(fleet: Fleet, registered: str) -> None:
    rows = "".join(
        f"52:54:00:00:0d:{i:02x},pc{i},{'debian12' if i % 2 else ''}\n" for i in range(5)
    )
    with session_scope(fleet.engine, write=True) as s:
        assert clients.import_csv(s, rows, fleet.checks, "198.18.0.5") == 5
    assert log(fleet, "52:54:00:00:0d:01") == [("registered", "profile debian12", "198.18.0.5")]
    assert log(fleet, "52:54:00:00:0d:02") == [("registered", "profile -", "198.18.0.5")]


def test_owned_install_is_only_the_clients_own(fleet: Fleet, registered: str) -> None:
    with session_scope(fleet.engine, write=True) as s:
        mine = clients.get(s, registered)
        install = installs.reinstall(s, mine, fleet.policy, fleet.checks, "test")
        other = clients.create(s, ClientCreate(mac=NEW), fleet.checks, "test")
        assert install.id is not None
        assert clients.owned_install(s, mine, install.id) is install
        with pytest.raises(NotFound, match=f"client {NEW} has no install {install.id}"):
            clients.owned_install(s, other, install.id)
        with pytest.raises(NotFound):
            clients.owned_install(s, mine, install.id + 1)


# --- a database that fails: the seam is the DBAPI, the code above it is the real one ----------


@pytest.fixture
def failing(fleet: Fleet) -> Iterator[tuple[Engine, list[str]]]:
    """A second engine on the fleet's database whose statements matching any of the given
    prefixes (and COMMIT, if listed) fail as a full disk would."""
    engine = make_engine(fleet.settings.db_url)
    prefixes: list[str] = []

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))

    def statement(conn: Any, cursor: Any, sql: str, *rest: Any) -> None:
        if any(sql.startswith(p) for p in prefixes):
            fail()

    def commit(conn: Any) -> None:
        if "COMMIT" in prefixes:
            fail()

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    yield engine, prefixes
    engine.dispose()


def nothing_of(fleet: Fleet, *macs: str) -> None:
    with session_scope(fleet.engine) as s:
        assert s.exec(select(Client).where(col(Client.mac).in_(macs))).all() == []
        assert s.exec(select(Event).where(col(Event.mac).in_(macs))).all() == []


def test_create_whose_commit_fails_leaves_no_client_and_no_event(
    fleet: Fleet, registered: str, failing: tuple[Engine, list[str]]
) -> None:
    engine, prefixes = failing
    prefixes.append("COMMIT")
    with (
        pytest.raises(Unavailable, match="busy or unreachable"),
        session_scope(engine, write=True) as s,
    ):
        clients.create(s, ClientCreate(mac=NEW, profile="debian12"), fleet.checks, "test")
    nothing_of(fleet, NEW)


def test_import_whose_event_insert_fails_imports_nothing(
    fleet: Fleet, registered: str, failing: tuple[Engine, list[str]]
) -> None:
    engine, prefixes = failing
    prefixes.append("INSERT INTO event")
    rows = "52:54:00:00:0e:01,a,debian12\n52:54:00:00:0e:02,b,,lab\n"
    with pytest.raises(Unavailable), session_scope(engine, write=True) as s:
        clients.import_csv(s, rows, fleet.checks, "test")
    nothing_of(fleet, "52:54:00:00:0e:01", "52:54:00:00:0e:02")
    with session_scope(fleet.engine, write=True) as s:  # the same file goes in afterwards
        assert clients.import_csv(s, rows, fleet.checks, "test") == 2


def test_delete_whose_commit_fails_keeps_the_client_and_its_log(
    fleet: Fleet, registered: str, failing: tuple[Engine, list[str]]
) -> None:
    engine, prefixes = failing
    prefixes.append("COMMIT")
    before = log(fleet, registered)
    with pytest.raises(Unavailable), session_scope(engine, write=True) as s:
        clients.delete(s, registered, "test")
    with session_scope(fleet.engine) as s:
        assert clients.get(s, registered).mac == registered
    assert log(fleet, registered) == before


def test_update_whose_event_insert_fails_changes_nothing(
    fleet: Fleet, registered: str, failing: tuple[Engine, list[str]]
) -> None:
    engine, prefixes = failing
    prefixes.append("INSERT INTO event")
    with pytest.raises(Unavailable), session_scope(engine, write=True) as s:
        clients.update(s, registered, ClientUpdate(hostname="pc99"), fleet.checks, "t")
    with session_scope(fleet.engine) as s:
        row = clients.get(s, registered)
        assert (row.hostname, row.version) == ("pc01", 0)

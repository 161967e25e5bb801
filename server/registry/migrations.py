"""The numbered schema steps, and migrate() that runs the ones a database has not had.

Each step moves the schema from version N-1 to N, in one transaction with the version bump.
Add steps, never edit a released one. Step 1 creates every table from today's models, so on
an empty database the later steps meet their work done already: each must check first
(create an index only if it is missing, and so on), on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Index, Table, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel, select

from server import models

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    version: int  # the schema version this step leaves behind
    summary: str  # what it does, for `bootfleet db migrate --dry-run`
    run: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


def _index(table: Table, name: str) -> Index:
    return next(i for i in table.indexes if i.name == name)


# Release 0.1.0 ordered and filtered these columns without an index: retention scanned the
# whole event log for events past event_days, and sorted every discovered machine to find
# the newest discovered_max (and so did the dashboard's list) on each prune.
_V2_INDEXES = (
    (models.Event.__table__, "ix_event_at"),  # type: ignore[attr-defined]
    (models.Discovered.__table__, "ix_discovered_last_seen_at"),  # type: ignore[attr-defined]
)


def _v2_time_indexes(conn: Connection) -> None:
    for table, name in _V2_INDEXES:
        _index(table, name).create(conn, checkfirst=True)


def _v3_rooms(conn: Connection) -> None:
    """Webhooks and their outbox, waves and their members (new tables); a group's
    Wake-on-LAN address, and the facts a machine reports when it asks to be registered
    (new nullable columns, added only where step 1 did not create them already)."""
    new = [models.Hook, models.Delivery, models.Wave, models.WaveMember]
    SQLModel.metadata.create_all(conn, tables=[m.__table__ for m in new])  # type: ignore[attr-defined]
    _add_columns(conn, "clientgroup", {"wake_address": "VARCHAR(15)"})
    fact = f"VARCHAR({models.FACT_MAX})"
    stamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    columns = {
        "requested_at": stamp,
        **dict.fromkeys(("manufacturer", "product", "serial", "uuid"), fact),
    }
    _add_columns(conn, "discovered", columns)


def _add_columns(conn: Connection, table: str, columns: dict[str, str]) -> None:
    """ALTER TABLE ADD COLUMN for each nullable column `table` does not have yet."""
    have = {c["name"] for c in inspect(conn).get_columns(table)}
    for name, sql_type in columns.items():
        if name not in have:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))


MIGRATIONS: list[Step] = [
    Step(1, "create every table (an empty database)", _v1_initial),
    Step(
        2,
        "index event.at and discovered.last_seen_at (retention, the discovered list);"
        " no row changes",
        _v2_time_indexes,
    ),
    Step(
        3,
        "add tables hook, delivery, wave, wavemember; add clientgroup.wake_address and"
        " discovered.requested_at/manufacturer/product/serial/uuid; no row changes",
        _v3_rooms,
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(engine: Engine) -> int:
    # Ask the catalogue rather than catch the failed SELECT: PostgreSQL reports a missing
    # table as ProgrammingError (not OperationalError) and aborts the transaction with it.
    if not inspect(engine).has_table("meta"):
        return 0
    with Session(engine) as session:
        row = session.exec(select(models.Meta).where(models.Meta.key == "schema_version")).first()
        return int(row.value) if row else 0


def pending(engine: Engine) -> list[Step]:
    """The steps migrate() would run, in order; refuse a database made by a newer release."""
    found = current_version(engine)
    if found > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {found} is newer than this release ({SCHEMA_VERSION})"
        )
    return MIGRATIONS[found:]


def migrate(engine: Engine) -> int:
    """Bring the schema to SCHEMA_VERSION; refuse a database made by a newer release."""
    for step in pending(engine):
        with engine.begin() as conn:
            step.run(conn)
            SQLModel.metadata.create_all(conn, tables=[models.Meta.__table__])  # type: ignore[attr-defined]
            with Session(conn) as session:
                session.merge(models.Meta(key="schema_version", value=str(step.version)))
                session.commit()
        log.info("database migrated to schema version %s", step.version)
    return SCHEMA_VERSION


def dry_run(url: str) -> list[str]:
    """What migrate() would do to the database at `url`, one line each; changes nothing
    (a SQLite file that does not exist is not created)."""
    from server.registry.database import make_engine

    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = Path(url.split("///", 1)[1])
        if not path.exists():
            return [f"no database at {path}; migrate would create it:", *_lines(MIGRATIONS)]
    engine = make_engine(url)
    try:
        found = current_version(engine)
        steps = pending(engine)
    finally:
        engine.dispose()
    if not steps:
        return [f"schema at version {found}, this release's; nothing to do"]
    lines = [f"schema at version {found}; migrate would run {len(steps)} step(s):"]
    return lines + _lines(steps)


def _lines(steps: list[Step]) -> list[str]:
    return [f"  {s.version - 1} -> {s.version}: {s.summary}" for s in steps]

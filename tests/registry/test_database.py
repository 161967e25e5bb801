from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlmodel import Session

from server.errors import Unavailable
from server.models import Meta
from server.registry.database import make_engine, session_scope
from server.registry.migrations import SCHEMA_VERSION, current_version, migrate


def test_fresh_database_is_migrated_to_current_version(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'bf.db'}")
    assert current_version(engine) == 0
    assert migrate(engine) == SCHEMA_VERSION
    assert current_version(engine) == SCHEMA_VERSION
    assert migrate(engine) == SCHEMA_VERSION  # idempotent
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bf.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bf.db'}")
    migrate(engine)
    with Session(engine) as s:
        s.merge(Meta(key="schema_version", value=str(SCHEMA_VERSION + 1)))
        s.commit()
    with pytest.raises(RuntimeError, match="newer than this release"):
        migrate(engine)
    engine.dispose()


def test_locked_database_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bf.db'}"
    engine = make_engine(url)
    migrate(engine)
    impatient = make_engine(url)
    # after make_engine's own pragmas: wait 50 ms for a lock instead of 5 s
    event.listen(impatient, "connect", lambda conn, _rec: conn.execute("PRAGMA busy_timeout=50"))
    holder = engine.raw_connection()
    try:
        holder.cursor().execute("BEGIN EXCLUSIVE")
        with pytest.raises(Unavailable), session_scope(impatient, write=True) as s:
            s.merge(Meta(key="k", value="v"))
    finally:
        holder.rollback()
        holder.close()
    with session_scope(impatient, write=True) as s:  # and it recovers by itself
        s.merge(Meta(key="k", value="v"))
    impatient.dispose()
    engine.dispose()


def test_writer_lock_lives_and_dies_with_its_engine(tmp_path: Path) -> None:
    """Per-engine write locks are keyed by the engine, not id(): a later engine never
    inherits an earlier one's (possibly held) lock."""
    import gc

    from server.registry import database

    first = make_engine(f"sqlite:///{tmp_path / 'a.db'}", busy_timeout_ms=50)
    second = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    assert database._writer(first) is not database._writer(second)
    assert database.busy_timeout(first) == 0.05 and database.busy_timeout(second) == 5.0
    held = database._writer(first).lock
    assert held.acquire()  # as a thread stuck inside a write would hold it
    first.dispose()
    del first
    gc.collect()
    assert not [e for e in list(database._WRITERS.keys()) if str(e.url).endswith("/a.db")]
    third = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    migrate(third)
    assert database._writer(third).lock is not held
    with session_scope(third, write=True) as s:  # writes at once, whatever `first` left held
        s.merge(Meta(key="k", value="v"))
    held.release()
    for engine in (second, third):
        engine.dispose()

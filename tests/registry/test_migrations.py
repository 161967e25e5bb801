"""The numbered schema steps and `bootfleet db migrate --dry-run` (server/registry/migrations.py).
Upgrading a real 0.1.0 database is tests/reliability/test_upgrade.py."""

from pathlib import Path

import pytest
from sqlmodel import Session

from server.models import Meta
from server.registry.database import make_engine
from server.registry.migrations import MIGRATIONS, SCHEMA_VERSION, dry_run, migrate


def test_steps_are_numbered_one_after_another() -> None:
    assert [s.version for s in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    assert all(s.summary and "\n" not in s.summary for s in MIGRATIONS)


def test_dry_run_on_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "data" / "bootfleet.db"
    lines = dry_run(f"sqlite:///{db}")
    assert lines[0] == f"no database at {db}; migrate would create it:"
    assert len(lines) == 1 + SCHEMA_VERSION and lines[1].startswith("  0 -> 1: ")
    assert not (tmp_path / "data").exists()


def test_dry_run_on_a_current_database_has_nothing_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bf.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    assert dry_run(url) == [f"schema at version {SCHEMA_VERSION}, this release's; nothing to do"]


def test_dry_run_refuses_a_newer_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bf.db'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as s:
        s.merge(Meta(key="schema_version", value=str(SCHEMA_VERSION + 1)))
        s.commit()
    engine.dispose()
    with pytest.raises(RuntimeError, match="newer than this release"):
        dry_run(url)

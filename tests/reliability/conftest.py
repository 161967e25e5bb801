"""Fixtures for the reliability tests, and their figures in the terminal summary."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.figures import FIGURES
from tests.reliability.pg import PgServer, find_bindir


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the session; skipped where no server binaries exist."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries missing (.ci/debian-packages.txt has them)")
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    server = PgServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.close()


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

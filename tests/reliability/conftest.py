"""The reliability tests' figures in the terminal summary (their PostgreSQL fixtures are in
tests/conftest.py: registry tests run on both databases too)."""

from __future__ import annotations

from typing import Any

from tests.reliability.figures import FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value}")

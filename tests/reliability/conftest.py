"""Fixtures for the reliability tests, and their figures in the terminal summary."""

from __future__ import annotations

from typing import Any

from tests.reliability.figures import FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value}")

"""Counters the reliability tests fill in, printed at the end of the run (the report's figures)."""

from __future__ import annotations

from collections import Counter

FIGURES: Counter[str] = Counter()

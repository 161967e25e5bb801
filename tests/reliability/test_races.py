"""Threads and processes racing reinstall, cancel, boot, progress, done and failed on the
same clients, on a SQLite file and on PostgreSQL: one winner per conflict, and a registry
whose versions and event log account for every accepted change and no refused one."""

from __future__ import annotations

from collections import Counter

import pytest

from server.config import Settings
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope
from tests.reliability import racer
from tests.reliability.figures import FIGURES


@pytest.mark.parametrize(
    ("workers", "processes", "reaper"),
    [(8, False, False), (4, True, False), (6, False, True)],
    ids=["8-threads", "4-processes", "6-threads-and-the-reaper"],
)
def test_race(settings: Settings, db_url: str, workers: int, processes: bool, reaper: bool) -> None:
    # with the reaper, deadlines are 0 s: every booting or installing install is overdue at
    # once, so reaper rounds and callbacks collide as often as they can
    deadline = 0 if reaper else 3600
    settings = racer.open_settings(str(settings.data_dir), str(settings.images), db_url, deadline)
    fleet = Fleet.open(settings)
    try:
        with session_scope(fleet.engine, write=True) as s:
            _, secret = admin_tokens.create(s, "race")
        cfg = (str(settings.data_dir), str(settings.images), db_url, deadline)
        outcomes = racer.run_race(
            fleet, cfg, secret, workers=workers, processes=processes, free_calls=40, reaper=reaper
        )
        wins, refused = racer.check_conflicts(outcomes, workers)
        macs = sorted({o.mac for o in outcomes})
        racer.check_consistency(fleet, outcomes, macs)
    finally:
        fleet.close()
    free = Counter(o.status for o in outcomes if o.phase == "free")
    assert free[200] > 0 and free[409] > 0, f"the free-for-all raced nothing: {free}"
    kind = "processes" if processes else "threads"
    if reaper:
        reaped = sum(1 for o in outcomes if o.op == "reaped")
        assert reaped > 0, "the reaper never won a race: the test raced nothing"
        FIGURES["races: installs failed by the racing reaper"] += reaped
    FIGURES[f"races: {kind} x calls"] += len(outcomes)
    FIGURES["races: conflict winners"] += wins
    FIGURES["races: conflict losers (409)"] += refused
    FIGURES["races: free-for-all 2xx"] += free[200] + free[299]
    FIGURES["races: free-for-all 409"] += free[409]

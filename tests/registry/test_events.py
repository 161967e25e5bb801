"""Events and the discovered list (server/registry/events.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from server.fleet import Fleet
from server.models import Discovered, Event, utcnow
from server.registry import driver, events
from server.registry.database import session_scope
from server.registry.events import Sighting

A, B = "52:54:00:00:0a:01", "52:54:00:00:0a:02"
# Both ways production writes sightings: the boot path's group commit, and an ORM session.
WAYS: dict[str, Callable[[Any], Any]] = {
    "boot path": driver.writing,
    "orm session": lambda engine: session_scope(engine, write=True),
}


@pytest.mark.parametrize("way", WAYS)
def test_a_batch_of_unregistered_boots_counts_each_and_discovers_each_mac_once(
    fleet: Fleet, way: str
) -> None:
    t = utcnow()
    with session_scope(fleet.engine, write=True) as s:
        events.seen_unregistered(s, B, "198.18.0.2", "x86_64")
    with WAYS[way](fleet.engine) as s:
        events.seen_unregistered_many(
            s,
            [
                Sighting(A, "198.18.0.1", "i386", t),
                Sighting(B, None, None, t + timedelta(seconds=1)),
                Sighting(A, "198.18.0.3", None, t + timedelta(seconds=2)),
            ],
        )
    with session_scope(fleet.engine) as s:
        a, b = s.get(Discovered, A), s.get(Discovered, B)
        assert a is not None and b is not None
        assert (a.boots, a.last_ip, a.last_arch) == (2, "198.18.0.3", "i386")
        assert (a.first_seen_at, a.last_seen_at) == (t, t + timedelta(seconds=2))
        assert (b.boots, b.last_ip, b.last_arch) == (2, "198.18.0.2", "x86_64")
        found = [(e.mac, e.kind, e.source) for e in s.exec(select(Event).order_by(Event.id))]
    assert found == [(B, "discovered", "198.18.0.2"), (A, "discovered", "198.18.0.1")]


def test_events_keep_at_most_2048_characters_of_detail(fleet: Fleet) -> None:
    with session_scope(fleet.engine, write=True) as s:
        events.record(s, A, "note", "x" * 5000, "test")
    with session_scope(fleet.engine) as s:
        [e] = events.list_events(s, A)
    assert (e.kind, len(e.detail), e.source) == ("note", 2048, "test")

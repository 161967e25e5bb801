"""Wake clients for their reinstall: one magic packet each, and an event saying where it went.

Called after the reinstall's transaction committed, by every front-end and by the conductor
when a wave member's turn begins. The packet itself is the waker's job (server/wol.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from server.models import Client
from server.registry import events, groups
from server.registry.database import session_scope

Waker = Callable[[str, str | None, str | None], str]


def wake(
    engine: Engine, waker: Waker, macs: Sequence[str], source: str | None
) -> list[tuple[str, str]]:
    """Wake each registered client in `macs`; (MAC, what was done) for each, in order."""
    if not macs:
        return []
    with session_scope(engine) as session:
        rows = session.exec(select(Client).where(col(Client.mac).in_(macs))).all()
        found = {
            c.mac: (c.last_ip, groups.wake_address_for(session, c.id))  # type: ignore[arg-type]
            for c in rows
        }
    said = []
    for mac in macs:
        if mac in found:
            last_ip, address = found[mac]
            said.append((mac, waker(mac, last_ip, address)))
    with session_scope(engine, write=True) as session:
        for mac, what in said:
            events.record(session, mac, "wake", what, source)
    return said

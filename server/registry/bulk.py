"""One change applied to many clients, each in its own write transaction: a client that
cannot take it (wrong state, no profile, gone) is reported and skipped, not fatal."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy.engine import Engine
from sqlmodel import Session

from server.errors import BootfleetError
from server.models import Client
from server.registry import clients
from server.registry.database import session_scope

Outcome = tuple[str, str | None]  # (MAC, None) when done, (MAC, why) when skipped


def each(
    engine: Engine, which: Iterable[int | str], change: Callable[[Session, Client], object]
) -> list[Outcome]:
    """Apply `change` to each client, named by id or by MAC, in the order given.

    A client id that no longer exists is left out (deleted meanwhile); a MAC that names no
    client is reported like any other refusal."""
    outcomes: list[Outcome] = []
    for key in which:
        name = key if isinstance(key, str) else f"client #{key}"
        try:
            with session_scope(engine, write=True) as session:
                if isinstance(key, str):
                    client = clients.get(session, key)
                else:
                    found = session.get(Client, key)
                    if found is None:
                        continue
                    client = found
                name = client.mac
                change(session, client)
            outcomes.append((name, None))
        except BootfleetError as exc:
            outcomes.append((name, exc.message))
    return outcomes

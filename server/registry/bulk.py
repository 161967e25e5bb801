"""One change applied to many clients, each in its own write transaction: a client that
cannot take it (wrong state, no profile, gone) is reported and skipped, not fatal."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session

from server.checks import Checks
from server.errors import BootfleetError
from server.models import Client
from server.registry import clients, installs, wakes
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


@dataclass
class Reinstalls:
    """What reinstall() did: each client's outcome in order, and what waking them did."""

    outcomes: list[Outcome]
    woken: list[tuple[str, str]] = field(default_factory=list)  # (MAC, what Wake-on-LAN did)

    @property
    def requested(self) -> list[str]:
        return [mac for mac, why in self.outcomes if why is None]

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return [(mac, why) for mac, why in self.outcomes if why is not None]


def reinstall(
    engine: Engine,
    which: Iterable[int | str],
    policy: installs.Policy,
    checks: Checks,
    actor: str | None,
    waker: wakes.Waker | None = None,
) -> Reinstalls:
    """Request a reinstall of each client (each in its own transaction, as each() does);
    with a waker, then wake the ones requested, once every request is recorded (a machine
    that boots at once must find its reinstall)."""
    done = Reinstalls(
        each(engine, which, lambda s, c: installs.reinstall(s, c, policy, checks, actor))
    )
    if waker is not None:
        done.woken = wakes.wake(engine, waker, done.requested, actor)
    return done

"""The reinstall state machine: which changes are allowed, and the compare-and-set that makes
each one atomic.

    idle ──reinstall──▶ pending ──boot_served──▶ booting ──started──▶ installing
      ▲                    │                        │                     │
      └──────cancel────────┴────────────────────────┴─────────────────────┤
                                                    ├──done────▶ installed ┤──reinstall──▶ pending
                                                    └──failed──▶ failed ───┘

A client in any state but pending/booting/installing boots from its own disk.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from server.errors import Conflict, ForbiddenTransition
from server.models import Client, utcnow


class State(StrEnum):
    IDLE = "idle"
    PENDING = "pending"
    BOOTING = "booting"
    INSTALLING = "installing"
    INSTALLED = "installed"
    FAILED = "failed"


class Action(StrEnum):
    REINSTALL = "reinstall"
    CANCEL = "cancel"
    BOOT_SERVED = "boot_served"
    STARTED = "started"  # the installer fetched its answer file or reported progress
    DONE = "done"
    FAILED = "failed"


ACTIVE = frozenset({State.PENDING, State.BOOTING, State.INSTALLING})
FINISHED = frozenset({State.IDLE, State.INSTALLED, State.FAILED})

TRANSITIONS: dict[Action, tuple[frozenset[State], State]] = {
    Action.REINSTALL: (FINISHED, State.PENDING),
    Action.CANCEL: (ACTIVE, State.IDLE),
    Action.BOOT_SERVED: (frozenset({State.PENDING}), State.BOOTING),
    Action.STARTED: (frozenset({State.BOOTING}), State.INSTALLING),
    Action.DONE: (frozenset({State.BOOTING, State.INSTALLING}), State.INSTALLED),
    # FAILED also covers a "done" arriving after the reaper marked the install failed:
    # that path is handled by the caller, which knows why the install failed.
    Action.FAILED: (frozenset({State.BOOTING, State.INSTALLING}), State.FAILED),
}

STATES = tuple(s.value for s in State)


def target(action: Action, current: str) -> State:
    """The state `action` leads to from `current`, or ForbiddenTransition."""
    allowed, to = TRANSITIONS[action]
    if current not in allowed:
        raise ForbiddenTransition(
            f"cannot {action.value} a client that is {current} "
            f"(allowed from: {', '.join(sorted(allowed))})"
        )
    return to


def compare_and_set(
    session: Session, client: Client, to: State, *, install_id: int | object | None = ...
) -> None:
    """Move `client` to `to` only if nobody changed it since it was read (state and version).

    Exactly one of two racing requests wins; the loser gets Conflict (HTTP 409).
    """
    values: dict[str, object] = {
        "state": to.value,
        "version": client.version + 1,
        "updated_at": utcnow(),
    }
    if install_id is not ...:
        values["install_id"] = install_id
    stmt = (
        update(Client)
        .where(Client.id == client.id)  # type: ignore[arg-type]
        .where(Client.state == client.state)  # type: ignore[arg-type]
        .where(Client.version == client.version)  # type: ignore[arg-type]
        .values(**values)
    )
    result = session.execute(stmt)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"client {client.mac} was changed by another request; reload and retry")
    for key, value in values.items():  # mirror the row without marking the object dirty
        set_committed_value(client, key, value)


# --- waves: scheduled, throttled group reinstalls (registry/waves.py) ----------------------


class WaveState(StrEnum):
    SCHEDULED = "scheduled"  # before its start time
    RUNNING = "running"
    PAUSED = "paused"  # starts no one; those in flight finish
    CANCELLED = "cancelled"
    DONE = "done"


class TurnState(StrEnum):
    """A member's turn in a wave."""

    WAITING = "waiting"
    RUNNING = "running"  # its reinstall is pending, booting or installing
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # could not take a reinstall, or the wave was cancelled first


WAVE_OPEN = frozenset({WaveState.SCHEDULED, WaveState.RUNNING, WaveState.PAUSED})

"""The reinstall state machine's vocabulary: the states, the actions, which change each
action allows, and the sets of states the rest of Bootfleet asks about.

    idle ──reinstall──▶ pending ──boot_served──▶ booting ──started──▶ installing
      ▲                    │                        │                     │
      └──────cancel────────┴────────────────────────┴─────────────────────┤
                                                    ├──done────▶ installed ┤──reinstall──▶ pending
                                                    └──failed──▶ failed ───┘

A client gets its installer only while pending, or while booting within the grace window
(firmware reads a config more than once); in every other state, installing included, it boots
from its own disk (booter.py). Each change is made atomic by the compare-and-set in
registry/transition.py. An install keeps its client's state while it runs, then ends as
installed, failed or cancelled (InstallState).
"""

from __future__ import annotations

from enum import StrEnum

from server.errors import ForbiddenTransition


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


class InstallState(StrEnum):
    """An install's state: its client's while it runs, then how it ended."""

    PENDING = State.PENDING.value
    BOOTING = State.BOOTING.value
    INSTALLING = State.INSTALLING.value
    INSTALLED = State.INSTALLED.value
    FAILED = State.FAILED.value
    CANCELLED = "cancelled"  # no client state: the client went back to idle


ACTIVE = frozenset({State.PENDING, State.BOOTING, State.INSTALLING})
# What a boot may serve the installer to (booting: a re-read inside the grace window).
MAY_INSTALL = frozenset({State.PENDING, State.BOOTING})
# Where the installer runs: the installer's reports are taken, the deadline reaper watches.
RUNNING = frozenset({State.BOOTING, State.INSTALLING})
FINISHED = frozenset({State.IDLE, State.INSTALLED, State.FAILED})

TRANSITIONS: dict[Action, tuple[frozenset[State], State]] = {
    Action.REINSTALL: (FINISHED, State.PENDING),
    Action.CANCEL: (ACTIVE, State.IDLE),
    Action.BOOT_SERVED: (frozenset({State.PENDING}), State.BOOTING),
    Action.STARTED: (frozenset({State.BOOTING}), State.INSTALLING),
    Action.DONE: (RUNNING, State.INSTALLED),
    # FAILED also covers a "done" arriving after the reaper marked the install failed:
    # that path is handled by the caller, which knows why the install failed.
    Action.FAILED: (RUNNING, State.FAILED),
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

"""The lifecycle's vocabulary: every action from every state, allowed or refused."""

import itertools

import pytest

from server.errors import ForbiddenTransition
from server.lifecycle import TRANSITIONS, Action, State, target

EXPECTED = {
    # (action, from): to  -- every allowed change; everything else is refused
    (Action.REINSTALL, State.IDLE): State.PENDING,
    (Action.REINSTALL, State.INSTALLED): State.PENDING,
    (Action.REINSTALL, State.FAILED): State.PENDING,
    (Action.CANCEL, State.PENDING): State.IDLE,
    (Action.CANCEL, State.BOOTING): State.IDLE,
    (Action.CANCEL, State.INSTALLING): State.IDLE,
    (Action.BOOT_SERVED, State.PENDING): State.BOOTING,
    (Action.STARTED, State.BOOTING): State.INSTALLING,
    (Action.DONE, State.BOOTING): State.INSTALLED,
    (Action.DONE, State.INSTALLING): State.INSTALLED,
    (Action.FAILED, State.BOOTING): State.FAILED,
    (Action.FAILED, State.INSTALLING): State.FAILED,
}


@pytest.mark.parametrize(("action", "state"), list(itertools.product(Action, State)))
def test_every_transition_allowed_or_refused(action: Action, state: State) -> None:
    expected = EXPECTED.get((action, state))
    if expected is None:
        with pytest.raises(ForbiddenTransition, match=f"cannot {action.value}"):
            target(action, state.value)
    else:
        assert target(action, state.value) is expected


def test_table_matches_expectations() -> None:
    allowed = {(a, s) for a, (froms, _) in TRANSITIONS.items() for s in froms}
    assert allowed == set(EXPECTED)

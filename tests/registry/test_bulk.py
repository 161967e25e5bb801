"""One change for many clients, each in its own transaction (server/registry/bulk.py)."""

from __future__ import annotations

from sqlmodel import Session

from server.errors import Unavailable
from server.fleet import Fleet
from server.lifecycle import State
from server.models import Client, ClientCreate
from server.registry import bulk, clients, installs
from server.registry.database import session_scope

BARE = "52:54:00:00:0b:01"  # no profile: cannot take a reinstall
FROM = "failed, idle, installed"


def test_each_reports_refusals_and_goes_on(fleet: Fleet, registered: str) -> None:
    with session_scope(fleet.engine, write=True) as s:
        bare = clients.create(s, ClientCreate(mac=BARE), fleet.checks, "test")
        ids = [bare.id or 0, 10_000, clients.get(s, registered).id or 0]  # 10,000: deleted

    def reinstall(s: Session, c: Client) -> object:
        return installs.reinstall(s, c, fleet.policy, fleet.checks, "test")

    assert bulk.each(fleet.engine, ids, reinstall) == [
        (BARE, f"profile: client {BARE} has no profile to install"),
        (registered, None),
    ]
    outcomes = bulk.each(fleet.engine, ["52:54:00:00:0b:99", registered.upper()], reinstall)
    assert outcomes == [
        ("52:54:00:00:0b:99", "no client with MAC 52:54:00:00:0b:99"),
        (registered, f"cannot reinstall a client that is pending (allowed from: {FROM})"),
    ]
    with session_scope(fleet.engine) as s:
        assert clients.get(s, registered).state is State.PENDING


def test_a_failing_change_is_rolled_back_and_reported(fleet: Fleet, registered: str) -> None:
    """The change raises after writing: its transaction, and only its, is undone."""

    def half(s: Session, c: Client) -> object:
        installs.reinstall(s, c, fleet.policy, fleet.checks, "test")
        if c.mac == registered:
            raise Unavailable("the registry database is busy or unreachable; retry shortly")
        return None

    with session_scope(fleet.engine, write=True) as s:
        clients.import_csv(s, f"{BARE},,debian12\n", fleet.checks, "test")
    outcomes = bulk.each(fleet.engine, [registered, BARE], half)
    assert outcomes == [
        (registered, "the registry database is busy or unreachable; retry shortly"),
        (BARE, None),
    ]
    with session_scope(fleet.engine) as s:
        assert clients.get(s, registered).state is State.IDLE
        assert installs.current(s, clients.get(s, registered)) is None
        assert clients.get(s, BARE).state is State.PENDING


def test_reinstall_wakes_only_those_requested_once_all_are_recorded(
    fleet: Fleet, registered: str
) -> None:
    with session_scope(fleet.engine, write=True) as s:
        bare = clients.create(s, ClientCreate(mac=BARE), fleet.checks, "test")
        ids = [clients.get(s, registered).id or 0, bare.id or 0]
    asked: list[tuple[str, State]] = []

    def waker(mac: str, last_ip: str | None, address: str | None) -> str:
        with session_scope(fleet.engine) as s:  # what the machine finds when it boots
            asked.append((mac, clients.get(s, mac).state))
        return "sent to 198.18.0.255"

    done = bulk.reinstall(fleet.engine, ids, fleet.policy, fleet.checks, "test", waker)
    assert done.requested == [registered]
    assert done.skipped == [(BARE, f"profile: client {BARE} has no profile to install")]
    assert done.woken == [(registered, "sent to 198.18.0.255")]
    assert asked == [(registered, State.PENDING)]
    with session_scope(fleet.engine, write=True) as s:
        installs.cancel(s, clients.get(s, registered), "test")
    quiet = bulk.reinstall(fleet.engine, ids, fleet.policy, fleet.checks, "test")
    assert (quiet.requested, quiet.woken) == ([registered], [])
    assert len(asked) == 1

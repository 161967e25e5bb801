"""Waves: a group reinstall that starts at a set time and keeps at most N members in flight.

A wave lists its members in order when it is made. Each `advance` looks at the members in
flight, counts those that finished, and gives the next waiting members their turn (a normal
reinstall, recorded with the wave as its source) until `batch` are in flight again. All of it
is in the registry, so a restart loses nothing, and each advance is a compare-and-set on the
wave's version: when several servers share one database, exactly one acts on each round.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from server.errors import BootfleetError, Conflict, InvalidInput, NotFound
from server.lifecycle import ACTIVE, WAVE_OPEN, State, TurnState, WaveState
from server.models import (
    ROW_ID_MAX,
    Client,
    Install,
    Wave,
    WaveCreate,
    WaveMember,
    WavePublic,
    utcnow,
)
from server.registry import groups, installs
from server.registry.installs import Checks, Policy


def parse_start(text: str | None, field: str = "at") -> datetime | None:
    """A start time as an admin types it: ISO 8601; without a zone, this server's local time."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(field, f"not an ISO 8601 time: {text[:40]!r}") from None
    return when if when.utcoffset() is not None else when.astimezone()


def schedule(session: Session, group_name: str, data: WaveCreate, actor: str | None) -> Wave:
    """A wave over the group's current members, in the order they joined the registry."""
    group = groups.get(session, group_name)
    ids = sorted(groups.member_ids(session, group.name))
    wave = Wave(
        group=group.name,
        start_at=data.at or utcnow(),
        batch=data.batch,
        wake=data.wake,
        created_by=actor,
    )
    session.add(wave)
    session.flush()
    assert wave.id is not None
    for position, client_id in enumerate(ids):
        session.add(WaveMember(wave_id=wave.id, client_id=client_id, position=position))
    session.flush()
    return wave


def get(session: Session, wave_id: int) -> Wave:
    wave = session.get(Wave, wave_id) if 0 < wave_id <= ROW_ID_MAX else None
    if wave is None:
        raise NotFound(f"no wave {wave_id}")
    return wave


def public(session: Session, wave: Wave) -> WavePublic:
    counts = dict.fromkeys(TurnState, 0)
    for state in session.exec(select(WaveMember.state).where(WaveMember.wave_id == wave.id)):
        counts[TurnState(state)] += 1
    return WavePublic(
        **wave.model_dump(exclude={"version"}),
        waiting=counts[TurnState.WAITING],
        running=counts[TurnState.RUNNING],
        done=counts[TurnState.DONE],
        failed=counts[TurnState.FAILED],
        skipped=counts[TurnState.SKIPPED],
    )


def list_waves(session: Session, limit: int = 100) -> list[WavePublic]:
    rows = session.exec(select(Wave).order_by(col(Wave.id).desc()).limit(limit)).all()
    return [public(session, w) for w in rows]


def members(session: Session, wave_id: int) -> list[tuple[WaveMember, Client]]:
    stmt = (
        select(WaveMember, Client)
        .where(WaveMember.wave_id == wave_id)
        .where(WaveMember.client_id == Client.id)
        .order_by(col(WaveMember.position))
    )
    return list(session.exec(stmt).all())


def pause(session: Session, wave_id: int) -> Wave:
    running = {WaveState.SCHEDULED, WaveState.RUNNING}
    return _set_state(session, get(session, wave_id), running, WaveState.PAUSED)


def resume(session: Session, wave_id: int) -> Wave:
    return _set_state(session, get(session, wave_id), {WaveState.PAUSED}, WaveState.SCHEDULED)


def cancel(session: Session, wave_id: int, actor: str | None) -> Wave:
    """No more turns. Members whose reinstall is still pending (not yet booted) are cancelled
    too; those already booting or installing finish."""
    wave = _set_state(session, get(session, wave_id), set(WAVE_OPEN), WaveState.CANCELLED)
    for member, client in members(session, wave_id):
        if member.state == TurnState.WAITING:
            _finish(session, member, TurnState.SKIPPED, "wave cancelled")
        elif member.state == TurnState.RUNNING and client.state == State.PENDING:
            installs.cancel(session, client, actor, f"wave {wave_id} cancelled")
            _finish(session, member, TurnState.SKIPPED, "wave cancelled before it booted")
    wave.finished_at = utcnow()
    session.add(wave)
    return wave


def _set_state(session: Session, wave: Wave, allowed: set[WaveState], to: WaveState) -> Wave:
    if wave.state not in allowed:
        raise Conflict(f"wave {wave.id} is {wave.state}; cannot make it {to.value}")
    _bump(session, wave, state=to.value)
    return wave


def _bump(session: Session, wave: Wave, **values: object) -> None:
    """Compare-and-set on the wave's version: Conflict if another server changed it first."""
    stmt = (
        update(Wave)
        .where(col(Wave.id) == wave.id)
        .where(col(Wave.version) == wave.version)
        .values(version=wave.version + 1, **values)
    )
    if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"wave {wave.id} was changed by another server; next round")
    session.refresh(wave)


def _finish(session: Session, member: WaveMember, state: TurnState, reason: str = "") -> None:
    member.state = state.value
    member.reason = reason[:512]
    member.finished_at = utcnow()
    session.add(member)


def due(session: Session, now: datetime) -> list[int]:
    """Waves that may have work: running ones, and scheduled ones whose time has come."""
    stmt = select(Wave.id).where(
        (col(Wave.state) == WaveState.RUNNING)
        | ((col(Wave.state) == WaveState.SCHEDULED) & (col(Wave.start_at) <= now))
    )
    return [i for i in session.exec(stmt) if i is not None]


def advance(
    session: Session, wave_id: int, policy: Policy, checks: Checks, now: datetime | None = None
) -> list[Client]:
    """One round of one wave; returns the clients whose turn began (the caller wakes them)."""
    now = now or utcnow()
    wave = get(session, wave_id)
    if wave.state not in (WaveState.SCHEDULED, WaveState.RUNNING) or wave.start_at > now:
        return []
    _bump(session, wave, state=WaveState.RUNNING.value)  # claims this round
    rows = members(session, wave_id)
    in_flight = 0
    for member, _client in rows:
        if member.state != TurnState.RUNNING:
            continue
        install = session.get(Install, member.install_id) if member.install_id else None
        if install is None:
            _finish(session, member, TurnState.FAILED, "its install is gone")
        elif install.state in ACTIVE:
            in_flight += 1
        elif install.state == State.INSTALLED:
            _finish(session, member, TurnState.DONE)
        else:
            _finish(session, member, TurnState.FAILED, install.message or install.state)
    started: list[Client] = []
    source = f"wave {wave_id}"
    for member, client in rows:
        if in_flight >= wave.batch:
            break
        if member.state != TurnState.WAITING:
            continue
        try:
            with session.begin_nested():  # one member that cannot reinstall spoils nothing
                install = installs.reinstall(session, client, policy, checks, source)
        except BootfleetError as exc:
            _finish(session, member, TurnState.SKIPPED, exc.message)
            continue
        member.state = TurnState.RUNNING.value
        member.install_id = install.id
        member.started_at = now
        session.add(member)
        started.append(client)
        in_flight += 1
    if in_flight == 0 and all(m.state != TurnState.WAITING for m, _ in rows):
        wave.state = WaveState.DONE.value
        wave.finished_at = now
        session.add(wave)
    return started

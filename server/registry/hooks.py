"""Webhooks: the hooks admins add, and the outbox of deliveries owed to them.

A delivery is written in the same transaction as the lifecycle event it reports, by
events.record_many, which every event goes through: whatever code path records an event, the
hooks hear of it, and a crash between the event and the POST loses nothing. Sending is the
courier's job (server/webhooks.py), on its own thread, never on the boot path's time.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from server.errors import NotFound
from server.lifecycle import InstallState, State
from server.models import (
    ROW_ID_MAX,
    Client,
    Delivery,
    Hook,
    HookCreate,
    HookPublic,
    Install,
)
from server.registry.driver import Executes

# Event kinds in the log -> the names hooks subscribe to (the state the client moved to).
HOOKED_KINDS = {
    "reinstall": State.PENDING.value,
    "boot": State.BOOTING.value,
    State.INSTALLING.value: State.INSTALLING.value,  # these event kinds are state names
    "progress": "progress",
    State.INSTALLED.value: State.INSTALLED.value,
    State.FAILED.value: State.FAILED.value,
    "cancel": InstallState.CANCELLED.value,
}
LEASE = timedelta(seconds=60)  # a courier that dies mid-POST frees its rows after this


def add(session: Session, data: HookCreate) -> Hook:
    """A new hook with a fresh secret (the caller shows it once)."""
    hook = Hook(url=data.url, events=",".join(data.events), secret=secrets.token_urlsafe(32))
    session.add(hook)
    session.flush()
    return hook


def get(session: Session, hook_id: int) -> Hook:
    hook = session.get(Hook, hook_id) if 0 < hook_id <= ROW_ID_MAX else None
    if hook is None:
        raise NotFound(f"no hook {hook_id}")
    return hook


def remove(session: Session, hook_id: int) -> None:
    """Delete the hook and what it is still owed."""
    hook = get(session, hook_id)
    session.execute(delete(Delivery).where(col(Delivery.hook_id) == hook_id))
    session.delete(hook)


def public(session: Session, hook: Hook) -> HookPublic:
    assert hook.id is not None
    waiting = _count(session, hook.id, col(Delivery.gave_up_at).is_(None))
    dead = _count(session, hook.id, col(Delivery.gave_up_at).is_not(None))
    return HookPublic(
        id=hook.id,
        url=hook.url,
        events=hook.events.split(","),
        created_at=hook.created_at,
        waiting=waiting,
        undeliverable=dead,
    )


def list_hooks(session: Session) -> list[HookPublic]:
    rows = session.exec(select(Hook).order_by(col(Hook.id))).all()
    return [public(session, h) for h in rows]


def _count(session: Session, hook_id: int, *where: Any) -> int:
    stmt = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.hook_id == hook_id)
        .where(col(Delivery.delivered_at).is_(None), *where)
    )
    return int(session.exec(stmt).one())


# --- the outbox: written with each event --------------------------------------------------------


_CLIENT = Client.__table__  # type: ignore[attr-defined]
_INSTALL = Install.__table__  # type: ignore[attr-defined]
_HOOKS = core_select(Hook.__table__.c.id, Hook.__table__.c.events)  # type: ignore[attr-defined]
_DELIVERY = insert(Delivery.__table__)  # type: ignore[attr-defined]


def enqueue(conn: Executes, events: list[dict[str, Any]]) -> None:
    """Owe each hook a delivery for each of `events` (rows of the event table just written,
    in the same transaction) that it subscribes to."""
    hooked = [e for e in events if e["kind"] in HOOKED_KINDS]
    if not hooked:
        return
    hooks = conn.execute(_HOOKS).all()
    if not hooks:
        return
    rows = []
    for event in hooked:
        name = HOOKED_KINDS[event["kind"]]
        wanted = [h.id for h in hooks if name in h.events.split(",")]
        if wanted:
            body = json.dumps(payload(conn, event, name), separators=(",", ":"))
            rows += [
                {
                    "hook_id": hook_id,
                    "body": body,
                    "created_at": event["at"],
                    "next_at": event["at"],
                    "attempts": 0,
                    "last_error": "",
                }
                for hook_id in wanted
            ]
    if rows:
        conn.execute(_DELIVERY, rows)


def payload(conn: Executes, event: dict[str, Any], name: str) -> dict[str, Any]:
    """What a hook is told of one event: who, which install, its state and message. Never
    the install token, the profile's variables or the answer file."""
    mac = event["mac"]
    client = conn.execute(
        core_select(_CLIENT.c.hostname, _CLIENT.c.state, _CLIENT.c.install_id).where(
            _CLIENT.c.mac == mac
        )
    ).first()
    install = None
    if client is not None and client.install_id is not None:
        install = conn.execute(
            core_select(
                _INSTALL.c.id,
                _INSTALL.c.state,
                _INSTALL.c.progress,
                _INSTALL.c.message,
                _INSTALL.c.profile_snapshot,
            ).where(_INSTALL.c.id == client.install_id)
        ).first()
    body: dict[str, Any] = {
        "event": name,
        "at": event["at"].isoformat(),
        "message": event["detail"],
        "client": {"mac": mac, "hostname": client.hostname if client else None},
        "state": str(client.state) if client else None,
        "install": None,
    }
    if install is not None:
        body["install"] = {
            "id": install.id,
            "state": str(install.state),
            "progress": install.progress,
            "message": install.message,
            "profile": (install.profile_snapshot or {}).get("profile"),
        }
        if name == State.FAILED:
            # relative: the courier prefixes the server's advertised address
            body["failure_log"] = f"/api/v1/clients/{mac}/installs/{install.id}"
    return body


# --- the courier's side -------------------------------------------------------------------------


def claim(session: Session, now: datetime, limit: int = 20) -> list[tuple[Delivery, Hook]]:
    """Deliveries due now, each leased to this courier by a compare-and-set on its lease, so
    that two servers sharing one database never send the same one at once."""
    due = session.exec(
        select(Delivery.id)
        .where(col(Delivery.delivered_at).is_(None), col(Delivery.gave_up_at).is_(None))
        .where(col(Delivery.next_at) <= now)
        .where((col(Delivery.leased_until).is_(None)) | (col(Delivery.leased_until) < now))
        .order_by(col(Delivery.id))
        .limit(limit)
    ).all()
    claimed = []
    for delivery_id in due:
        won = session.execute(
            update(Delivery)
            .where(col(Delivery.id) == delivery_id)
            .where((col(Delivery.leased_until).is_(None)) | (col(Delivery.leased_until) < now))
            .values(leased_until=now + LEASE)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            continue
        row = session.get(Delivery, delivery_id)
        hook = session.get(Hook, row.hook_id) if row else None
        if row is not None and hook is not None:
            claimed.append((row, hook))
    return claimed


def delivered(session: Session, delivery_id: int, now: datetime) -> None:
    session.execute(
        update(Delivery)
        .where(col(Delivery.id) == delivery_id)
        .values(delivered_at=now, leased_until=None, attempts=Delivery.attempts + 1)
    )


def retry_later(
    session: Session, delivery_id: int, error: str, next_at: datetime | None, now: datetime
) -> None:
    """Record a failed attempt; `next_at` None means give up."""
    values: dict[str, Any] = {
        "attempts": Delivery.attempts + 1,
        "leased_until": None,
        "last_error": error[:512],
    }
    if next_at is None:
        values["gave_up_at"] = now
    else:
        values["next_at"] = next_at
    session.execute(update(Delivery).where(col(Delivery.id) == delivery_id).values(**values))


def prune_delivered(session: Session, before: datetime, batch: int = 1000) -> int:
    """Forget deliveries made before `before` (the undelivered stay for an admin to see)."""
    ids = session.exec(
        select(Delivery.id)
        .where(col(Delivery.delivered_at).is_not(None), col(Delivery.delivered_at) < before)
        .limit(batch)
    ).all()
    if ids:
        session.execute(delete(Delivery).where(col(Delivery.id).in_(ids)))
    return len(ids)

"""The compare-and-set that makes each lifecycle change atomic (lifecycle.py says which)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from server.errors import Conflict
from server.lifecycle import State
from server.models import Client, utcnow


def compare_and_set(
    session: Session, client: Client, to: State, *, install_id: int | object | None = ...
) -> None:
    """Move `client` to `to` only if nobody changed it since it was read (state and version).

    Exactly one of two racing requests wins; the loser gets Conflict (HTTP 409).
    """
    values: dict[str, object] = {
        "state": to,
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

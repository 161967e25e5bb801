"""Groups of clients: shared variables, and a handle to reinstall many machines at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from server.errors import Conflict, NotFound
from server.models import (
    Client,
    ClientGroup,
    ClientGroupLink,
    GroupCreate,
    GroupPublic,
    GroupUpdate,
    keep_redacted,
)


def get(session: Session, name: str) -> ClientGroup:
    row = session.exec(select(ClientGroup).where(ClientGroup.name == name)).first()
    if row is None:
        raise NotFound(f"no group named {name!r}")
    return row


def list_all(session: Session) -> list[ClientGroup]:
    return list(session.exec(select(ClientGroup).order_by(col(ClientGroup.name))))


def create(session: Session, data: GroupCreate) -> ClientGroup:
    if session.exec(select(ClientGroup.id).where(ClientGroup.name == data.name)).first():
        raise Conflict(f"group {data.name!r} exists already")
    row = ClientGroup.model_validate(data.model_dump())
    session.add(row)
    try:
        session.flush()  # a concurrent create of this name on PostgreSQL fails here
    except IntegrityError:
        raise Conflict(f"group {data.name!r} exists already") from None
    return row


def ensure(session: Session, names: list[str]) -> list[ClientGroup]:
    """The groups named, created empty where missing (assigning a client creates its groups).

    Two requests that bring the same new group both get it: the INSERT skips a name another
    transaction has just added (PostgreSQL waits for that one to commit)."""
    if not names:
        return []
    have = session.exec(select(ClientGroup.name).where(col(ClientGroup.name).in_(names))).all()
    missing = sorted(set(names) - set(have))
    if missing:
        rows = [{"name": n, "description": "", "variables": {}} for n in missing]
        table = ClientGroup.__table__  # type: ignore[attr-defined]
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            session.execute(postgresql.insert(table).values(rows).on_conflict_do_nothing())
        elif dialect == "sqlite":
            session.execute(sqlite.insert(table).values(rows).on_conflict_do_nothing())
        else:  # no race-free insert here: the unique index decides
            session.add_all(ClientGroup(name=n) for n in missing)
            session.flush()
    found = {
        g.name: g for g in session.exec(select(ClientGroup).where(col(ClientGroup.name).in_(names)))
    }
    return [found[n] for n in names]


def update(session: Session, name: str, data: GroupUpdate) -> ClientGroup:
    row = get(session, name)
    for key, value in data.model_dump(exclude_unset=True).items():
        if key == "variables" and value is not None:
            value = keep_redacted(value, row.variables)
        if value is not None or key == "wake_address":  # null clears the address
            setattr(row, key, value)
    session.add(row)
    return row


def delete(session: Session, name: str) -> None:
    row = get(session, name)
    session.delete(row)


def member_ids(session: Session, name: str) -> list[int]:
    group = get(session, name)
    stmt = select(ClientGroupLink.client_id).where(ClientGroupLink.group_id == group.id)
    return list(session.exec(stmt))


def public(session: Session, group: ClientGroup) -> GroupPublic:
    stmt = (
        select(func.count())
        .select_from(ClientGroupLink)
        .where(ClientGroupLink.group_id == group.id)
    )
    return GroupPublic(**group.model_dump(), members=int(session.exec(stmt).one()))


def names_by_client(session: Session, client_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {cid: [] for cid in client_ids}
    if not client_ids:
        return out
    stmt = (
        select(ClientGroupLink.client_id, ClientGroup.name)
        .join(ClientGroup, col(ClientGroup.id) == ClientGroupLink.group_id)
        .where(col(ClientGroupLink.client_id).in_(client_ids))
        .order_by(col(ClientGroup.name))
    )
    for cid, name in session.exec(stmt):
        out[cid].append(name)
    return out


def variables_for(session: Session, client_id: int) -> dict[str, dict[str, Any]]:
    """Variables of the client's groups, by group name (assignments.layered orders them)."""
    return variables_by_client(session, [client_id])[client_id]


def variables_by_client(
    session: Session, client_ids: list[int], batch: int = 500
) -> dict[int, dict[str, dict[str, Any]]]:
    """variables_for of many clients, a query per `batch` of them (bound parameters are
    limited: 999 in older SQLite builds)."""
    out: dict[int, dict[str, dict[str, Any]]] = {cid: {} for cid in client_ids}
    for start in range(0, len(client_ids), batch):
        stmt = (
            select(ClientGroupLink.client_id, ClientGroup.name, ClientGroup.variables)
            .join(ClientGroup, col(ClientGroup.id) == ClientGroupLink.group_id)
            .where(col(ClientGroupLink.client_id).in_(client_ids[start : start + batch]))
        )
        for cid, name, variables in session.exec(stmt):
            out[cid][name] = dict(variables)
    return out


def set_membership(session: Session, client: Client, names: list[str]) -> None:
    assert client.id is not None
    current = session.exec(select(ClientGroupLink).where(ClientGroupLink.client_id == client.id))
    for link in current:
        session.delete(link)
    session.flush()
    for group in ensure(session, names):
        session.add(ClientGroupLink(client_id=client.id, group_id=group.id))  # type: ignore[arg-type]


def wake_address_for(session: Session, client_id: int) -> str | None:
    """The Wake-on-LAN address of the client's first group (by name) that sets one."""
    stmt = (
        select(ClientGroup.wake_address)
        .join(ClientGroupLink, col(ClientGroupLink.group_id) == ClientGroup.id)
        .where(ClientGroupLink.client_id == client_id)
        .where(col(ClientGroup.wake_address).is_not(None))
        .order_by(col(ClientGroup.name))
    )
    return session.exec(stmt).first()

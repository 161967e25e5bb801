"""Install profiles: what a machine installs (kernel, initrds, command line, answer file)."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from server.catalog import Catalog
from server.errors import Conflict, InvalidInput, NotFound
from server.models import Client, Profile, ProfileCreate, ProfileUpdate, keep_redacted, utcnow


def get(session: Session, name: str) -> Profile:
    row = session.exec(select(Profile).where(Profile.name == name)).first()
    if row is None:
        raise NotFound(f"no profile named {name!r}")
    return row


def list_all(session: Session) -> list[Profile]:
    return list(session.exec(select(Profile).order_by(col(Profile.name))))


def _check_template(catalog: Catalog, name: str | None) -> None:
    if name is not None and not catalog.exists(name):
        raise InvalidInput(
            "answer_template", f"no such template {name!r} (see GET /api/v1/templates)"
        )


def create(session: Session, data: ProfileCreate, catalog: Catalog) -> Profile:
    _check_template(catalog, data.answer_template)
    if session.exec(select(Profile.id).where(Profile.name == data.name)).first() is not None:
        raise Conflict(f"profile {data.name!r} exists already")
    row = Profile.model_validate(data.model_dump())
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"profile {data.name!r} exists already") from None
    return row


def update(session: Session, name: str, data: ProfileUpdate, catalog: Catalog) -> Profile:
    row = get(session, name)
    changes = data.model_dump(exclude_unset=True)
    if "answer_template" in changes:
        _check_template(catalog, changes["answer_template"])
    for key, value in changes.items():
        if value is None and key in {"kernel", "initrd", "cmdline", "variables"}:
            raise InvalidInput(key, "may not be null")
        if key == "variables":
            value = keep_redacted(value, row.variables)
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.add(row)
    return row


def users(session: Session, profile_id: int) -> int:
    stmt = select(func.count()).select_from(Client).where(Client.profile_id == profile_id)
    return int(session.exec(stmt).one())


def delete(session: Session, name: str) -> None:
    row = get(session, name)
    assert row.id is not None
    count = users(session, row.id)
    if count:
        raise Conflict(f"profile {name!r} is assigned to {count} client(s)")
    session.delete(row)


def using_image(session: Session, image: str) -> list[str]:
    """Names of the profiles whose kernel or initrds live under images/<image>/."""
    prefix = image.rstrip("/") + "/"
    return [
        p.name
        for p in list_all(session)
        if p.kernel.startswith(prefix) or any(i.startswith(prefix) for i in p.initrd)
    ]

"""Install profiles: what a machine installs (kernel, initrds, command line, answer file)."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from server.catalog import Catalog
from server.checks import Checks
from server.errors import Conflict, InvalidInput, NotFound
from server.models import Client, Profile, ProfileCreate, ProfileUpdate, keep_redacted, utcnow
from server.registry import assignments


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


def create(session: Session, data: ProfileCreate, checks: Checks) -> Profile:
    _check_template(checks.catalog, data.answer_template)
    checks.cmdline_template(data.cmdline)
    if session.exec(select(Profile.id).where(Profile.name == data.name)).first() is not None:
        raise Conflict(f"profile {data.name!r} exists already")
    row = Profile.model_validate(data.model_dump())
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"profile {data.name!r} exists already") from None
    return row


def update(session: Session, name: str, data: ProfileUpdate, checks: Checks) -> Profile:
    """Change the fields sent; every client of the profile must still pass the checks."""
    row = get(session, name)
    changes = data.model_dump(exclude_unset=True)
    if "answer_template" in changes:
        _check_template(checks.catalog, changes["answer_template"])
    if changes.get("cmdline") is not None:
        checks.cmdline_template(changes["cmdline"])
    for key, value in changes.items():
        if value is None and key in {"kernel", "initrd", "cmdline", "variables"}:
            raise InvalidInput(key, "may not be null")
        if key == "variables":
            value = keep_redacted(value, row.variables)
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.add(row)
    if changes:
        assignments.check_users(session, row, checks)
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

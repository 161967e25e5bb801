"""Admin API tokens: created once (shown once), stored hashed, listed and revoked by id."""

from __future__ import annotations

from sqlmodel import Session, col, select

from server.errors import NotFound
from server.models import AdminToken, utcnow
from server.tokens import new_token, token_hash


def create(session: Session, name: str = "admin") -> tuple[AdminToken, str]:
    token = new_token()
    row = AdminToken(name=name[:63], token_hash=token_hash(token), prefix=token[:8])
    session.add(row)
    session.flush()
    return row, token


def list_tokens(session: Session) -> list[AdminToken]:
    return list(session.exec(select(AdminToken).order_by(col(AdminToken.id))))


def revoke(session: Session, token_id: int) -> AdminToken:
    row = session.get(AdminToken, token_id)
    if row is None:
        raise NotFound(f"no admin token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
    return row


def verify(session: Session, token: str) -> AdminToken | None:
    """The live token whose hash matches, else None.

    The lookup is by hash, so its timing reveals nothing about the token itself.
    """
    return verify_hash(session, token_hash(token))


def verify_hash(session: Session, digest: str) -> AdminToken | None:
    """The live token with this SHA-256 hex digest, else None (the web UI keeps only the hash
    in its session cookie, never the token)."""
    row = session.exec(select(AdminToken).where(AdminToken.token_hash == digest)).first()
    if row is None or row.revoked_at is not None:
        return None
    return row

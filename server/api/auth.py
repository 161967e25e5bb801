"""Admin endpoints need `Authorization: Bearer <token>`; boot endpoints need nothing."""

from __future__ import annotations

from flask import Blueprint, request

from server.context import fleet
from server.errors import Unauthorized
from server.registry import admin_tokens
from server.registry.database import session_scope


def require_admin() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        raise Unauthorized("send an admin token: Authorization: Bearer <token>")
    with session_scope(fleet().engine) as session:
        if admin_tokens.verify(session, token) is None:
            raise Unauthorized("unknown or revoked admin token")


def admin_blueprint(name: str, import_name: str) -> Blueprint:
    bp = Blueprint(name, import_name, url_prefix="/api/v1")
    bp.before_request(require_admin)
    return bp

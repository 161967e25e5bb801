"""Sign-in with an admin token, the session it starts, and CSRF protection.

The signed session cookie holds the SHA-256 of the admin token (never the token) and a
per-session CSRF token. Every request re-checks the hash against the registry, so revoking
the token ends the session at once. Every POST must carry the CSRF token, as the form field
`csrf_token` or the header `X-CSRF-Token`; without it nothing changes.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from flask import g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from server.context import fleet
from server.registry import admin_tokens
from server.registry.database import session_scope
from server.tokens import token_hash
from server.web.blueprint import bp
from server.web.pages import error_page, local_path, page

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_ENDPOINTS = frozenset({"web.login", "web.static"})
MAX_TOKEN = 256


def csrf_token() -> str:
    """This session's CSRF token, created on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok() -> bool:
    expected = session.get("csrf")
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    if not isinstance(expected, str) or not expected or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())


@bp.app_context_processor
def _template_globals() -> dict[str, object]:
    return {"csrf_token": csrf_token, "admin_name": g.get("admin_name")}


def actor() -> str:
    """Who did it, for the event log: the signed-in admin token's name."""
    return f"web:{g.get('admin_name') or '?'}"[:64]


def signed_in() -> bool:
    """Whether this session's admin token is still live (checked against the registry)."""
    digest = session.get("admin")
    if not isinstance(digest, str):
        return False
    with session_scope(fleet().engine) as s:
        row = admin_tokens.verify_hash(s, digest)
        if row is not None:
            g.admin_name = row.name
            return True
    log.info("web UI: session of a revoked or unknown token ended (%s)", request.remote_addr)
    session.pop("admin", None)
    return False


@bp.before_request
def guard() -> ResponseReturnValue | None:
    """CSRF first (sign-in included), then a live admin token for everything but sign-in."""
    if request.method not in SAFE_METHODS and not csrf_ok():
        log.warning("web UI: %s %s refused: bad CSRF token", request.method, request.path)
        return error_page(
            403,
            "Forbidden",
            "This form is stale or came from another site (missing or wrong CSRF token). "
            "Reload the page and try again.",
        )
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if signed_in():
        return None
    if request.path.endswith(".json"):
        return error_page(401, "Not signed in", "sign in again")
    return redirect(url_for("web.login", next=request.full_path.rstrip("?")), 303)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    target = local_path(request.values.get("next"), url_for("web.dashboard"))
    if request.method == "GET":
        if signed_in():
            return redirect(target, 303)
        return page("login.html", next=target)
    token = (request.form.get("token") or "").strip()
    name = None
    if token and len(token) <= MAX_TOKEN:
        with session_scope(fleet().engine) as s:
            row = admin_tokens.verify(s, token)
            name = row.name if row else None
    if name is None:
        log.warning("web UI: sign-in with a wrong token from %s", request.remote_addr)
        return page("login.html", 401, next=target, error="Unknown or revoked admin token.")
    session.clear()  # a fresh session (and CSRF token) per sign-in: no fixation
    session["admin"] = token_hash(token)
    session.permanent = True
    csrf_token()
    log.info("web UI: %s signed in from %s", name, request.remote_addr)
    return redirect(target, 303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("web.login"), 303)

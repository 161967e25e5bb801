"""Rendering helpers shared by the UI's views: templates, filters, safe headers, and error
pages. A registry error is a readable message on the page with its own status, never a 500."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Response, jsonify, redirect, render_template, request, url_for
from flask.sansio.app import App
from flask.typing import ResponseReturnValue
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, NotFound

from server.errors import BootfleetError, Unauthorized, Unavailable, describe
from server.lifecycle import ACTIVE, STATES, State
from server.version import VERSION
from server.web.blueprint import bp

log = logging.getLogger(__name__)

# Everything the pages need ships with the server: no inline script, no third-party origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def init_app(app: App) -> None:
    app.jinja_env.trim_blocks = True  # only the UI renders Flask templates; keep its HTML tidy
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.globals.update(
        STATES=STATES, ACTIVE_STATES=ACTIVE, State=State, BOOTFLEET_VERSION=VERSION
    )


def page(template: str, status: int = 200, /, **context: Any) -> tuple[str, int]:
    return render_template(f"web/{template}", **context), status


def wants_json() -> bool:
    return request.path.endswith(".json")


def local_path(target: str | None, default: str) -> str:
    """`target` if it is a path inside the UI (a safe redirect after sign-in), else `default`."""
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/"):
        return default
    return target


@bp.app_template_filter("when")
def when(value: datetime | None) -> str:
    """A stored time as 'YYYY-MM-DD HH:MM:SS UTC' (SQLite hands back naive UTC)."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("iso")
def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<path:rest>")
def unknown_page(rest: str) -> ResponseReturnValue:
    """A mistyped /ui/ address gets an HTML page, not the API's JSON 404."""
    raise NotFound(f"There is no page /ui/{rest}.")


def error_page(status: int, title: str, message: str) -> Response:
    if wants_json():
        response = jsonify(error={"code": title.lower().replace(" ", "_"), "message": message})
        response.status_code = status
        return response
    html, _ = page("error.html", title=title, message=message)
    return Response(html, status=status, mimetype="text/html")


@bp.errorhandler(BootfleetError)
def _bootfleet(exc: BootfleetError) -> ResponseReturnValue:
    if isinstance(exc, Unauthorized) and not wants_json():
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")), 303)
    response = error_page(exc.status, TITLES.get(exc.status, "Error"), exc.message)
    if isinstance(exc, Unavailable):
        response.headers["Retry-After"] = "5"
    return response


@bp.errorhandler(ValidationError)
def _validation(exc: ValidationError) -> Response:
    return error_page(400, "Bad input", describe(exc).message)


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    status = exc.code or 500
    return error_page(status, exc.name or "Error", exc.description or "")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("web UI: unexpected error on %s %s: %s", request.method, request.path, exc)
    return error_page(500, "Internal error", "Something went wrong; the server log has details.")


TITLES = {
    400: "Bad input",
    401: "Not signed in",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    503: "Registry busy",
}

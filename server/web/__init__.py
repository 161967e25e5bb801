"""The admin web UI under /ui/: server-rendered pages over the registry, a little JavaScript
for live progress, and nothing fetched from the internet (boot LANs are often offline).

One blueprint (blueprint.py); each page family is its own module (auth, dashboard,
clients, profiles, images), imported here so their routes are on the blueprint.
Registering it also derives the session key from the site key, so sessions survive
restarts and work across servers that share the key.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from flask import Flask, Request, redirect, url_for
from flask.blueprints import BlueprintSetupState
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.typing import ResponseReturnValue

from server.fleet import Fleet
from server.web import (
    auth,
    client,
    clients,
    dashboard,
    discovered,
    hooks,
    images,
    pages,
    profiles,
    waves,
)
from server.web.blueprint import bp

SESSION_LIFETIME = timedelta(hours=12)  # idle time after which a browser must sign in again


def session_key(site_key: bytes) -> bytes:
    """The Flask SECRET_KEY: derived from the site key, never stored on its own."""
    return hmac.new(site_key, b"web-session", hashlib.sha256).digest()


class UiSessionInterface(SecureCookieSessionInterface):
    """Sessions exist only under /ui/, where the cookie is scoped. Everywhere else (boot
    scripts, installer callbacks, the JSON API) a null session, so a boot request does not
    build a cookie signer it can never use: that was ~20 % of a boot decision."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path != bp.url_prefix and not request.path.startswith(f"{bp.url_prefix}/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    app = state.app
    fleet: Fleet = app.extensions["bootfleet"]
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = session_key(fleet.policy.site_key)
    app.config.update(
        SESSION_COOKIE_NAME="bootfleet_ui",
        SESSION_COOKIE_PATH="/ui",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    assert isinstance(app, Flask)
    app.session_interface = UiSessionInterface()
    pages.init_app(app)
    app.add_url_rule("/", "root", _root)


def _root() -> ResponseReturnValue:
    return redirect(url_for("web.dashboard"))


__all__ = [
    "auth",
    "bp",
    "client",
    "clients",
    "dashboard",
    "discovered",
    "hooks",
    "images",
    "pages",
    "profiles",
    "waves",
]

"""The Flask application factory: the HTTP side of `bootfleet serve` in one place. It
registers the API's blueprints (server/api/, one per resource) and the admin web UI
(server/web/); neither package imports the other, and both reach the registry through
server.context."""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from server import ratelimit, web
from server.api import (
    boot,
    clients,
    docs,
    errors,
    groups,
    hooks,
    installs,
    profiles,
    templates,
    waves,
)
from server.config import Settings
from server.errors import InvalidInput, TooManyRequests
from server.fleet import Fleet
from server.ratelimit import RateLimiter

MAX_BODY = 1024 * 1024


def create_app(
    settings: Settings | None = None,
    *,
    fleet: Fleet | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """Create the app; `fleet` lets the caller (serve, tests) share one registry with TFTP."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, JSON_SORT_KEYS=False)
    app.config.from_prefixed_env("BOOTFLEET_FLASK")
    if test_config:
        app.config.update(test_config)
    fleet = fleet or Fleet.open(settings or Settings.load())
    app.extensions["bootfleet"] = fleet
    errors.init_app(app)
    limiter = RateLimiter(fleet.settings.rate_limit, fleet.settings.rate_burst)

    @app.before_request
    def _rate_limit() -> None:
        if limiter.enabled and ratelimit.applies(request.path):
            wait = limiter.take(request.remote_addr or "-")
            if wait > 0:
                raise TooManyRequests(f"too many requests from {request.remote_addr}", wait)

    @app.before_request
    def _no_nul() -> None:
        # PostgreSQL cannot compare text with a NUL in it (a 500). The boot paths keep their
        # own answer to a malformed MAC (local boot), the installer's callbacks theirs to a
        # bad token (401): a token is hashed, never compared as text.
        if request.blueprint not in ("boot", "installs"):
            if "\0" in request.path:
                raise InvalidInput("path", "must not contain NUL characters")
            for name, value in request.args.items(multi=True):
                if "\0" in value or "\0" in name:
                    raise InvalidInput(name, "must not contain NUL characters")

    for module in (boot, profiles, clients, groups, installs, hooks, waves, templates, docs):
        app.register_blueprint(module.bp)
    app.register_blueprint(web.bp)  # the admin web UI under /ui/ (server/web/)
    return app

"""The dashboard: clients by state, installs in progress, recent failures; live by polling."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, render_template
from flask.typing import ResponseReturnValue

from server.context import fleet
from server.lifecycle import ACTIVE
from server.registry import clients, events, installs, profiles
from server.registry.database import session_scope
from server.web.blueprint import bp
from server.web.pages import page

ACTIVE_LIMIT = 50
FAILURE_LIMIT = 10
DISCOVERED_LIMIT = 10


def overview() -> dict[str, Any]:
    with session_scope(fleet().engine) as s:
        counts = clients.count_by_state(s)
        active = installs.in_progress(s, ACTIVE_LIMIT)
        failures = installs.recent_failures(s, FAILURE_LIMIT)
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "running": sum(counts.get(state, 0) for state in ACTIVE),
        "active": active,
        "failures": failures,
    }


def unregistered() -> list[Any]:
    """Machines that network-booted without being registered (they got local boot), newest
    first, leaving out those registered since."""
    with session_scope(fleet().engine) as s:
        seen = events.list_discovered(s, DISCOVERED_LIMIT * 5)
        fresh = [d for d in seen if clients.find(s, d.mac) is None]
    return fresh[:DISCOVERED_LIMIT]


@bp.get("/")
def dashboard() -> ResponseReturnValue:
    with session_scope(fleet().engine) as s:
        names = [p.name for p in profiles.list_all(s)]
    return page("dashboard.html", discovered=unregistered(), profiles=names, **overview())


@bp.get("/live/dashboard.json")
def dashboard_live() -> Response:
    """The dashboard's live regions, rendered by the same partials as the page."""
    data = overview()
    return jsonify(
        counts=data["counts"],
        regions={
            "counts": render_template("web/_counts.html", **data),
            "active": render_template("web/_active.html", **data),
            "failures": render_template("web/_failures.html", **data),
        },
    )

"""One client: details, where each variable comes from, what its answer file needs, install
history, events, and the reinstall / cancel / edit / delete actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session

from server.context import fleet
from server.errors import BootfleetError, InvalidInput
from server.models import Client, ClientUpdate, Profile
from server.registry import assignments, clients, events, installs, profiles, wakes
from server.registry.database import session_scope
from server.web.auth import actor
from server.web.blueprint import bp
from server.web.clients import choices, client_form_data, confirm
from server.web.forms import build, format_vars
from server.web.pages import page

HISTORY_LIMIT = 20
EVENT_LIMIT = 100


@dataclass
class Variable:
    """One variable: its effective value and every layer that sets it, lowest first."""

    name: str
    value: Any = None
    source: str = ""
    overridden: list[tuple[str, Any]] = field(default_factory=list)


def variable_sources(session: Session, row: Client) -> list[Variable]:
    """Each variable with the layer it comes from (assignments.layered: the one order)."""
    profile = session.get(Profile, row.profile_id) if row.profile_id is not None else None
    found: dict[str, Variable] = {}
    for source, values in assignments.client_layers(session, row, profile):
        for name, value in values.items():
            var = found.setdefault(name, Variable(name))
            if var.source:
                var.overridden.append((var.source, var.value))
            var.value, var.source = value, source
    return [found[n] for n in sorted(found)]


@dataclass(frozen=True)
class Needed:
    """A variable the profile's answer template declares, and how this client fills it."""

    name: str
    required: bool
    description: str
    status: str  # "set by <layer>", "default", "unset" (optional) or "missing" (required)
    value: Any


def answer_needs(
    session: Session, profile: str | None, variables: list[Variable]
) -> tuple[str | None, list[Needed]]:
    """The answer template of the client's profile and what it asks for, so a missing
    required variable shows here before a reinstall is refused for it."""
    if profile is None:
        return None, []
    name = profiles.get(session, profile).answer_template
    catalog = fleet().catalog
    if name is None or not catalog.exists(name):
        return name, []
    have = {v.name: v for v in variables}
    needs = []
    for var in catalog.get(name).variables:
        if var.name in have and have[var.name].value is not None:
            status, value = f"set by {have[var.name].source}", have[var.name].value
        elif var.default is not None:
            status, value = "default", var.default
        else:
            status, value = ("missing" if var.required else "unset"), None
        needs.append(Needed(var.name, var.required, var.description, status, value))
    return name, needs


def details(mac: str) -> dict[str, Any]:
    with session_scope(fleet().engine) as s:
        row = clients.get(s, mac)
        public = clients.public(s, row)
        variables = variable_sources(s, row)
        template, needs = answer_needs(s, public.profile, variables)
        return {
            "client": public,
            "variables": variables,
            "template": template,
            "needs": needs,
            "history": [clients.install_public(i) for i in installs.history(s, row, HISTORY_LIMIT)],
            "events": events.list_events(s, row.mac, EVENT_LIMIT),
        }


@bp.get("/clients/<mac>")
def client_page(mac: str) -> ResponseReturnValue:
    return page("client.html", **details(mac))


@bp.get("/clients/<mac>/live.json")
def client_live(mac: str) -> Response:
    data = details(mac)
    install = data["client"].install
    return jsonify(
        state=data["client"].state,
        progress=install.progress if install else None,
        regions={
            "status": render_template("web/_client_status.html", **data),
            "history": render_template("web/_history.html", **data),
            "events": render_template("web/_events.html", **data),
        },
    )


@bp.post("/clients/<mac>/reinstall")
def client_reinstall(mac: str) -> ResponseReturnValue:
    f = fleet()
    if request.form.get("confirmed") != "1":
        return confirm(f"Reinstall {mac} at its next network boot?", request.path)
    with session_scope(f.engine, write=True) as s:
        row = clients.get(s, mac)
        install = installs.reinstall(s, row, f.policy, f.checks, actor())
    flash(f"Reinstall requested (install {install.id}); it starts at the next network boot.", "ok")
    if request.form.get("wake") == "1":
        for _, what in wakes.wake(f.engine, f.waker, [row.mac], actor()):
            flash(what[:1].upper() + what[1:] + ".", "ok" if " sent to " in what else "error")
    return redirect(url_for("web.client_page", mac=row.mac), 303)


@bp.post("/clients/<mac>/cancel")
def client_cancel(mac: str) -> ResponseReturnValue:
    if request.form.get("confirmed") != "1":
        return confirm(f"Cancel the install of {mac}? It will boot from its disk.", request.path)
    with session_scope(fleet().engine, write=True) as s:
        row = clients.get(s, mac)
        installs.cancel(s, row, actor())
    flash("Install cancelled.", "ok")
    return redirect(url_for("web.client_page", mac=row.mac), 303)


@bp.post("/clients/<mac>/delete")
def client_delete(mac: str) -> ResponseReturnValue:
    if request.form.get("confirmed") != "1":
        return confirm(f"Forget client {mac}? Its events stay in the log.", request.path)
    with session_scope(fleet().engine, write=True) as s:
        row = clients.delete(s, mac, actor())
    flash(f"Client {row.mac} deleted.", "ok")
    return redirect(url_for("web.client_list"), 303)


@bp.route("/clients/<mac>/edit", methods=["GET", "POST"])
def client_edit(mac: str) -> ResponseReturnValue:
    with session_scope(fleet().engine) as s:
        current = clients.public(s, clients.get(s, mac))
    if request.method == "GET":
        form = {
            "mac": current.mac,
            "hostname": current.hostname or "",
            "profile": current.profile or "",
            "groups": " ".join(current.groups),
            "variables": format_vars(current.variables),
        }
        return page("client_form.html", form=form, client=current, **choices())
    try:
        data = build(ClientUpdate, client_form_data())
        with session_scope(fleet().engine, write=True) as s:
            row = clients.update(s, mac, data, fleet().checks, actor())
    except BootfleetError as exc:
        return page(
            "client_form.html",
            exc.status,
            form={**request.form, "mac": current.mac},
            client=current,
            error=exc.message,
            error_field=exc.field if isinstance(exc, InvalidInput) else None,
            **choices(),
        )
    flash("Client saved.", "ok")
    return redirect(url_for("web.client_page", mac=row.mac), 303)


@bp.get("/clients/<mac>/installs/<int:install_id>")
def install_log(mac: str, install_id: int) -> ResponseReturnValue:
    with session_scope(fleet().engine) as s:
        row = clients.get(s, mac)
        install = clients.owned_install(s, row, install_id)
        return page(
            "install.html",
            client=clients.public(s, row),
            install=clients.install_public(install),
            log=install.failure_log,
            snapshot=install.profile_snapshot,
        )

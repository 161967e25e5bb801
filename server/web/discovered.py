"""Approve a machine that asked, from the unknown-machine menu, to be registered."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import ValidationError

from server.context import fleet
from server.errors import BootfleetError, InvalidInput, describe
from server.models import ClientCreate
from server.registry import discovered
from server.registry.database import session_scope
from server.web.auth import actor
from server.web.blueprint import bp


@bp.post("/discovered/<mac>/approve")
def discovered_approve(mac: str) -> ResponseReturnValue:
    profile = request.form.get("profile") or None
    try:
        try:
            data = ClientCreate.model_validate({"mac": mac, "profile": profile})
        except ValidationError as exc:
            raise describe(exc) from None
        if data.profile is None:
            raise InvalidInput("profile", "choose the profile it would install")
        with session_scope(fleet().engine, write=True) as s:
            row = discovered.approve(s, data, fleet().checks, actor())
            mac = row.mac
    except BootfleetError as exc:
        flash(exc.message, "error")
        return redirect(url_for("web.dashboard"), 303)
    flash(f"{mac} registered with profile {profile}; it installs nothing until a reinstall.", "ok")
    return redirect(url_for("web.client_page", mac=mac), 303)

"""Waves: schedule a group reinstall, watch its progress, pause, resume or cancel it."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from server.context import fleet
from server.errors import BootfleetError, InvalidInput
from server.models import WaveCreate
from server.registry import groups, waves
from server.registry.database import session_scope
from server.web.auth import actor
from server.web.blueprint import bp
from server.web.clients import confirm
from server.web.forms import build
from server.web.pages import page


@bp.get("/waves")
def wave_list() -> ResponseReturnValue:
    with session_scope(fleet().engine) as s:
        rows = waves.list_waves(s)
        names = [g.name for g in groups.list_all(s)]
    return page("waves.html", rows=rows, groups=names, form=request.args)


@bp.post("/waves/new")
def wave_new() -> ResponseReturnValue:
    form = request.form
    batch = (form.get("batch") or "10").strip()
    try:
        if not batch.isdigit():
            raise InvalidInput("batch", "must be a whole number")
        data = build(
            WaveCreate,
            {"at": waves.parse_start(form.get("at")), "batch": int(batch), "wake": "wake" in form},
        )
        with session_scope(fleet().engine, write=True) as s:
            wave_id = waves.schedule(s, form.get("group", ""), data, actor()).id
    except BootfleetError as exc:
        flash(exc.message, "error")
        return redirect(url_for("web.wave_list"), 303)
    flash(f"Wave {wave_id} scheduled.", "ok")
    return redirect(url_for("web.wave_page", wave_id=wave_id), 303)


@bp.get("/waves/<int:wave_id>")
def wave_page(wave_id: int) -> ResponseReturnValue:
    with session_scope(fleet().engine) as s:
        wave = waves.public(s, waves.get(s, wave_id))
        turns = waves.members(s, wave_id)
        return page("wave.html", wave=wave, turns=turns)


@bp.post("/waves/<int:wave_id>/<any(pause, resume, cancel):action>")
def wave_action(wave_id: int, action: str) -> ResponseReturnValue:
    if action == "cancel" and request.form.get("confirmed") != "1":
        return confirm(
            f"Cancel wave {wave_id}? Members not yet booted are cancelled; installs running "
            "finish.",
            request.path,
        )
    with session_scope(fleet().engine, write=True) as s:
        if action == "pause":
            waves.pause(s, wave_id)
        elif action == "resume":
            waves.resume(s, wave_id)
        else:
            waves.cancel(s, wave_id, actor())
    flash(f"Wave {wave_id}: {action} done.", "ok")
    return redirect(url_for("web.wave_page", wave_id=wave_id), 303)

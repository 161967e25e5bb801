"""Webhooks: list them with what they are owed, add one (its secret shown once), remove one."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from server.context import fleet
from server.errors import BootfleetError
from server.models import HOOK_EVENTS, HookCreate
from server.registry import hooks
from server.registry.database import session_scope
from server.web.blueprint import bp
from server.web.clients import confirm
from server.web.forms import build
from server.web.pages import page


@bp.get("/hooks")
def hook_list() -> ResponseReturnValue:
    with session_scope(fleet().engine) as s:
        rows = hooks.list_hooks(s)
    return page("hooks.html", rows=rows, events=HOOK_EVENTS)


@bp.post("/hooks/new")
def hook_new() -> ResponseReturnValue:
    chosen = request.form.getlist("events")
    try:
        data = build(HookCreate, {"url": request.form.get("url", "").strip(), "events": chosen})
        with session_scope(fleet().engine, write=True) as s:
            hook = hooks.add(s, data)
            hook_id, secret = hook.id, hook.secret
    except BootfleetError as exc:
        flash(exc.message, "error")
        return redirect(url_for("web.hook_list"), 303)
    flash(f"Hook {hook_id} added. Its signing secret, shown only now: {secret}", "ok")
    return redirect(url_for("web.hook_list"), 303)


@bp.post("/hooks/<int:hook_id>/remove")
def hook_remove(hook_id: int) -> ResponseReturnValue:
    if request.form.get("confirmed") != "1":
        return confirm(f"Remove hook {hook_id} and the deliveries it is still owed?", request.path)
    with session_scope(fleet().engine, write=True) as s:
        hooks.remove(s, hook_id)
    flash(f"Hook {hook_id} removed.", "ok")
    return redirect(url_for("web.hook_list"), 303)

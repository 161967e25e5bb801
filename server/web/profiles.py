"""Profiles: list, create, edit, and which clients use each one."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from server.context import fleet
from server.errors import BootfleetError, InvalidInput
from server.models import ProfileCreate, ProfileUpdate
from server.registry import clients, profiles
from server.registry.database import session_scope
from server.web.blueprint import bp
from server.web.clients import confirm
from server.web.forms import build, format_vars, lines, parse_vars
from server.web.images import image_files
from server.web.pages import page

USERS_SHOWN = 50


def form_data() -> dict[str, Any]:
    form = request.form
    return {
        "kernel": form.get("kernel", "").strip(),
        "initrd": lines(form.get("initrd")),
        "cmdline": form.get("cmdline", "").strip(),
        "answer_template": form.get("answer_template") or None,
        "variables": parse_vars(form.get("variables")),
    }


def form_context(**extra: Any) -> dict[str, Any]:
    """What the profile form offers: the answer templates and the files under images/."""
    files, _ = image_files(fleet().settings.images)
    return {"templates": fleet().catalog.names(), "image_paths": [f.path for f in files], **extra}


@bp.get("/profiles")
def profile_list() -> ResponseReturnValue:
    with session_scope(fleet().engine) as s:
        rows = [(p, profiles.users(s, p.id or 0)) for p in profiles.list_all(s)]
    return page("profiles.html", rows=rows)


@bp.route("/profiles/new", methods=["GET", "POST"])
def profile_new() -> ResponseReturnValue:
    if request.method == "GET":
        return page("profile_form.html", **form_context(form={}))
    try:
        data = build(ProfileCreate, {"name": request.form.get("name", "").strip(), **form_data()})
        with session_scope(fleet().engine, write=True) as s:
            profiles.create(s, data, fleet().checks)
    except BootfleetError as exc:
        return failed_form(exc)
    flash(f"Profile {data.name} created.", "ok")
    return redirect(url_for("web.profile_page", name=data.name), 303)


@bp.route("/profiles/<name>", methods=["GET", "POST"])
def profile_page(name: str) -> ResponseReturnValue:
    with session_scope(fleet().engine) as s:
        row = profiles.get(s, name)
        users = clients.list_page(s, profile=row.name, limit=USERS_SHOWN)
    if request.method == "POST":
        try:
            data = build(ProfileUpdate, form_data())
            with session_scope(fleet().engine, write=True) as s:
                profiles.update(s, name, data, fleet().checks)
        except BootfleetError as exc:
            return failed_form(exc, profile=row, users=users)
        flash(f"Profile {name} saved.", "ok")
        return redirect(url_for("web.profile_page", name=name), 303)
    form = {
        "name": row.name,
        "kernel": row.kernel,
        "initrd": "\n".join(row.initrd),
        "cmdline": row.cmdline,
        "answer_template": row.answer_template or "",
        "variables": format_vars(row.variables),
    }
    return page("profile_form.html", **form_context(form=form, profile=row, users=users))


@bp.post("/profiles/<name>/delete")
def profile_delete(name: str) -> ResponseReturnValue:
    if request.form.get("confirmed") != "1":
        return confirm(f"Delete profile {name}?", request.path)
    with session_scope(fleet().engine, write=True) as s:
        profiles.delete(s, name)  # Conflict while clients use it
    flash(f"Profile {name} deleted.", "ok")
    return redirect(url_for("web.profile_list"), 303)


def failed_form(exc: BootfleetError, **extra: Any) -> ResponseReturnValue:
    return page(
        "profile_form.html",
        exc.status,
        **form_context(
            form=request.form,
            error=exc.message,
            error_field=exc.field if isinstance(exc, InvalidInput) else None,
            **extra,
        ),
    )

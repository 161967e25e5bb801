"""The client list (search, filters, keyset pages, bulk actions), adding and CSV import."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session

from server.context import fleet
from server.errors import BootfleetError, InvalidInput
from server.lifecycle import STATES
from server.models import Client, ClientCreate, ClientUpdate
from server.registry import bulk, clients, groups, installs, profiles
from server.registry.database import session_scope
from server.web.auth import actor
from server.web.blueprint import bp
from server.web.forms import build, parse_vars, words
from server.web.pages import local_path, page

log = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_BULK = 1000
FILTERS = ("q", "state", "profile", "group")
BULK_ACTIONS = {"reinstall": "Reinstall", "cancel": "Cancel install", "assign": "Assign profile"}


def choices() -> dict[str, list[str]]:
    with session_scope(fleet().engine) as s:
        return {
            "profiles": [p.name for p in profiles.list_all(s)],
            "groups": [g.name for g in groups.list_all(s)],
        }


def read_filters(source: Mapping[str, str], prefix: str = "") -> tuple[dict[str, str], list[str]]:
    """The list filters from a query string (or the bulk form, as f_q, f_state, ...), and
    what was wrong with them."""
    filters = {k: (source.get(prefix + k) or "").strip() for k in FILTERS}
    problems = []
    if filters["state"] and filters["state"] not in STATES:
        problems.append(f"unknown state {filters['state']!r}")
        filters["state"] = ""
    if len(filters["q"]) > 64:
        problems.append("search at most 64 characters")
        filters["q"] = filters["q"][:64]
    return filters, problems


def query(session: Session, filters: dict[str, str], after: int, limit: int) -> clients.Page:
    return clients.list_page(
        session,
        state=filters["state"] or None,
        profile=filters["profile"] or None,
        group=filters["group"] or None,
        q=filters["q"] or None,  # the registry reads MAC fragments in any spelling
        after=after,
        limit=limit,
    )


def matching(filters: dict[str, str], limit: int) -> list[str]:
    """MACs of up to `limit` clients matching `filters`, page by page along the cursor."""
    macs: list[str] = []
    after: int | None = 0
    with session_scope(fleet().engine) as s:
        while after is not None and len(macs) < limit:
            found = query(s, filters, after, min(clients.MAX_PAGE, limit - len(macs)))
            macs += [c.mac for c in found.items]
            after = found.next
    return macs


@bp.get("/clients")
def client_list() -> ResponseReturnValue:
    filters, problems = read_filters(request.args)
    after = request.args.get("after", "")
    cursor = int(after) if after.isdigit() and len(after) < 19 else 0
    try:
        with session_scope(fleet().engine) as s:
            result = query(s, filters, cursor, PAGE_SIZE)
    except BootfleetError as exc:  # an unknown profile or group in the filter
        problems.append(exc.message)
        result = clients.Page([], 0, None)
    active: dict[str, Any] = {k: v for k, v in filters.items() if v}
    next_url = url_for("web.client_list", **active, after=result.next) if result.next else None
    return page(
        "clients.html",
        400 if problems else 200,
        page=result,
        filters=filters,
        problems=problems,
        first_url=url_for("web.client_list", **active) if cursor else None,
        next_url=next_url,
        back=request.full_path.rstrip("?"),
        actions=BULK_ACTIONS,
        **choices(),
    )


@bp.post("/clients/bulk")
def client_bulk() -> ResponseReturnValue:
    """Apply one action to the selected clients, each in its own transaction: one client
    that cannot change (wrong state, no profile) is reported and skipped, not fatal."""
    back = local_path(request.form.get("back"), url_for("web.client_list"))
    action = request.form.get("action", "")
    macs = request.form.getlist("mac")
    profile = request.form.get("profile") or ""
    if action not in BULK_ACTIONS:
        raise InvalidInput("action", f"choose one of {', '.join(BULK_ACTIONS)}")
    everyone = request.form.get("scope") == "all"
    if everyone:
        filters, problems = read_filters(request.form, "f_")
        if problems:
            raise InvalidInput("filter", "; ".join(problems))
        macs = matching(filters, MAX_BULK + 1)
        if len(macs) > MAX_BULK:
            raise InvalidInput(
                "scope", f"more than {MAX_BULK} clients match; narrow the filter and repeat"
            )
    if not macs:
        flash("Select at least one client first.", "error")
        return redirect(back, 303)
    if len(macs) > MAX_BULK:
        raise InvalidInput("mac", f"at most {MAX_BULK} clients at once")
    if action == "assign" and not profile:
        raise InvalidInput("profile", "choose the profile to assign")
    if request.form.get("confirmed") != "1":
        which = f"all {len(macs)} matching" if everyone else f"{len(macs)} selected"
        return confirm(
            f"{BULK_ACTIONS[action]} for {which} client(s)?",
            url_for("web.client_bulk"),
        )
    outcomes = bulk.each(fleet().engine, macs, change(action, profile))
    done = [mac for mac, why in outcomes if why is None]
    skipped = [f"{mac}: {why}" for mac, why in outcomes if why is not None]
    log.info("web UI: %s: %s on %d client(s), %d skipped", actor(), action, len(done), len(skipped))
    verb = {"reinstall": "Reinstall requested for", "cancel": "Cancelled", "assign": "Assigned"}
    suffix = f" profile {profile} to" if action == "assign" else ""
    if done:
        flash(f"{verb[action]}{suffix} {len(done)} client(s).", "ok")
    for line in skipped[:20]:
        flash(f"Skipped {line}", "error")
    if len(skipped) > 20:
        flash(f"... and {len(skipped) - 20} more skipped.", "error")
    return redirect(back, 303)


def change(action: str, profile: str) -> Callable[[Session, Client], object]:
    """What a bulk action does to one client, in the transaction bulk.each opens."""
    f, who = fleet(), actor()
    if action == "reinstall":
        return lambda s, row: installs.reinstall(s, row, f.policy, f.checks, who)
    if action == "cancel":
        return lambda s, row: installs.cancel(s, row, who)
    data = ClientUpdate(profile=profile)
    return lambda s, row: clients.update(s, row.mac, data, f.checks, who)


def confirm(message: str, action_url: str) -> ResponseReturnValue:
    """The no-JavaScript confirmation step: the same form again, with confirmed=1."""
    fields = [
        (k, v) for k, v in request.form.items(multi=True) if k not in ("csrf_token", "confirmed")
    ]
    return page("confirm.html", message=message, action_url=action_url, fields=fields)


def client_form_data() -> dict[str, Any]:
    form = request.form
    return {
        "hostname": form.get("hostname", "").strip() or None,
        "profile": form.get("profile") or None,
        "groups": words(form.get("groups")),
        "variables": parse_vars(form.get("variables")),
    }


@bp.route("/clients/new", methods=["GET", "POST"])
def client_new() -> ResponseReturnValue:
    if request.method == "GET":  # ?mac= comes from the dashboard's unregistered machines
        return page("client_form.html", form={"mac": request.args.get("mac", "")}, **choices())
    try:
        data = build(ClientCreate, {"mac": request.form.get("mac", ""), **client_form_data()})
        with session_scope(fleet().engine, write=True) as s:
            clients.create(s, data, fleet().checks, actor())
    except BootfleetError as exc:
        error_field = exc.field if isinstance(exc, InvalidInput) else None
        return page(
            "client_form.html",
            exc.status,
            form=request.form,
            error=exc.message,
            error_field=error_field,
            **choices(),
        )
    flash(f"Client {data.mac} added.", "ok")
    return redirect(url_for("web.client_page", mac=data.mac), 303)


@bp.route("/clients/import", methods=["GET", "POST"])
def client_import() -> ResponseReturnValue:
    if request.method == "GET":
        return page("import.html", text="")
    upload = request.files.get("file")
    raw = upload.read() if upload and upload.filename else request.form.get("text", "").encode()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return page("import.html", 400, text="", error="The file is not UTF-8 text.")
    try:
        with session_scope(fleet().engine, write=True) as s:
            count = clients.import_csv(s, text, fleet().checks, actor())
    except BootfleetError as exc:
        bad_row = bad_row_number(exc)
        rows = text.splitlines()
        return page(
            "import.html",
            exc.status,
            text=text,
            error=exc.message,
            bad_row=bad_row,
            context=[(n, rows[n - 1]) for n in around(bad_row, len(rows))],
        )
    flash(f"Imported {count} client(s).", "ok")
    return redirect(url_for("web.client_list"), 303)


def bad_row_number(exc: BootfleetError) -> int | None:
    """The row import_csv blamed (its InvalidInput field is 'row N')."""
    field = exc.field if isinstance(exc, InvalidInput) else ""
    match = re.fullmatch(r"row (\d+)", field)
    return int(match.group(1)) if match else None


def around(row: int | None, count: int, spread: int = 2) -> range:
    if row is None or not 1 <= row <= count:
        return range(0)
    return range(max(1, row - spread), min(count, row + spread) + 1)

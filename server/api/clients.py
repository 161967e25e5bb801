"""/api/v1/clients: machines by MAC, their reinstall requests, history and events."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from pydantic import ValidationError

from server.api.auth import admin_blueprint
from server.api.body import parse, query_int
from server.api.docs import doc
from server.api.schemas import (
    Accepted,
    ClientPage,
    DiscoveredList,
    DiscoveredPublic,
    EventList,
    ImportResult,
    InstallDetail,
    InstallList,
    ReinstallRequest,
)
from server.context import fleet, out, peer
from server.errors import InvalidInput, describe
from server.lifecycle import STATES
from server.models import (
    ClientCreate,
    ClientPublic,
    ClientUpdate,
    DiscoveredApprove,
    EventPublic,
)
from server.registry import clients, discovered, events, installs, wakes
from server.registry.database import session_scope

bp = admin_blueprint("clients", __name__)

LIST_QUERY: dict[str, tuple[str | dict[str, Any], str]] = {
    "state": ({"type": "string", "enum": ["", *STATES]}, f"one of {', '.join(STATES)}"),
    "profile": ("string", "profile name"),
    "group": ("string", "group name"),
    "q": ({"type": "string", "maxLength": 64}, "part of a MAC or host name"),
    "after": (
        {"type": "integer", "minimum": 0, "maximum": 2**62},
        "cursor: the `next` of the previous page",
    ),
    "limit": ({"type": "integer", "minimum": 1, "maximum": 1000}, "page size (default 100)"),
}


@bp.get("/clients")
@doc("List clients, filtered and paginated", response=ClientPage, query=LIST_QUERY)
def list_clients() -> Response:
    state = request.args.get("state") or None
    if state is not None and state not in STATES:
        raise InvalidInput("state", f"must be one of {', '.join(STATES)}")
    after = query_int("after", 0, 0, 2**62)
    limit = query_int("limit", 100, 1, clients.MAX_PAGE)
    q = request.args.get("q") or None
    if q is not None and len(q) > 64:
        raise InvalidInput("q", "at most 64 characters")
    with session_scope(fleet().engine) as s:
        page = clients.list_page(
            s,
            state=state,
            profile=request.args.get("profile") or None,
            group=request.args.get("group") or None,
            q=q,
            after=after,
            limit=limit,
        )
    return out(ClientPage(items=page.items, total=page.total, next=page.next))


@bp.post("/clients")
@doc("Register a client", body=ClientCreate, response=ClientPublic, status=201)
def create_client() -> Response:
    data = parse(ClientCreate)
    with session_scope(fleet().engine, write=True) as s:
        row = clients.create(s, data, fleet().checks, peer())
        return out(clients.public(s, row), 201)


@bp.get("/clients/<mac>")
@doc("Show a client with its current install", response=ClientPublic)
def show_client(mac: str) -> Response:
    with session_scope(fleet().engine) as s:
        return out(clients.public(s, clients.get(s, mac)))


@bp.patch("/clients/<mac>")
@doc("Change a client (only the fields sent)", body=ClientUpdate, response=ClientPublic)
def update_client(mac: str) -> Response:
    data = parse(ClientUpdate)
    with session_scope(fleet().engine, write=True) as s:
        row = clients.update(s, mac, data, fleet().checks, peer())
        return out(clients.public(s, row))


@bp.delete("/clients/<mac>")
@doc("Forget a client (its events stay)", status=204)
def delete_client(mac: str) -> Response:
    with session_scope(fleet().engine, write=True) as s:
        clients.delete(s, mac, peer())
    return Response(status=204)


@bp.post("/clients/<mac>/reinstall")
@doc(
    "Reinstall at the next network boot; `wake` also sends Wake-on-LAN",
    body=ReinstallRequest,
    response=Accepted,
)
def reinstall(mac: str) -> Response:
    f = fleet()
    ask = parse(ReinstallRequest)
    with session_scope(f.engine, write=True) as s:
        client = clients.get(s, mac)
        install = installs.reinstall(s, client, f.policy, f.checks, peer())
        done = Accepted(state=client.state, install=install.id or 0)
        mac = client.mac
    if ask.wake:
        ((_, done.wake),) = wakes.wake(f.engine, f.waker, [mac], peer())
    return out(done)


@bp.post("/clients/<mac>/cancel")
@doc("Cancel a requested or running reinstall", response=ClientPublic)
def cancel(mac: str) -> Response:
    with session_scope(fleet().engine, write=True) as s:
        client = clients.get(s, mac)
        installs.cancel(s, client, peer())
        return out(clients.public(s, client))


@bp.get("/clients/<mac>/events")
@doc(
    "A client's events, newest first",
    response=EventList,
    query={"limit": ({"type": "integer", "minimum": 1, "maximum": 1000}, "1-1000")},
)
def client_events(mac: str) -> Response:
    limit = query_int("limit", 200, 1, 1000)
    with session_scope(fleet().engine) as s:
        rows = events.list_events(s, clients.get(s, mac).mac, limit)
        items = [EventPublic.model_validate(e, from_attributes=True) for e in rows]
    return out(EventList(items=items))


@bp.get("/clients/<mac>/installs")
@doc("A client's install history, newest first", response=InstallList)
def client_installs(mac: str) -> Response:
    with session_scope(fleet().engine) as s:
        rows = installs.history(s, clients.get(s, mac))
        return out(InstallList(items=[clients.install_public(i) for i in rows]))


@bp.get("/clients/<mac>/installs/<int:install_id>")
@doc("One install of a client, with its failure log", response=InstallDetail)
def client_install(mac: str, install_id: int) -> Response:
    with session_scope(fleet().engine) as s:
        row = clients.owned_install(s, clients.get(s, mac), install_id)
        public = clients.install_public(row)
        return out(InstallDetail(**public.model_dump(), failure_log=row.failure_log))


@bp.post("/clients/import")
@doc(
    "Import clients from CSV mac,hostname,profile,groups (all rows or none)",
    body_type="text/csv",
    response=ImportResult,
)
def import_clients() -> Response:
    raw = request.get_data(cache=False)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("body", "CSV must be UTF-8") from None
    with session_scope(fleet().engine, write=True) as s:
        count = clients.import_csv(s, text, fleet().checks, peer())
    return out(ImportResult(imported=count))


@bp.post("/discovered/<mac>/approve")
@doc(
    "Register a machine that asked to be (from the unknown-machine menu) with a profile",
    body=DiscoveredApprove,
    response=ClientPublic,
    status=201,
)
def approve_discovered(mac: str) -> Response:
    data = parse(DiscoveredApprove)
    try:
        create = ClientCreate.model_validate({"mac": mac, **data.model_dump()})
    except ValidationError as exc:  # the MAC in the path: a 400 naming it, as for a body
        raise describe(exc) from None
    with session_scope(fleet().engine, write=True) as s:
        row = discovered.approve(s, create, fleet().checks, peer())
        return out(clients.public(s, row), 201)


@bp.get("/discovered")
@doc("Machines that network-booted without being registered", response=DiscoveredList)
def discovered_list() -> Response:
    with session_scope(fleet().engine) as s:
        rows = events.list_discovered(s)
        items = [DiscoveredPublic.model_validate(d, from_attributes=True) for d in rows]
    return out(DiscoveredList(items=items))

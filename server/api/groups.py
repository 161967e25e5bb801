"""/api/v1/groups: shared variables, and reinstalling many machines at once."""

from __future__ import annotations

from flask import Response

from server.api.auth import admin_blueprint
from server.api.body import parse
from server.api.docs import doc
from server.api.schemas import GroupList, GroupReinstall, ReinstallRequest, Skipped, Woken
from server.context import fleet, out, peer
from server.models import GroupCreate, GroupPublic, GroupUpdate, WaveCreate, WavePublic
from server.registry import bulk, groups, waves
from server.registry.database import session_scope

bp = admin_blueprint("groups", __name__)


@bp.get("/groups")
@doc("List groups", response=GroupList)
def list_groups() -> Response:
    with session_scope(fleet().engine) as s:
        return out(GroupList(items=[groups.public(s, g) for g in groups.list_all(s)]))


@bp.post("/groups")
@doc("Create a group", body=GroupCreate, response=GroupPublic, status=201)
def create_group() -> Response:
    data = parse(GroupCreate)
    with session_scope(fleet().engine, write=True) as s:
        return out(groups.public(s, groups.create(s, data)), 201)


@bp.get("/groups/<name>")
@doc("Show a group", response=GroupPublic)
def show_group(name: str) -> Response:
    with session_scope(fleet().engine) as s:
        return out(groups.public(s, groups.get(s, name)))


@bp.patch("/groups/<name>")
@doc("Change a group", body=GroupUpdate, response=GroupPublic)
def update_group(name: str) -> Response:
    data = parse(GroupUpdate)
    with session_scope(fleet().engine, write=True) as s:
        return out(groups.public(s, groups.update(s, name, data)))


@bp.delete("/groups/<name>")
@doc("Delete a group (its clients stay)", status=204)
def delete_group(name: str) -> Response:
    with session_scope(fleet().engine, write=True) as s:
        groups.delete(s, name)
    return Response(status=204)


@bp.post("/groups/<name>/reinstall")
@doc(
    "Request a reinstall of every member that can take one, now (`wake`: and wake them)",
    body=ReinstallRequest,
    response=GroupReinstall,
)
def reinstall_group(name: str) -> Response:
    """Each member is its own transaction: one busy machine does not hold back the rest."""
    f = fleet()
    ask = parse(ReinstallRequest)
    with session_scope(f.engine) as s:
        ids = groups.member_ids(s, name)
    done = bulk.reinstall(f.engine, ids, f.policy, f.checks, peer(), f.waker if ask.wake else None)
    return out(
        GroupReinstall(
            requested=done.requested,
            skipped=[Skipped(mac=mac, reason=why) for mac, why in done.skipped],
            woken=[Woken(mac=mac, wake=what) for mac, what in done.woken],
        )
    )


@bp.post("/groups/<name>/waves")
@doc(
    "Schedule a wave: reinstall the members from `at`, at most `batch` in flight at once",
    body=WaveCreate,
    response=WavePublic,
    status=201,
)
def schedule_wave(name: str) -> Response:
    data = parse(WaveCreate)
    with session_scope(fleet().engine, write=True) as s:
        wave = waves.schedule(s, name, data, peer())
        return out(waves.public(s, wave), 201)

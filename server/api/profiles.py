"""/api/v1/profiles: what machines install."""

from __future__ import annotations

from flask import Response

from server.api.auth import admin_blueprint
from server.api.body import parse
from server.api.docs import doc
from server.api.schemas import ProfileList
from server.context import fleet, out
from server.models import ProfileCreate, ProfilePublic, ProfileUpdate
from server.registry import profiles
from server.registry.database import session_scope

bp = admin_blueprint("profiles", __name__)


@bp.get("/profiles")
@doc("List profiles", response=ProfileList)
def list_profiles() -> Response:
    with session_scope(fleet().engine) as s:
        items = [
            ProfilePublic.model_validate(p, from_attributes=True) for p in profiles.list_all(s)
        ]
    return out(ProfileList(items=items))


@bp.post("/profiles")
@doc("Create a profile", body=ProfileCreate, response=ProfilePublic, status=201)
def create_profile() -> Response:
    data = parse(ProfileCreate)
    with session_scope(fleet().engine, write=True) as s:
        row = profiles.create(s, data, fleet().checks)
        return out(ProfilePublic.model_validate(row, from_attributes=True), 201)


@bp.get("/profiles/<name>")
@doc("Show a profile", response=ProfilePublic)
def show_profile(name: str) -> Response:
    with session_scope(fleet().engine) as s:
        return out(ProfilePublic.model_validate(profiles.get(s, name), from_attributes=True))


@bp.patch("/profiles/<name>")
@doc("Change a profile (only the fields sent)", body=ProfileUpdate, response=ProfilePublic)
def update_profile(name: str) -> Response:
    data = parse(ProfileUpdate)
    with session_scope(fleet().engine, write=True) as s:
        row = profiles.update(s, name, data, fleet().checks)
        return out(ProfilePublic.model_validate(row, from_attributes=True))


@bp.delete("/profiles/<name>")
@doc("Delete a profile no client uses", status=204)
def delete_profile(name: str) -> Response:
    with session_scope(fleet().engine, write=True) as s:
        profiles.delete(s, name)
    return Response(status=204)

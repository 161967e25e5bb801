"""/api/v1/hooks: webhooks for lifecycle events (their outbox is in the registry)."""

from __future__ import annotations

from flask import Response

from server.api.auth import admin_blueprint
from server.api.body import parse
from server.api.docs import doc
from server.api.schemas import HookCreated, HookList
from server.context import fleet, out
from server.models import HookCreate
from server.registry import hooks
from server.registry.database import session_scope

bp = admin_blueprint("hooks", __name__)


@bp.get("/hooks")
@doc("List webhooks, with their waiting and given-up deliveries", response=HookList)
def list_hooks() -> Response:
    with session_scope(fleet().engine) as s:
        return out(HookList(items=hooks.list_hooks(s)))


@bp.post("/hooks")
@doc(
    "Add a webhook; the answer carries its signing secret, shown once",
    body=HookCreate,
    response=HookCreated,
    status=201,
)
def add_hook() -> Response:
    data = parse(HookCreate)
    with session_scope(fleet().engine, write=True) as s:
        hook = hooks.add(s, data)
        created = HookCreated(**hooks.public(s, hook).model_dump(), secret=hook.secret)
    return out(created, 201)


@bp.delete("/hooks/<int:hook_id>")
@doc("Delete a webhook and the deliveries it is still owed", status=204)
def delete_hook(hook_id: int) -> Response:
    with session_scope(fleet().engine, write=True) as s:
        hooks.remove(s, hook_id)
    return Response(status=204)

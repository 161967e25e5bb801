"""Access to the running Fleet from inside a request."""

from __future__ import annotations

from flask import Response, current_app, request
from pydantic import BaseModel

from server.fleet import Fleet


def fleet() -> Fleet:
    fleet: Fleet = current_app.extensions["bootfleet"]
    return fleet


def peer() -> str | None:
    return request.remote_addr


def out(model: BaseModel, status: int = 200, *, exclude_unset: bool = False) -> Response:
    """A model as a JSON response (datetimes as ISO 8601 UTC)."""
    body = model.model_dump_json(exclude_unset=exclude_unset)
    return Response(body, status=status, mimetype="application/json")

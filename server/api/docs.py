"""OpenAPI 3.1, generated from the routes and their model types (never written by hand).

A view declares what it takes and returns with @doc; /api/v1/openapi.json walks the URL map
and turns each declaration into an operation, with schemas from the pydantic models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import server
from server import ratelimit
from server.api.schemas import ErrorBody
from server.models import NAME_RE

F = TypeVar("F", bound=Callable[..., Any])
bp = Blueprint("docs", __name__, url_prefix="/api/v1")

ERRORS = {
    400: "Bad input; `error.field` names the field",
    401: "Missing or wrong token",
    404: "No such resource",
    409: "Conflict: exists already, in use, or a forbidden or lost state change",
    413: "Body over 1 MiB",
    429: "Too many requests from this source; retry after `Retry-After` seconds",
    503: "Registry busy or unreachable; retry after `Retry-After` seconds",
}


@dataclass
class Doc:
    summary: str
    body: type[BaseModel] | None = None
    body_type: str = "application/json"
    response: type[BaseModel] | None = None
    content_type: str = "application/json"
    status: int = 200
    auth: str | None = "admin"  # "admin", "install" or None
    # name -> (type or JSON schema, text)
    query: dict[str, tuple[str | dict[str, Any], str]] = field(default_factory=dict)
    errors: tuple[int, ...] = (400, 401, 404, 409, 413, 503)


def doc(summary: str, **kwargs: Any) -> Callable[[F], F]:
    def wrap(view: F) -> F:
        view._doc = Doc(summary, **kwargs)  # type: ignore[attr-defined]
        return view

    return wrap


# What a path parameter of this name must look like (the API answers 400 otherwise).
PATH_PATTERNS = {
    "mac": r"^(?:[0-9a-fA-F]{2}([:-]?)(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}"
    r"|[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4})$",
    "name": NAME_RE.pattern,
}


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for conv, name in re.findall(r"<(?:(\w+):)?(\w+)>", rule):
        schema: dict[str, Any] = {"type": "integer"} if conv == "int" else {"type": "string"}
        if name in PATH_PATTERNS and conv != "int":
            schema["pattern"] = PATH_PATTERNS[name]
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule), params


def build_spec() -> dict[str, Any]:
    models: dict[type[BaseModel], str] = {ErrorBody: "serialization"}
    ops: list[tuple[str, str, Doc, list[dict[str, Any]]]] = []
    for rule in current_app.url_map.iter_rules():
        view = current_app.view_functions.get(rule.endpoint)
        meta: Doc | None = getattr(view, "_doc", None)
        if meta is None:
            continue
        path, params = _path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            ops.append((path, method.lower(), meta, params))
        if meta.body is not None:
            models.setdefault(meta.body, "validation")
        if meta.response is not None:
            models.setdefault(meta.response, "serialization")
    keyed = [(m, mode) for m, mode in models.items()]
    refs, schemas = models_json_schema(
        keyed,  # type: ignore[arg-type]
        ref_template="#/components/schemas/{model}",
    )
    components = schemas.get("$defs", {})

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return refs[(model, mode)]  # type: ignore[index]

    paths: dict[str, dict[str, Any]] = {}
    for path, method, meta, params in ops:
        op: dict[str, Any] = {"summary": meta.summary, "operationId": f"{method}_{path}"}
        op["parameters"] = params + [
            {
                "name": n,
                "in": "query",
                "required": False,
                "schema": t if isinstance(t, dict) else {"type": t},
                "description": d,
                "allowEmptyValue": True,  # `?limit=` means the default, as an HTML form sends it
            }
            for n, (t, d) in meta.query.items()
        ]
        if meta.body is not None:
            op["requestBody"] = {
                "required": False,
                "content": {meta.body_type: {"schema": ref(meta.body, "validation")}},
            }
        elif meta.body_type == "text/csv":
            op["requestBody"] = {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        if meta.response is not None:
            content = {meta.content_type: {"schema": ref(meta.response, "serialization")}}
        else:
            content = {meta.content_type: {"schema": {"type": "string"}}}
        ok: dict[str, Any] = {"description": "OK", "content": content}
        if meta.status == 204:  # no body, so no content type either
            ok = {"description": "Done; no body"}
        responses: dict[str, Any] = {str(meta.status): ok}
        for status in meta.errors:
            if status == 401 and meta.auth is None:
                continue
            responses[str(status)] = {
                "description": ERRORS[status],
                "content": {"application/json": {"schema": ref(ErrorBody, "serialization")}},
            }
        if ratelimit.applies(path):
            responses["429"] = {
                "description": ERRORS[429],
                "content": {"application/json": {"schema": ref(ErrorBody, "serialization")}},
            }
        op["responses"] = responses
        if meta.auth == "admin":
            op["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Bootfleet", "version": server.__version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(build_spec())

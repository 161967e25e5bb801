"""Every error leaves as JSON {"error": {"code", "message"}} with its HTTP status."""

from __future__ import annotations

import logging
import math

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from server.errors import BootfleetError, InvalidInput, TooManyRequests, Unavailable

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    body: dict[str, object] = {"code": code, "message": message}
    if field:
        body["field"] = field
    response = jsonify(error=body)
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(BootfleetError)
    def _bootfleet(exc: BootfleetError) -> Response:
        field = exc.field if isinstance(exc, InvalidInput) else None
        response = error_response(exc.status, exc.code, exc.message, field)
        if isinstance(exc, Unavailable):
            response.headers["Retry-After"] = "5"
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        for key, value in exc.get_headers():
            if key.lower() == "allow":
                response.headers[key] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error: %s", exc)
        return error_response(500, "internal", "internal error; the server log has the details")

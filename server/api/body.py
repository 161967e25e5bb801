"""Read a request body into a model, or a 400 naming the field that is wrong."""

from __future__ import annotations

from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from server.errors import InvalidInput, describe

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M]) -> M:
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH turns a huge body into 413
    if not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise describe(exc, "body") from None


def query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(name, "must be a whole number") from None
    if not low <= value <= high:
        raise InvalidInput(name, f"must be between {low} and {high}")
    return value

"""HTML form fields to and from the registry's input shapes (validation stays on the models)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from server.errors import InvalidInput, describe

M = TypeVar("M", bound=BaseModel)


def build(model: type[M], data: dict[str, Any]) -> M:
    """`model` from form data, or InvalidInput naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise describe(exc) from None


def words(text: str | None) -> list[str]:
    """Names separated by spaces, commas or semicolons."""
    return (text or "").replace(",", " ").replace(";", " ").split()


def lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def parse_vars(text: str | None, field: str = "variables") -> dict[str, Any]:
    """One NAME=VALUE per line. VALUE is read as JSON when it parses (numbers, true, lists,
    quoted strings), else taken as text; blank lines and lines starting with # are skipped."""
    out: dict[str, Any] = {}
    for lineno, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(field, f"line {lineno}: expected NAME=VALUE, got {line[:60]!r}")
        value = value.strip()
        try:
            out[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[name.strip()] = value
    return out


def format_vars(variables: dict[str, Any]) -> str:
    """The inverse of parse_vars: text that parses back to the same values."""
    return "".join(f"{name}={format_value(value)}\n" for name, value in variables.items())


def format_value(value: Any) -> str:
    if isinstance(value, str) and value == value.strip() and value.isprintable():
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value  # plain text reads back as itself
    return json.dumps(value)

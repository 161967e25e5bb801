"""One exception type per meaning; the HTTP layer maps each to a status once (api/errors.py)."""

from __future__ import annotations

from pydantic import ValidationError


class BootfleetError(Exception):
    """Base of every error Bootfleet reports to a user."""

    code = "error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(BootfleetError, ValueError):
    """A field of the input is malformed; `field` names it, `detail` says what is wrong."""

    code = "invalid_input"
    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.detail = message


class NotFound(BootfleetError):
    code = "not_found"
    status = 404


class Conflict(BootfleetError):
    """The resource exists already, or is in use, or another request changed it first."""

    code = "conflict"
    status = 409


class ForbiddenTransition(Conflict):
    """The lifecycle does not allow this change from the client's current state."""

    code = "forbidden_transition"


class Unauthorized(BootfleetError):
    code = "unauthorized"
    status = 401


class PayloadTooLarge(BootfleetError):
    code = "payload_too_large"
    status = 413


class StartupError(BootfleetError):
    """The service cannot start: a port is taken, an interface is missing, ..."""

    code = "startup"


class Unavailable(BootfleetError):
    """The registry cannot be reached or is locked; the caller should retry."""

    code = "unavailable"
    status = 503


class TooManyRequests(BootfleetError):
    """One source sent more requests than its rate limit allows; retry after `retry_after`."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def describe(exc: ValidationError, whole: str = "input") -> InvalidInput:
    """The first thing pydantic found wrong, as InvalidInput naming its field (`whole` when
    the input as a whole is wrong), in Bootfleet's words rather than pydantic's."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or whole
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "json_invalid":
        field, message = whole, f"not valid JSON: {err['ctx'].get('error', '')}".strip()
    elif err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required"
    return InvalidInput(field, message)

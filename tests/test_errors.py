"""errors.describe: the one translation of a pydantic error into Bootfleet's words, used by
the API, the web UI, the CLI, the CSV and JSON imports alike."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from server.errors import describe
from server.models import ClientCreate, ProfileCreate


def failure(make: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        make()
    return caught.value


M = "52:54:00:00:00:01"
NAME_RULE = "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"


@pytest.mark.parametrize(
    ("make", "field", "detail"),
    [
        (lambda: ClientCreate(mac="nope"), "mac", "not a MAC address: 'nope'"),  # no "Value error,"
        (lambda: ClientCreate.model_validate({}), "mac", "required"),
        (lambda: ClientCreate.model_validate({"mac": M, "x": 1}), "x", "unknown field"),
        (
            lambda: ClientCreate.model_validate_json("{"),
            "input",
            "not valid JSON: EOF while parsing an object at line 1 column 1",
        ),
        (lambda: ClientCreate(mac=M, groups=["ok", "b@d"]), "groups", NAME_RULE),
        (
            lambda: ProfileCreate.model_validate({"name": "p", "kernel": "k", "initrd": [1]}),
            "initrd.0",
            "Input should be a valid string",
        ),
    ],
)
def test_describe(make: Any, field: str, detail: str) -> None:
    exc = describe(failure(make))
    assert (exc.field, exc.detail, exc.message) == (field, detail, f"{field}: {detail}")


def test_the_whole_input_has_the_callers_name() -> None:
    assert describe(failure(lambda: ClientCreate.model_validate_json("[")), "body").field == "body"

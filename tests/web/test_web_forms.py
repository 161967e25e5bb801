"""Form fields to model input and back (server/web/forms.py)."""

from __future__ import annotations

from typing import Any

import pytest

from server.errors import InvalidInput
from server.models import ProfileCreate
from server.web.forms import build, format_vars, lines, parse_vars, words


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("", {}),
        ("a=1\n", {"a": 1}),
        ("a = text with spaces \n# comment\n\nb=true", {"a": "text with spaces", "b": True}),
        (
            'url=http://x/?a=b\nl=["x", 2]\nq="007"',
            {"url": "http://x/?a=b", "l": ["x", 2], "q": "007"},
        ),
        ("e=", {"e": ""}),
    ],
)
def test_parse_vars(text: str, parsed: dict[str, Any]) -> None:
    assert parse_vars(text) == parsed


@pytest.mark.parametrize("text", ["novalue", "=1", "  =x"])
def test_parse_vars_refuses(text: str) -> None:
    with pytest.raises(InvalidInput, match="line 1: expected NAME=VALUE"):
        parse_vars(text)


@pytest.mark.parametrize(
    "variables",
    [
        {"a": "plain", "b": 2, "c": 1.5, "d": True, "e": None, "f": ["x", 1]},
        {"looks_like_number": "42", "json_word": "true", "padded": " x ", "empty": ""},
        {"multi": "line\nbreak", "quote": '"q"'},
    ],
)
def test_format_vars_round_trips(variables: dict[str, Any]) -> None:
    assert parse_vars(format_vars(variables)) == variables


def test_words_and_lines() -> None:
    assert words(" a, b;c  d ") == ["a", "b", "c", "d"]
    assert words(None) == []
    assert lines(" x \n\n y\r\n") == ["x", "y"]


def test_build_names_the_bad_field() -> None:
    with pytest.raises(InvalidInput) as err:
        build(ProfileCreate, {"name": "ok", "kernel": "/abs"})
    assert err.value.field == "kernel"
    with pytest.raises(InvalidInput) as err:
        build(ProfileCreate, {"name": "ok"})
    assert (err.value.field, err.value.detail) == ("kernel", "required")

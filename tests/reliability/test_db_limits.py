"""What the database refuses, the API refuses first: on a SQLite file and on PostgreSQL, a
string longer than its VARCHAR column is a 400 naming the field, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from server.api import create_app
from server.config import Settings
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope
from tests.reliability.helpers import PROFILE

LONG = 5000  # past every VARCHAR(n) in the schema


@pytest.fixture
def http(settings: Settings, db_url: str) -> Iterator[tuple[FlaskClient, dict[str, str]]]:
    fleet = Fleet.open(settings.replace(database_url=db_url))
    try:
        with session_scope(fleet.engine, write=True) as s:
            _, secret = admin_tokens.create(s)
        app = create_app(fleet=fleet, test_config={"TESTING": True})
        yield app.test_client(), {"Authorization": f"Bearer {secret}"}
    finally:
        fleet.close()


# (method, path, body, the field the 400 names); bodies built around one over-long string.
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("post", "/api/v1/profiles", {**PROFILE, "name": "p1", "cmdline": "a" * LONG}, "cmdline"),
    ("post", "/api/v1/profiles", {**PROFILE, "name": "p2", "kernel": "k" * LONG}, "kernel"),
    (
        "post",
        "/api/v1/profiles",
        {**PROFILE, "name": "p3", "answer_template": "t" * LONG},
        "answer_template",
    ),
    ("patch", "/api/v1/profiles/debian12", {"cmdline": "a" * LONG}, "cmdline"),
    ("patch", "/api/v1/profiles/debian12", {"kernel": "k" * LONG}, "kernel"),
    ("patch", "/api/v1/profiles/debian12", {"answer_template": "t" * LONG}, "answer_template"),
    ("post", "/api/v1/groups", {"name": "g1", "description": "d" * LONG}, "description"),
    ("patch", "/api/v1/groups/lab", {"description": "d" * LONG}, "description"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), CASES)
def test_overlong_string_is_400_naming_the_field(
    http: tuple[FlaskClient, dict[str, str]],
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    client, auth = http
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    assert client.post("/api/v1/groups", json={"name": "lab"}, headers=auth).status_code == 201
    r = getattr(client, method)(path, json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert field in r.json["error"].get("field", "") + r.json["error"]["message"], r.text

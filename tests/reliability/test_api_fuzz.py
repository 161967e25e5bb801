"""Schemathesis against the generated /api/v1/openapi.json, in process (Flask WSGI app).

Every operation gets a bounded number of generated requests, once with a valid admin token
and once without one, on a SQLite file and on a real PostgreSQL server (which refuses what
SQLite stores: a NUL in text). No answer may be a 5xx, and every answer must match the
schema: status code documented, content type documented, body valid against the documented
model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from server.config import Settings
from server.fleet import Fleet
from tests.reliability.figures import FIGURES

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,  # schema-invalid input must get a 4xx, never a 2xx
]


@pytest.fixture
def fleet(settings: Settings, db_url: str) -> Iterator[Fleet]:
    """The registry the app under test uses: once a SQLite file, once PostgreSQL."""
    f = Fleet.open(settings.replace(database_url=db_url))
    yield f
    f.close()


def has_inputs(operation: Any) -> bool:
    """Whether the operation takes parameters or a body (else no negative case exists)."""
    return bool(len(operation.path_parameters) or len(operation.query) or len(operation.body))


def fuzz(
    operation: Any, mode: GenerationMode, headers: dict[str, str], failures: Counter[str]
) -> int:
    """Run the bounded examples of one operation; returns how many cases were tried."""
    tried = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal tried
        tried += 1
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except (Exception, FailureGroup) as exc:  # collect them all; one report at the end
            summary = " | ".join(
                line.strip()
                for line in str(exc).splitlines()
                if line.startswith(("- ", "[")) or "curl" in line
            )
            failures[f"{operation.label}: {summary[:400]}"] += 1

    try:
        run()
    except Unsatisfiable:
        # Free-form strings only (a file path, a MAC that boots locally when malformed):
        # no request breaks the schema, so there is no negative case to send.
        if mode is not GenerationMode.NEGATIVE:
            raise
        FIGURES["api operations without a negative case"] += 1
    return tried


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("with_token", [True, False], ids=["admin-token", "no-token"])
def test_every_operation_conforms(
    app: Flask, registered: str, token: str, with_token: bool, mode: GenerationMode
) -> None:
    # Unknown query parameters are ignored by design (a web UI may add cache busters).
    config = schemathesis.Config.from_dict({"generation": {"allow-extra-parameters": False}})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    headers = {"Authorization": f"Bearer {token}"} if with_token else {}
    failures: Counter[str] = Counter()
    tried = 0
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
            continue  # nothing to make invalid
        tried += fuzz(operation, mode, headers, failures)
    FIGURES["api cases tried"] += tried
    assert operations >= 20, "the schema lost its operations"
    assert tried >= operations, "hypothesis generated no cases"
    assert not failures, "\n".join(f"{n}x {what}" for what, n in failures.most_common(30))

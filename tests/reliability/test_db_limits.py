"""What the database refuses, the API refuses first: on a SQLite file and on PostgreSQL, a
string longer than its VARCHAR column or one with a NUL (PostgreSQL text cannot hold it) is
a 400 naming the field, and two requests inserting one MAC at once a 409; never a 500."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from server.config import Settings
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import PROFILE, admin_app, mac, token_in

LONG = 5000  # past every VARCHAR(n) in the schema


@pytest.fixture
def http(settings: Settings, db_url: str) -> Iterator[tuple[FlaskClient, dict[str, str]]]:
    with admin_app(settings.replace(database_url=db_url)) as client_and_auth:
        yield client_and_auth


# (method, path, body, the field the 400 names); bodies built around one over-long string.
CASES: list[tuple[str, str, dict[str, Any] | None, str]] = [
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


# NUL: PostgreSQL text cannot hold it (a DataError, 500), SQLite stores it.
CASES += [
    ("get", "/api/v1/clients?profile=%00", None, "profile"),
    ("get", "/api/v1/clients?group=a%00", None, "group"),
    ("get", "/api/v1/profiles/%00", None, "path"),
    ("get", "/api/v1/groups/lab%00", None, "path"),
    ("post", "/api/v1/groups", {"name": "g1", "description": "\0"}, "description"),
    ("patch", "/api/v1/groups/lab", {"description": "a\0"}, "description"),
    ("post", "/api/v1/clients", {"mac": mac(1), "profile": "\0"}, "profile"),
    ("post", "/api/v1/profiles", {**PROFILE, "name": "p1", "answer_template": "\0"}, "answer"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), CASES)
def test_refused_input_is_400_naming_the_field(
    http: tuple[FlaskClient, dict[str, str]],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    field: str,
) -> None:
    """An over-long string, or a NUL (found by the schemathesis run on PostgreSQL)."""
    client, auth = http
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    assert client.post("/api/v1/groups", json={"name": "lab"}, headers=auth).status_code == 201
    r = getattr(client, method)(path, json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert field in r.json["error"].get("field", "") + r.json["error"]["message"], r.text


ROUNDS = 8
ROWS = 200  # the import checks all rows before it inserts: a wide window for the race


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together by a barrier; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_import_racing_a_create_is_a_conflict(
    http: tuple[FlaskClient, dict[str, str]], db_url: str
) -> None:
    """A CSV import and a registration of one of its MACs at the same moment: one wins,
    the other is told the client exists already; never a 500, never both."""
    client, auth = http
    app = client.application
    a, text = auth, {**auth, "Content-Type": "text/csv"}
    for n in range(ROUNDS):
        macs = [mac(n * ROWS + i + 1) for i in range(ROWS)]
        csv = "".join(f"{m},,,\n" for m in macs)
        imp, new = at_once(
            partial(app.test_client().post, "/api/v1/clients/import", data=csv, headers=text),
            partial(app.test_client().post, "/api/v1/clients", json={"mac": macs[-1]}, headers=a),
        )
        assert imp.status_code != 500 and new.status_code != 500, (imp.text, new.text)
        if imp.status_code == 200:
            assert new.status_code == 409, new.text
        else:
            assert new.status_code == 201, new.text
            assert imp.status_code in (400, 409), imp.text
            assert "exists already" in imp.json["error"]["message"], imp.text
        first = client.get(f"/api/v1/clients/{macs[0]}", headers=auth)  # all rows or none
        assert first.status_code == (200 if imp.status_code == 200 else 404), first.text
        FIGURES[f"import racing a create, {db_url.split(':')[0]}: import {imp.status_code}"] += 1


def test_installer_reports_with_nul(http: tuple[FlaskClient, dict[str, str]]) -> None:
    """A progress message with NUL is refused; a failure log keeps its report, NUL shown."""
    client, auth = http
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    m = mac(2)
    r = client.post("/api/v1/clients", json={"mac": m, "profile": "debian12"}, headers=auth)
    assert r.status_code == 201, r.text
    assert client.post(f"/api/v1/clients/{m}/reinstall", headers=auth).status_code == 200
    token = token_in(client.get(f"/ipxe?mac={m}").text)
    r = client.post(f"/api/v1/installs/{token}/progress", json={"percent": 5, "message": "\0"})
    assert r.status_code == 400 and r.json["error"]["field"] == "message", r.text
    r = client.post(f"/api/v1/installs/{token}/failed", json={"log": "disk\0full"})
    assert r.status_code == 200, r.text
    installs = client.get(f"/api/v1/clients/{m}/installs", headers=auth).json["items"]
    detail = client.get(f"/api/v1/clients/{m}/installs/{installs[0]['id']}", headers=auth).json
    assert detail["failure_log"] == "disk\ufffdfull", detail


def test_one_new_group_brought_twice_at_once(
    http: tuple[FlaskClient, dict[str, str]],
) -> None:
    """Two clients registered at once with the same new group both get it; two creates of
    one group give 201 and 409. Never a 500 (it was one on PostgreSQL for the clients)."""
    client, auth = http
    app = client.application
    for n in range(ROUNDS):
        members = [
            partial(
                app.test_client().post,
                "/api/v1/clients",
                json={"mac": mac(1000 + 2 * n + i), "groups": [f"new{n}"]},
                headers=auth,
            )
            for i in range(2)
        ]
        assert sorted(r.status_code for r in at_once(*members)) == [201, 201]
        creates = [
            partial(app.test_client().post, "/api/v1/groups", json={"name": f"g{n}"}, headers=auth)
            for _ in range(2)
        ]
        assert sorted(r.status_code for r in at_once(*creates)) == [201, 409]
    assert client.get("/api/v1/groups/new0", headers=auth).json["members"] == 2


CLI_DELAYS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)  # when the registration follows the import


def cli_importer(argv: list[str], paths: list[str], barrier: Any, results: Any) -> None:
    """In its own process: `bootfleet client import` of each file once the barrier opens."""
    from click.testing import CliRunner

    from server.cli import main

    for path in paths:
        barrier.wait()
        r = CliRunner().invoke(main, ["client", "import", path, *argv])
        results.put((r.exit_code, r.output, repr(r.exception)))


def test_cli_import_racing_a_create(settings: Settings, db_url: str, tmp_path: Path) -> None:
    """The CLI in another process imports while the API registers one of the file's MACs a
    moment later: the CLI prints one clear line (exit 1) or the API answers 409."""
    settings = settings.replace(database_url=db_url)
    with admin_app(settings) as (http, auth):
        files, last = [], []
        for n in range(len(CLI_DELAYS)):
            macs = [mac(n * 2000 + i + 1) for i in range(2000)]
            path = tmp_path / f"import{n}.csv"
            path.write_text("".join(f"{m},,,\n" for m in macs))
            files.append(str(path))
            last.append(macs[-1])
        argv = ["--database-url", db_url, "--data-dir", str(settings.data_dir)]
        argv += ["--images-dir", str(settings.images)]
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(2), ctx.Queue()
        child = ctx.Process(target=cli_importer, args=(argv, files, barrier, results))
        child.start()
        try:
            for delay, m in zip(CLI_DELAYS, last, strict=True):
                barrier.wait(timeout=60)
                time.sleep(delay)
                r = http.post("/api/v1/clients", json={"mac": m}, headers=auth)
                code, output, exc = results.get(timeout=60)
                assert r.status_code in (201, 409), r.text
                if code == 0:
                    assert r.status_code == 409 and "imported 2000" in output, (r.text, output)
                else:
                    assert r.status_code == 201, r.text
                    assert code == 1 and output.startswith("Error: "), (output, exc)
                    assert "exists already" in output and "Traceback" not in output, output
                kind = "imported" if code == 0 else output.split(":")[1].strip()[:20]
                FIGURES[f"cli import racing a create, {db_url.split(':')[0]}: {kind}"] += 1
        finally:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()

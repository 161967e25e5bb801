"""The installer's side: answer, progress, done, failed - with the one-time token."""

import pytest
from flask.testing import FlaskClient

from server.fleet import Fleet
from server.models import FAILURE_LOG_MAX
from server.reaper import reap
from tests.helpers import boot_installer, state
from tests.test_reaper import age_deadline


@pytest.fixture
def booted(client: FlaskClient, auth: dict, registered: str) -> str:
    r = client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    assert r.status_code == 200, r.text
    return boot_installer(client, registered)


def test_full_success_path(client: FlaskClient, auth: dict, registered: str, booted: str) -> None:
    assert state(client, auth, registered) == "booting"
    r = client.post(booted + "/progress", json={"percent": 40, "message": "copying files"})
    assert r.status_code == 200, r.text
    assert state(client, auth, registered) == "installing"
    c = client.get(f"/api/v1/clients/{registered}", headers=auth).json
    assert (c["install"]["progress"], c["install"]["message"]) == (40, "copying files")
    assert client.post(booted + "/done").status_code == 200  # an empty body is fine
    assert state(client, auth, registered) == "installed"
    kinds = [
        e["kind"]
        for e in client.get(f"/api/v1/clients/{registered}/events", headers=auth).json["items"]
    ]
    assert kinds[:4] == ["installed", "progress", "installing", "boot"]


def test_failure_keeps_the_log(
    client: FlaskClient, auth: dict, registered: str, booted: str
) -> None:
    r = client.post(booted + "/failed", json={"log": "mkfs: no such device\n", "message": "disk"})
    assert r.status_code == 200, r.text
    assert state(client, auth, registered) == "failed"
    c = client.get(f"/api/v1/clients/{registered}", headers=auth).json
    detail = client.get(
        f"/api/v1/clients/{registered}/installs/{c['install']['id']}", headers=auth
    ).json
    assert detail["failure_log"] == "mkfs: no such device\n" and detail["has_log"]
    assert "exit" in client.get(f"/ipxe?mac={registered}").text  # failed: boots its disk


def test_failure_log_is_capped_keeping_the_end(
    client: FlaskClient, auth: dict, registered: str, booted: str
) -> None:
    log = "x" * (FAILURE_LOG_MAX * 2) + "THE END"
    assert client.post(booted + "/failed", json={"log": log}).status_code == 200
    c = client.get(f"/api/v1/clients/{registered}", headers=auth).json
    detail = client.get(
        f"/api/v1/clients/{registered}/installs/{c['install']['id']}", headers=auth
    ).json
    assert len(detail["failure_log"].encode()) <= FAILURE_LOG_MAX
    assert detail["failure_log"].endswith("THE END")


def test_answer_fetch_without_answer_file_is_404_and_changes_nothing(
    client: FlaskClient, auth: dict, registered: str, booted: str
) -> None:
    r = client.get(booted + "/answer")
    assert r.status_code == 404 and "no answer file" in r.json["error"]["message"]
    assert state(client, auth, registered) == "booting"


@pytest.mark.parametrize(
    "body",
    [
        {"percent": 101},
        {"percent": -1},
        {"percent": "50"},
        {"message": "x"},
        {"percent": 5, "extra": 1},
    ],
)
def test_bad_progress_is_400(client: FlaskClient, booted: str, body: dict) -> None:
    r = client.post(booted + "/progress", json=body)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("bogus", ["0" * 64, "nothex", "a" * 200])
def test_unknown_token_is_401(client: FlaskClient, booted: str, bogus: str) -> None:
    for action in ("progress", "done", "failed"):
        r = client.post(
            f"/api/v1/installs/{bogus}/{action}",
            json={"percent": 1} if action == "progress" else {},
        )
        assert r.status_code == 401, r.text
    assert client.get(f"/api/v1/installs/{bogus}/answer").status_code == 401


def test_spent_token_is_refused(
    client: FlaskClient, auth: dict, registered: str, booted: str
) -> None:
    assert client.post(booted + "/done").status_code == 200
    for action in ("progress", "done", "failed"):
        r = client.post(f"{booted}/{action}", json={"percent": 1} if action == "progress" else {})
        assert r.status_code == 409, f"{action}: {r.text}"
    assert client.get(booted + "/answer").status_code == 409
    assert state(client, auth, registered) == "installed"


def test_superseded_token_is_refused(
    client: FlaskClient, auth: dict, registered: str, booted: str
) -> None:
    assert client.post(f"/api/v1/clients/{registered}/cancel", headers=auth).status_code == 200
    assert client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth).status_code == 200
    r = client.post(booted + "/done")
    assert r.status_code == 409 and "superseded" in r.json["error"]["message"]
    assert state(client, auth, registered) == "pending"
    newer = boot_installer(client, registered)
    assert newer != booted  # a fresh token for each install


def test_done_after_deadline_is_accepted(
    client: FlaskClient, auth: dict, registered: str, booted: str, fleet: Fleet
) -> None:
    age_deadline(fleet, registered)
    assert reap(fleet.engine) == [registered]
    assert state(client, auth, registered) == "failed"
    assert client.post(booted + "/done").status_code == 200
    assert state(client, auth, registered) == "installed"
    events = client.get(f"/api/v1/clients/{registered}/events", headers=auth).json["items"]
    assert "after its deadline" in events[0]["detail"]


def test_failed_report_after_deadline_is_refused(
    client: FlaskClient, auth: dict, registered: str, booted: str, fleet: Fleet
) -> None:
    age_deadline(fleet, registered)
    reap(fleet.engine)
    assert client.post(booted + "/failed", json={"log": "late"}).status_code == 409


def test_cancelled_install_refuses_callbacks(
    client: FlaskClient, auth: dict, registered: str, booted: str
) -> None:
    assert client.post(f"/api/v1/clients/{registered}/cancel", headers=auth).status_code == 200
    assert client.post(booted + "/done").status_code == 409
    assert state(client, auth, registered) == "idle"

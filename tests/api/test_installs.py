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


def test_install_urls_stay_short(booted: str) -> None:
    """Windows limits a RunSynchronous command to 259 characters; the URL must leave room."""
    token = booted.rsplit("/", 1)[1]
    assert len(token) == 43 and token.replace("-", "").replace("_", "").isalnum()
    assert len("http://198.18.0.1:8080" + booted) < 90


def test_cloud_init_nocloud_names(
    client: FlaskClient, auth: dict, registered: str, booted: str
) -> None:
    meta = client.get(booted + "/meta-data")
    assert meta.status_code == 200
    assert meta.text == "instance-id: bootfleet-install-1\nlocal-hostname: pc01\n"
    assert state(client, auth, registered) == "booting"  # meta-data is not a sign of the installer
    assert client.get(booted + "/user-data").status_code == 404  # same as /answer: no template here
    assert client.post(booted + "/done").status_code == 200
    assert client.get(booted + "/meta-data").status_code == 409


def test_real_answer_template_through_the_whole_path(client: FlaskClient, auth: dict) -> None:
    profile = {
        "name": "deb",
        "kernel": "debian/linux",
        "initrd": ["debian/initrd.gz"],
        "answer_template": "debian-preseed",
        "variables": {"timezone": "Europe/Berlin"},
    }
    assert client.post("/api/v1/profiles", json=profile, headers=auth).status_code == 201
    # the template needs root_password_hash: refused when assigned, naming the variable
    r = client.post(
        "/api/v1/clients", json={"mac": "52:54:00:00:0a:01", "profile": "deb"}, headers=auth
    )
    assert r.status_code == 400 and r.json["error"]["field"] == "variables.root_password_hash", (
        r.text
    )
    body = {
        "mac": "52:54:00:00:0a:01",
        "hostname": "pc9",
        "profile": "deb",
        "variables": {"root_password_hash": "$6$salt$" + "a" * 86},
    }
    assert client.post("/api/v1/clients", json=body, headers=auth).status_code == 201, r.text
    assert (
        client.post("/api/v1/clients/52:54:00:00:0a:01/reinstall", headers=auth).status_code == 200
    )
    path = boot_installer(client, "52:54:00:00:0a:01")
    r = client.get(path + "/answer")
    assert r.status_code == 200, r.text
    url = "http://198.18.0.1:8080" + path
    assert url in r.text  # the template posts to "$U/progress", "$U/done", "$U/failed"
    assert all(f"/{call}" in r.text for call in ("progress", "done", "failed"))
    assert "Europe/Berlin" in r.text and "pc9" in r.text
    assert state(client, auth, "52:54:00:00:0a:01") == "installing"
    assert client.get(path + "/answer").status_code == 200  # fetched again by its own helper


def test_bad_variable_is_refused_at_reinstall_time(
    client: FlaskClient, auth: dict, fleet: Fleet
) -> None:
    profile = {
        "name": "deb",
        "kernel": "debian/linux",
        "answer_template": "debian-preseed",
        "variables": {"root_password_hash": "$6$salt$" + "a" * 86},
    }
    client.post("/api/v1/profiles", json=profile, headers=auth)
    client.post(
        "/api/v1/clients",
        json={"mac": "52:54:00:00:0b:01", "profile": "deb", "groups": ["lab"]},
        headers=auth,
    )
    bad = {"variables": {"root_password_hash": "x\ny"}}
    r = client.patch("/api/v1/profiles/deb", json=bad, headers=auth)  # checked for its clients
    assert r.status_code == 400 and "client 52:54:00:00:0b:01" in r.json["error"]["message"]
    # a group's variables change after assignment (unchecked): the reinstall request catches it
    assert client.patch("/api/v1/groups/lab", json=bad, headers=auth).status_code == 200
    r = client.post("/api/v1/clients/52:54:00:00:0b:01/reinstall", headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "variables.root_password_hash", (
        r.text
    )
    assert state(client, auth, "52:54:00:00:0b:01") == "idle"

from datetime import timedelta

from flask.testing import FlaskClient

from server.fleet import Fleet
from server.models import utcnow
from server.reaper import Reaper, reap
from server.registry import clients, installs
from server.registry.database import session_scope
from tests.helpers import boot_installer, state


def age_deadline(fleet: Fleet, mac: str, seconds: int = 1) -> None:
    with session_scope(fleet.engine, write=True) as s:
        inst = installs.current(s, clients.get(s, mac))
        assert inst and inst.deadline_at
        inst.deadline_at = utcnow() - timedelta(seconds=seconds)
        s.add(inst)


def test_booting_install_fails_when_no_boot_file_is_fetched(
    client: FlaskClient, auth: dict, registered: str, fleet: Fleet
) -> None:
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    boot_installer(client, registered)
    assert reap(fleet.engine) == []  # not yet due
    age_deadline(fleet, registered)
    assert reap(fleet.engine) == [registered]
    assert state(client, auth, registered) == "failed"
    r = client.get(f"/api/v1/clients/{registered}", headers=auth)
    assert r.json["install"]["result"] == "deadline"
    assert "boot file fetch" in r.json["install"]["message"]
    assert client.get(f"/ipxe?mac={registered}").text.count("exit") >= 1  # local boot now


def test_installing_install_fails_without_progress(
    client: FlaskClient, auth: dict, registered: str, fleet: Fleet
) -> None:
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    path = boot_installer(client, registered)
    client.post(path + "/progress", json={"percent": 5, "message": "start"})
    age_deadline(fleet, registered)
    assert reap(fleet.engine) == [registered]
    r = client.get(f"/api/v1/clients/{registered}", headers=auth)
    assert r.json["state"] == "failed" and "progress report" in r.json["install"]["message"]


def test_progress_pushes_the_deadline_back(
    client: FlaskClient, auth: dict, registered: str, fleet: Fleet
) -> None:
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    path = boot_installer(client, registered)
    age_deadline(fleet, registered)
    client.post(path + "/progress", json={"percent": 50})  # a sign of life before the reaper runs
    assert reap(fleet.engine) == []
    assert state(client, auth, registered) == "installing"


def test_pending_install_has_no_deadline(
    client: FlaskClient, auth: dict, registered: str, fleet: Fleet
) -> None:
    """A machine may be powered off for days before its requested reinstall is seen."""
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    assert reap(fleet.engine) == []
    assert state(client, auth, registered) == "pending"


def test_deadline_survives_a_restart(
    client: FlaskClient, auth: dict, registered: str, fleet: Fleet
) -> None:
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    boot_installer(client, registered)
    age_deadline(fleet, registered)
    reopened = Fleet.open(fleet.settings)  # a new process: only the database carries over
    try:
        assert reap(reopened.engine) == [registered]
    finally:
        reopened.close()


def test_reaper_thread_runs_at_start_and_stops(
    client: FlaskClient, auth: dict, registered: str, fleet: Fleet
) -> None:
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    boot_installer(client, registered)
    age_deadline(fleet, registered)
    thread = Reaper(fleet.engine, interval=3600)
    thread.start()
    try:
        for _ in range(200):
            if state(client, auth, registered) == "failed":
                break
            thread.stopping.wait(0.05)
        assert state(client, auth, registered) == "failed"
    finally:
        thread.stop()
    assert not thread.is_alive()

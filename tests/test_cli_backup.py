"""`bootfleet db restore` on a real SQLite file: a restored pending install is not re-armed
unless asked for, so a machine installed since the backup is not wiped at its next boot."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from server.app import create_app
from server.cli import main
from server.config import Settings
from server.fleet import Fleet
from tests.helpers import boot_installer


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr + result.stdout
    return result


def backup_pending_then_install(
    client: FlaskClient, auth: dict[str, str], mac: str, fleet: Fleet, dest: Path
) -> None:
    """Back up while `mac` is pending; then it installs, and the server stops."""
    r = client.post(f"/api/v1/clients/{mac}/reinstall", headers=auth)
    assert r.status_code in (200, 201), r.text
    cli("db", "backup", "--data-dir", str(fleet.settings.data_dir), str(dest))
    path = boot_installer(client, mac)
    assert client.post(path + "/done", json={}).status_code == 200
    fleet.close()


def restarted(settings: Settings) -> tuple[Fleet, FlaskClient]:
    fleet = Fleet.open(settings)
    return fleet, create_app(fleet=fleet, test_config={"TESTING": True}).test_client()


def test_restore_does_not_re_arm_a_pending_install(
    client: FlaskClient, auth: dict[str, str], registered: str, fleet: Fleet, tmp_path: Path
) -> None:
    dest = tmp_path / "backup.db"
    backup_pending_then_install(client, auth, registered, fleet, dest)
    out = cli("db", "restore", "--data-dir", str(fleet.settings.data_dir), str(dest)).stdout

    again, http = restarted(fleet.settings)
    try:
        r = http.get(f"/ipxe?mac={registered}&arch=x86_64")
        assert r.status_code == 200 and "bootfleet.install=" not in r.text, r.text
        assert registered in out and "not re-armed" in out, out
        r = http.get(f"/api/v1/clients/{registered}", headers=auth)
        assert r.json["state"] == "idle", r.text
        events = http.get(f"/api/v1/clients/{registered}/events", headers=auth).json
        details = [e["detail"] for e in events["items"]]
        assert any("restored from backup of" in d and "not re-armed" in d for d in details), events
    finally:
        again.close()


def test_restore_keep_pending_keeps_the_install_armed(
    client: FlaskClient, auth: dict[str, str], registered: str, fleet: Fleet, tmp_path: Path
) -> None:
    dest = tmp_path / "backup.db"
    backup_pending_then_install(client, auth, registered, fleet, dest)
    data = str(fleet.settings.data_dir)
    out = cli("db", "restore", "--keep-pending", "--data-dir", data, str(dest)).stdout
    assert registered in out and "still armed" in out, out

    again, http = restarted(fleet.settings)
    try:
        boot_installer(http, registered)  # the installer config, as before the backup
    finally:
        again.close()

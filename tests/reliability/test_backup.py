"""`bootfleet db backup|restore` and `bootfleet export|import`, driven as an operator would:
an online backup is one consistent snapshot while writes go on, restore refuses while the
service runs, and export -> fresh registry -> import -> export gives the same file."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from server import backup
from server.cli import main
from server.config import Settings
from tests import serve
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import PROFILE, mac
from tests.serve import Served, admin_token


def cli(*args: str, check: bool = True) -> Result:
    """The same command in process (fast); for the export/import tests' many calls."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if check:
        assert result.exit_code == 0, result.stderr + result.stdout
    return result


def macs_in(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return [r[0] for r in conn.execute("SELECT mac FROM client ORDER BY id")]
    finally:
        conn.close()


def test_online_backup_and_restore(settings: Settings, tmp_path: Path) -> None:
    data, images = settings.data_dir, settings.images
    auth = {"Authorization": f"Bearer {admin_token(data)}"}
    server = Served(data, images).start()
    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with requests.Session() as http:
            for n in range(1, 5000):
                if stop.is_set():
                    return
                r = http.post(f"{server.url}/api/v1/clients", json={"mac": mac(n)}, headers=auth)
                assert r.status_code == 201, r.text
                acked.append(mac(n))

    try:
        thread = threading.Thread(target=writer)
        thread.start()
        for _ in range(1000):  # bounded: until some writes are in
            if len(acked) >= 30:
                break
            threading.Event().wait(0.01)
        before = len(acked)
        dest = tmp_path / "backup.db"
        out = serve.cli("db", "backup", "--data-dir", str(data), str(dest))
        after = len(acked)
        snapshot = macs_in(dest)
        for _ in range(1000):  # bounded: let the stream pass the snapshot before stopping it
            if len(acked) > len(snapshot) or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        stop.set()
        thread.join(timeout=60)
        assert "site.key" in out
        # one consistent snapshot: a gap-free prefix of the stream, taken during the backup
        assert snapshot == [mac(n) for n in range(1, len(snapshot) + 1)]
        assert before <= len(snapshot) <= after + 1, (before, len(snapshot), after)
        assert len(acked) > len(snapshot), "the writes did not go on past the backup"

        # a backup into a folder gets a dated name
        out = serve.cli("db", "backup", "--data-dir", str(data), str(tmp_path))
        assert list(tmp_path.glob("bootfleet-*.db"))

        refused = serve.run_cli("db", "restore", "--data-dir", str(data), str(dest))
        assert refused.returncode != 0
        assert "running" in refused.stderr and str(server.proc.pid) in refused.stderr  # type: ignore[union-attr]
    finally:
        stop.set()
        server.stop()
    total = len(macs_in(data / "bootfleet.db"))
    serve.cli("db", "restore", "--data-dir", str(data), str(dest))
    kept = list(data.glob("bootfleet.db.before-restore-*"))
    assert len(kept) == 1 and len(macs_in(kept[0])) == total
    server.start()
    try:
        page = requests.get(f"{server.url}/api/v1/clients?limit=1000", headers=auth).json()
        assert [c["mac"] for c in page["items"]] == snapshot
    finally:
        server.stop()
    FIGURES["backup: clients in the online snapshot"] += len(snapshot)


def test_restore_after_a_crash_is_allowed_and_serve_waits_for_a_restore(
    settings: Settings, tmp_path: Path
) -> None:
    data, images = settings.data_dir, settings.images
    server = Served(data, images).start()
    dest = tmp_path / "b.db"
    serve.cli("db", "backup", "--data-dir", str(data), str(dest))
    server.kill9()  # the lock file stays behind, the lock itself dies with the process
    assert (data / backup.LOCK_NAME).exists()
    serve.cli("db", "restore", "--data-dir", str(data), str(dest))
    with backup.exclusive(data):  # a restore in progress
        refused = Served(data, images).start(wait=False)
        status = refused.wait_exit()
    assert status != 0 and "restore is in progress" in refused.output()


def test_restore_refuses_a_file_that_is_not_a_registry(settings: Settings, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    result = serve.run_cli("db", "restore", "--data-dir", str(settings.data_dir), str(junk))
    assert result.returncode == 1 and "not a Bootfleet database" in result.stderr
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = serve.run_cli("db", "restore", "--data-dir", str(settings.data_dir), str(empty))
    assert result.returncode == 1


def test_postgres_backup_is_pg_dumps_job(settings: Settings, tmp_path: Path) -> None:
    url = "postgresql+psycopg://bootfleet@127.0.0.1:1/none"
    result = serve.run_cli(
        "db",
        "backup",
        "--data-dir",
        str(settings.data_dir),
        "--database-url",
        url,
        str(tmp_path / "x"),
    )
    assert result.returncode == 1 and "pg_dump" in result.stderr


# --- export / import --------------------------------------------------------------------------


def populate(data: Path, images: Path) -> None:
    d = ("--data-dir", str(data), "--images-dir", str(images))
    cli(
        "profile",
        "create",
        "debian12",
        "--kernel",
        "debian/linux",
        "--initrd",
        "debian/initrd.gz",
        "--cmdline",
        PROFILE["cmdline"],  # type: ignore[arg-type]
        "--answer-template",
        "debian-preseed",
        "--var",
        "root_password_hash=$6$rounds=5000$saltsalt$abcdefghijklmnopqrstuv",
        "--var",
        "locale=de_DE.UTF-8",
        *d,
    )
    cli("profile", "create", "rescue", "--kernel", "http://198.18.0.9/vmlinuz", *d)
    cli("group", "create", "lab", "--description", "Room 101", "--var", "keyboard=de", *d)
    cli("group", "create", "empty", *d)
    for n in range(1, 6):
        extra = ("--group", "lab") if n % 2 else ("--group", "lab", "--group", "night")
        cli(
            "client",
            "add",
            mac(n),
            "--hostname",
            f"PC{n:02d}",
            "--profile",
            "debian12",
            "--var",
            f"disk=/dev/vd{'abcde'[n - 1]}",
            *extra,
            *d,
        )
    cli("client", "add", mac(99), *d)  # no profile, no groups


def test_export_import_round_trip(settings: Settings, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    images = settings.images
    populate(first, images)
    cli("reinstall", mac(1), "--data-dir", str(first), "--images-dir", str(images))
    exported = tmp_path / "export.json"
    cli("export", "--data-dir", str(first), str(exported))
    data = json.loads(exported.read_text())
    assert [p["name"] for p in data["profiles"]] == ["debian12", "rescue"]
    assert {g["name"] for g in data["groups"]} == {"empty", "lab", "night"}
    assert len(data["clients"]) == 6 and "state" not in data["clients"][0]
    assert "token" not in exported.read_text()

    out = cli("import", "--data-dir", str(second), str(exported))
    assert "imported 2 profiles, 3 groups, 6 clients" in out.stdout
    again = cli("export", "--data-dir", str(second)).stdout
    assert again == exported.read_text()

    # all or nothing: a second import into the same registry changes nothing
    before = cli("export", "--data-dir", str(second)).stdout
    result = cli("import", "--data-dir", str(second), str(exported), check=False)
    assert result.exit_code == 1 and "profiles[0]" in result.stderr
    assert cli("export", "--data-dir", str(second)).stdout == before

    # a broken item is named, and nothing of the file lands
    broken = json.loads(exported.read_text())
    broken["clients"][3]["mac"] = "not-a-mac"
    third = tmp_path / "three"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = cli("import", "--data-dir", str(third), str(path), check=False)
    assert result.exit_code == 1 and "clients[3].mac" in result.stderr
    assert json.loads(cli("export", "--data-dir", str(third)).stdout)["profiles"] == []
    for junk in ("[]", "{", '{"bootfleet_export": 99}'):
        path.write_text(junk)
        result = cli("import", "--data-dir", str(third), str(path), check=False)
        assert result.exit_code == 1, junk
    FIGURES["export/import round trips"] += 1


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_export_import_across_backends(
    settings: Settings, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """Moving from SQLite to PostgreSQL (or back) is an export and an import."""
    src = tmp_path / "src"
    populate(src, settings.images)
    exported = cli("export", "--data-dir", str(src)).stdout
    target: tuple[str, ...] = ("--data-dir", str(tmp_path / "dst"))
    if kind == "postgres":
        target += ("--database-url", request.getfixturevalue("pg_url"))
    path = tmp_path / "e.json"
    path.write_text(exported)
    cli("import", *target, str(path))
    assert cli("export", *target).stdout == exported

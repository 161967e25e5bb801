import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from server.cli import main


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    images = tmp_path / "images"
    (images / "deb").mkdir(parents=True)
    env = {
        "BOOTFLEET_DATA_DIR": str(tmp_path / "data"),
        "BOOTFLEET_IMAGES_DIR": str(images),
        "BOOTFLEET_ADVERTISE": "198.18.0.1",
    }

    def invoke(*args: str, ok: bool = True, **kw: object) -> Result:
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False, **kw)  # type: ignore[arg-type]
        assert (result.exit_code == 0) is ok, result.output
        return result

    return invoke


def test_token_create_prints_only_the_token(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = run("token", "create", "--data-dir", str(tmp_path / "other")).output
    assert len(out.strip()) == 64 and out.strip() == out.strip().lower() and out.count("\n") == 1
    assert (tmp_path / "other" / "bootfleet.db").exists()  # the flag beat BOOTFLEET_DATA_DIR
    assert not (tmp_path / "data").exists()


def test_token_list_and_revoke(run) -> None:  # type: ignore[no-untyped-def]
    secret = run("token", "create", "--name", "ops").output.strip()
    rows = json.loads(run("token", "list", "--json").output)
    assert (
        rows[0]["name"] == "ops"
        and rows[0]["prefix"] == secret[:8]
        and rows[0]["revoked_at"] is None
    )
    assert secret not in run("token", "list").output
    run("token", "revoke", str(rows[0]["id"]))
    assert json.loads(run("token", "list", "--json").output)[0]["revoked_at"]
    assert "no admin token" in run("token", "revoke", "99", ok=False).output


def test_profile_client_reinstall_cancel_events(run) -> None:  # type: ignore[no-untyped-def]
    run(
        "profile",
        "create",
        "deb12",
        "--kernel",
        "deb/linux",
        "--initrd",
        "deb/initrd.gz",
        "--cmdline",
        "auto=true",
        "--var",
        "disk=/dev/vda",
        "--var",
        'packages=["vim"]',
    )
    shown = json.loads(run("profile", "show", "deb12", "--json").output)
    assert shown["variables"] == {"disk": "/dev/vda", "packages": ["vim"]}
    assert "deb12" in run("profile", "list").output
    run(
        "client",
        "add",
        "AA-BB-CC-00-00-01",
        "--hostname",
        "pc1",
        "--profile",
        "deb12",
        "--group",
        "lab",
    )
    table = run("client", "list").output
    assert table.splitlines()[0].split()[:5] == ["MAC", "HOSTNAME", "PROFILE", "GROUPS", "STATE"]
    assert "aa:bb:cc:00:00:01  pc1" in table
    assert "pending" in run("reinstall", "aa:bb:cc:00:00:01").output
    assert json.loads(run("client", "show", "aabbcc000001", "--json").output)["state"] == "pending"
    assert "cannot reinstall" in run("reinstall", "aa:bb:cc:00:00:01", ok=False).output
    assert "idle" in run("cancel", "aa:bb:cc:00:00:01").output
    kinds = [e["kind"] for e in json.loads(run("events", "aa:bb:cc:00:00:01", "--json").output)]
    assert kinds == ["cancel", "reinstall", "registered"]
    run("client", "update", "aa:bb:cc:00:00:01", "--hostname", "pc2")
    assert "pc2" in run("client", "show", "aa:bb:cc:00:00:01").output
    assert "assigned to 1 client" in run("profile", "delete", "deb12", ok=False).output
    run("client", "delete", "aa:bb:cc:00:00:01")
    run("profile", "delete", "deb12")


def test_groups_and_import(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("profile", "create", "deb12", "--kernel", "deb/linux")
    csv = tmp_path / "c.csv"
    csv.write_text(
        "mac,hostname,profile,groups\n52:54:00:00:00:01,a,deb12,lab\n52:54:00:00:00:02,b,,lab\n"
    )
    assert "imported 2" in run("client", "import", str(csv)).output
    groups = json.loads(run("group", "list", "--json").output)
    assert [(g["name"], g["members"]) for g in groups] == [("lab", 2)]
    out = run("group", "reinstall", "lab").output
    assert "52:54:00:00:00:01: pending" in out and "52:54:00:00:00:02: skipped" in out
    run("group", "create", "room2", "--var", "timezone=UTC")
    run("group", "delete", "room2")


@pytest.mark.parametrize("q", ["52-54-00-00-00", "52:54:00:00:00", "5254000000", "5254.0000.00"])
def test_client_list_search_takes_any_spelling(run, q: str) -> None:  # type: ignore[no-untyped-def]
    run("client", "add", "52:54:00:00:00:01", "--hostname", "a")
    run("client", "add", "52:54:00:00:01:02", "--hostname", "b")
    rows = json.loads(run("client", "list", "--search", q, "--json").output)
    assert [c["mac"] for c in rows] == ["52:54:00:00:00:01"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("client", "add", "ff:ff:ff:ff:ff:ff"), "broadcast"),
        (("client", "add", "52:54:00:00:00:01", "--profile", "nope"), "no profile named"),
        (("client", "show", "zz"), "not a MAC"),
        (("reinstall", "52:54:00:00:00:09"), "no client"),
        (("profile", "create", "x", "--kernel", "../etc/passwd"), "kernel"),
        (("profile", "create", "x", "--kernel", "k", "--var", "novalue"), "NAME=VALUE"),
    ],
)
def test_errors_are_one_clear_line(run, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run(*args, ok=False)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_bad_environment_value_is_reported(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["token", "list"],
        env={"BOOTFLEET_HTTP_PORT": "x", "BOOTFLEET_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 1 and "BOOTFLEET_HTTP_PORT" in result.output


def test_client_add_checks_the_installer_command_line(run) -> None:  # type: ignore[no-untyped-def]
    run("profile", "create", "deb12", "--kernel", "deb/linux", "--cmdline", "auto=true x={{ x }}")
    out = run("client", "add", "52:54:00:00:00:01", "--profile", "deb12", ok=False).output
    assert "cmdline: cannot render: 'x' is undefined" in out and "Traceback" not in out
    out = run(
        "client", "add", "52:54:00:00:00:01", "--profile", "deb12", "--var", "x=${y}", ok=False
    ).output
    assert "cmdline: iPXE expands" in out
    run("client", "add", "52:54:00:00:00:01", "--profile", "deb12", "--var", "x=1")
    out = run("profile", "update", "deb12", "--cmdline", "x='{{ x }}'", ok=False).output
    assert "cmdline: client 52:54:00:00:00:01: GRUB adds a backslash" in out


def test_version_is_the_installed_release(run) -> None:  # type: ignore[no-untyped-def]
    from importlib import metadata

    out = run("--version", prog_name="bootfleet").output
    assert out == f"bootfleet, version {metadata.version('bootfleet')}\n"

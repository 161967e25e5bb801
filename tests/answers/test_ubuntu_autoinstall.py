"""ubuntu-autoinstall: cloud-init and the autoinstall schema accept it; its helper really posts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from answerkit import (
    EFIBOOTMGR,
    EFIBOOTMGR_NETFIRST,
    INSTALL_URL,
    SAMPLES,
    SHA512_HASH,
    SSH_KEY,
    Recorder,
    Serve,
    awk_program,
)

SCHEMA = json.loads((Path(__file__).parent / "data/autoinstall-subset.schema.json").read_text())
VARS = SAMPLES["ubuntu-autoinstall"]


def autoinstall(text: str) -> dict:
    return yaml.safe_load(text)["autoinstall"]


@pytest.mark.parametrize(
    "extra", [{}, {"disk": "/dev/vda", "proxy": "http://proxy.example:3128", "ssh_keys": []}]
)
def test_cloud_init_accepts_the_user_data(serve: Serve, tmp_path: Path, extra: dict) -> None:
    if shutil.which("cloud-init") is None:
        pytest.skip("Debian package cloud-init is not installed")
    path = tmp_path / "user-data"
    path.write_text(serve("ubuntu-autoinstall", **{**VARS, **extra}))
    r = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Valid cloud-config" in r.stdout


def test_cloud_init_schema_check_can_fail(tmp_path: Path) -> None:
    if shutil.which("cloud-init") is None:
        pytest.skip("Debian package cloud-init is not installed")
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\nautoinstall:\n  identity: {}\n")
    r = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True)
    assert r.returncode != 0


@pytest.mark.parametrize(
    "extra", [{}, {"disk": "/dev/vda", "proxy": "http://proxy.example:3128", "ssh_keys": []}]
)
def test_autoinstall_section_matches_the_schema(serve: Serve, extra: dict) -> None:
    section = autoinstall(serve("ubuntu-autoinstall", **{**VARS, **extra}))
    jsonschema.validate(section, SCHEMA)
    assert section["version"] == 1


def test_values_land_where_subiquity_reads_them(serve: Serve) -> None:
    tricky = "de_DE.UTF-8"
    section = autoinstall(serve("ubuntu-autoinstall", **VARS, locale=tricky, disk="/dev/vda"))
    assert section["locale"] == tricky
    assert section["identity"] == {
        "hostname": "web01",
        "username": "ubuntu",
        "realname": "Bootfleet administrator",
        "password": SHA512_HASH,
    }
    assert section["ssh"]["authorized-keys"] == [SSH_KEY]
    assert section["ssh"]["allow-pw"] is False
    assert section["storage"]["layout"]["match"] == {"path": "/dev/vda"}
    assert section["packages"] == ["efibootmgr", "curl", "vim"]


def test_callbacks_are_wired(serve: Serve) -> None:
    section = autoinstall(serve("ubuntu-autoinstall", **VARS))
    script = section["early-commands"][0]
    assert f"U='{INSTALL_URL}'" in script
    for endpoint in ("progress", "done", "failed"):
        assert f'"$U/{endpoint}"' in script
    assert "bootfleet.sh progress" in section["early-commands"][1]
    assert section["late-commands"][-1].startswith("sh /tmp/bootfleet.sh done")
    assert "sh /tmp/bootfleet.sh netfirst || true" in section["late-commands"]
    # error-commands write the helper themselves: they also run when early-commands never did
    assert section["error-commands"] == [script, "sh /tmp/bootfleet.sh failed || true"]


def test_helper_posts_with_curl(serve: Serve, tmp_path: Path, recorder: Recorder) -> None:
    if shutil.which("curl") is None:
        pytest.skip("Debian package curl is not installed")
    url, posts = recorder
    helper = tmp_path / "bootfleet.sh"
    writer = autoinstall(serve("ubuntu-autoinstall", **VARS))["early-commands"][0]
    writer = writer.replace("/tmp/bootfleet.sh", str(helper)).replace(INSTALL_URL, url)
    subprocess.run(["sh", "-c", writer], check=True)
    subprocess.run(["sh", str(helper), "progress", "5", "installer started"], check=True)
    subprocess.run(["sh", str(helper), "done"], check=True)
    assert [p[0] for p in posts] == ["/api/v1/installs/tok/progress", "/api/v1/installs/tok/done"]
    assert json.loads(posts[0][2]) == {"percent": 5, "message": "installer started"}
    assert all(p[1] == "application/json" for p in posts)


def test_error_commands_report_on_their_own(
    serve: Serve, tmp_path: Path, recorder: Recorder
) -> None:
    """A fatal error before early-commands ran (no /tmp/bootfleet.sh yet) is still reported."""
    if shutil.which("curl") is None:
        pytest.skip("Debian package curl is not installed")
    url, posts = recorder
    helper = tmp_path / "bootfleet.sh"
    for command in autoinstall(serve("ubuntu-autoinstall", **VARS))["error-commands"]:
        command = command.replace("/tmp/bootfleet", str(tmp_path / "bootfleet"))
        subprocess.run(["sh", "-c", command.replace(INSTALL_URL, url)], check=True)
    assert helper.is_file()
    assert [p[0] for p in posts] == ["/api/v1/installs/tok/failed"]
    assert "log" in json.loads(posts[0][2])


def test_netfirst_awk(serve: Serve) -> None:
    script = autoinstall(serve("ubuntu-autoinstall", **VARS))["early-commands"][0]
    r = subprocess.run(
        ["awk", awk_program(script)], input=EFIBOOTMGR, capture_output=True, text=True, check=True
    )
    assert r.stdout.strip() == EFIBOOTMGR_NETFIRST


def test_root_keys_command_writes_the_keys(serve: Serve, tmp_path: Path) -> None:
    other = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 two words: # not a comment"
    section = autoinstall(serve("ubuntu-autoinstall", **{**VARS, "ssh_keys": [SSH_KEY, other]}))
    target = tmp_path / "target"
    for command in section["late-commands"]:
        if "/target/root/.ssh" in command:
            subprocess.run(["sh", "-c", command.replace("/target", str(target))], check=True)
    keys = target / "root/.ssh/authorized_keys"
    assert keys.read_text() == f"{SSH_KEY}\n{other}\n"
    assert keys.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"identity": {"hostname": "h", "username": "u"}},
        {"storage": {"layout": {"name": "direct", "match": {"size": "huge"}}}},
        {"early-commands": [1]},
        {"bogus-key": True},
    ],
)
def test_schema_subset_rejects(serve: Serve, change: dict) -> None:
    section = {**autoinstall(serve("ubuntu-autoinstall", **VARS)), **change}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(section, SCHEMA)

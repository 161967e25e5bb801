"""debian-preseed: debconf accepts it, and its reporting helper works in the real d-i initrd."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from answerkit import (
    EFIBOOTMGR,
    EFIBOOTMGR_NETFIRST,
    INSTALL_URL,
    SHA512_HASH,
    SSH_KEY,
    Recorder,
    Render,
)

D_I_INITRD = Path("/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/initrd.gz")
VARS = {"root_password_hash": SHA512_HASH, "ssh_keys": [SSH_KEY], "packages": ["vim", "curl"]}


def helper(text: str) -> str:
    """The reporting script early_command extracts from the answer file."""
    return "".join(line[4:] + "\n" for line in text.splitlines() if line.startswith("#bf "))


def selections(text: str) -> dict[str, str]:
    """question -> value, joining continuation lines as debconf-set-selections does."""
    out: dict[str, str] = {}
    pending = ""
    for line in text.splitlines():
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line, pending = pending + line, ""
        if line.strip() and not line.startswith("#"):
            _owner, question, _type, *value = line.split(None, 3)
            out[question] = value[0] if value else ""
    return out


@pytest.mark.parametrize(
    "extra",
    [{}, {"disk": "/dev/vda", "proxy": "http://proxy.example:3128", "ssh_keys": []}],
)
def test_debconf_accepts_the_rendered_file(render: Render, tmp_path: Path, extra: dict) -> None:
    if shutil.which("debconf-set-selections") is None:
        pytest.skip("Debian package debconf is not installed")
    path = tmp_path / "preseed.cfg"
    path.write_text(render("debian-preseed", **{**VARS, **extra}))
    r = subprocess.run(
        ["debconf-set-selections", "--checkonly", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBCONF_NOWARNINGS": "no"},
    )
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr.lower(), r.stderr


def test_values_reach_their_questions(render: Render) -> None:
    sel = selections(
        render("debian-preseed", **VARS, disk="/dev/vda", mirror="https://m.example/debian")
    )
    assert sel["netcfg/get_hostname"] == "web01"
    assert sel["netcfg/get_domain"] == "localdomain"
    assert sel["passwd/root-password-crypted"] == SHA512_HASH
    assert sel["partman-auto/disk"] == "/dev/vda"
    assert sel["grub-installer/bootdev"] == "/dev/vda"
    assert sel["mirror/protocol"] == "https"
    assert sel["mirror/https/hostname"] == "m.example"
    assert sel["mirror/https/directory"] == "/debian"
    assert sel["pkgsel/include"].split() == ["openssh-server", "efibootmgr", "vim", "curl"]
    assert SSH_KEY in sel["preseed/late_command"]


def test_hooks_carry_the_install_url(render: Render) -> None:
    text = render("debian-preseed", **VARS)
    sel = selections(text)
    assert f"'{INSTALL_URL}/answer'" in sel["preseed/early_command"]
    assert "bootfleet.sh start" in sel["preseed/early_command"]
    assert "bootfleet.sh progress" in sel["partman/early_command"]
    late = sel["preseed/late_command"]
    assert late.index("bootfleet.sh netfirst") < late.index("bootfleet.sh done")
    script = helper(text)
    assert f"U='{INSTALL_URL}'" in script
    for endpoint in ("progress", "done", "failed"):
        assert f'"$U/{endpoint}"' in script


def test_network_first_can_be_turned_off(render: Render) -> None:
    late = selections(render("debian-preseed", **VARS, network_boot_first=False))
    assert "netfirst" not in late["preseed/late_command"]


def test_helper_is_valid_shell(render: Render) -> None:
    r = subprocess.run(["sh", "-n"], input=helper(render("debian-preseed", **VARS)), text=True)
    assert r.returncode == 0


@pytest.fixture(scope="module")
def d_i_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real debian-installer initrd, unpacked (needs root for chroot, and cpio)."""
    if not D_I_INITRD.is_file() or shutil.which("cpio") is None:
        pytest.skip("needs Debian packages debian-installer-12-netboot-amd64 and cpio")
    if os.geteuid() != 0:
        pytest.skip("chroot into the installer needs root")
    root = tmp_path_factory.mktemp("d-i")
    subprocess.run(
        ["cpio", "-idm", "--quiet", "--no-absolute-filenames"],
        input=gzip.decompress(D_I_INITRD.read_bytes()),
        cwd=root,
        check=True,
    )
    (root / "tmp").mkdir(exist_ok=True)
    (root / "var/log").mkdir(parents=True, exist_ok=True)
    return root


def test_helper_posts_in_the_real_installer(
    render: Render, d_i_root: Path, recorder: Recorder
) -> None:
    url, posts = recorder
    script = helper(render("debian-preseed", **VARS)).replace(INSTALL_URL, url)
    (d_i_root / "tmp/bootfleet.sh").write_text(script)
    syslog = "main-menu[1]: WARNING **: Configuring 'x' failed \"quoted\" \\ back\ttab\xe9\n"
    (d_i_root / "var/log/syslog").write_bytes(syslog.encode("latin-1") * 3)
    # dev/null is a character device in the real initrd; a bind mount is not needed for `-n`.
    if not (d_i_root / "dev/null").is_char_device():
        pytest.skip("initrd /dev/null is not a device node here")

    def run(*args: str) -> None:
        subprocess.run(["chroot", str(d_i_root), "/bin/sh", "/tmp/bootfleet.sh", *args], check=True)

    run("progress", "20", "partitioning the disk")
    run("failed", "/var/log/syslog")
    run("done")
    assert [p[0] for p in posts] == [
        "/api/v1/installs/tok/progress",
        "/api/v1/installs/tok/failed",
        "/api/v1/installs/tok/done",
    ]
    assert all(p[1] == "application/json" for p in posts)
    assert json.loads(posts[0][2]) == {"percent": 20, "message": "partitioning the disk"}
    log = json.loads(posts[1][2])["log"]
    assert log == syslog.replace("\xe9", "") * 3
    assert json.loads(posts[2][2]) == {}


def test_netfirst_order_in_busybox_awk(render: Render, d_i_root: Path) -> None:
    (d_i_root / "tmp/bootfleet.sh").write_text(helper(render("debian-preseed", **VARS)))
    r = subprocess.run(
        ["chroot", str(d_i_root), "/bin/sh", "/tmp/bootfleet.sh", "netfirst-order"],
        input=EFIBOOTMGR,
        capture_output=True,
        text=True,
        check=True,
    )
    assert r.stdout.strip() == EFIBOOTMGR_NETFIRST


def test_watcher_reports_a_failed_step(render: Render, d_i_root: Path, recorder: Recorder) -> None:
    """`start` leaves a watcher that posts the syslog once main-menu logs a failed step."""
    url, posts = recorder
    script = helper(render("debian-preseed", **VARS)).replace(INSTALL_URL, url)
    (d_i_root / "tmp/bootfleet.sh").write_text(script)
    (d_i_root / "tmp/bootfleet.done").unlink(missing_ok=True)
    failure = "main-menu[312]: WARNING **: Configuring 'partman-base' failed with error code 1\n"
    (d_i_root / "var/log/syslog").write_text("kernel: boot\n" + failure)
    subprocess.run(["chroot", str(d_i_root), "/bin/sh", "/tmp/bootfleet.sh", "start"], check=True)
    # The watcher runs detached; wait for its report (it sleeps 5 s before sending the log).
    deadline = time.monotonic() + 120
    while len(posts) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p[0] for p in posts] == [
        "/api/v1/installs/tok/progress",
        "/api/v1/installs/tok/failed",
    ]
    assert json.loads(posts[0][2]) == {"percent": 5, "message": "installer started"}
    assert failure in json.loads(posts[1][2])["log"]

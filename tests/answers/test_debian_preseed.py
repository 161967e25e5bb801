"""debian-preseed: debconf reads every answer of the served file, its shell passes dash and
busybox ash, and its reporting helper works in the real d-i initrd."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from answerkit import (
    EFIBOOTMGR,
    EFIBOOTMGR_NETFIRST,
    INSTALL_URL,
    SAMPLES,
    SHA512_HASH,
    SSH_KEY,
    Recorder,
    Serve,
)

D_I_INITRD = Path("/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/initrd.gz")
VARS = SAMPLES["debian-preseed"]
VARIANTS = [
    {},
    {"disk": "/dev/vda", "proxy": "http://proxy.example:3128", "ssh_keys": []},
    {"network_boot_first": False, "packages": ["vim", "curl"], "mirror": "https://m.example/d"},
]
# Every question the sample client's file answers, as debconf reads them.
QUESTIONS = {
    "debian-installer/locale",
    "keyboard-configuration/xkb-keymap",
    "netcfg/choose_interface",
    "netcfg/get_hostname",
    "netcfg/get_domain",
    "netcfg/hostname",
    "hw-detect/load_firmware",
    "mirror/country",
    "mirror/protocol",
    "mirror/http/hostname",
    "mirror/http/directory",
    "mirror/http/proxy",
    "mirror/suite",
    "passwd/root-login",
    "passwd/make-user",
    "passwd/root-password-crypted",
    "clock-setup/utc",
    "time/zone",
    "clock-setup/ntp",
    "partman-auto/method",
    "partman-auto/choose_recipe",
    "partman-lvm/device_remove_lvm",
    "partman-md/device_remove_md",
    "partman-lvm/confirm",
    "partman-lvm/confirm_nooverwrite",
    "partman-efi/non_efi_system",
    "partman-partitioning/confirm_write_new_label",
    "partman/choose_partition",
    "partman/confirm",
    "partman/confirm_nooverwrite",
    "partman/mount_style",
    "apt-setup/non-free-firmware",
    "apt-setup/cdrom/set-first",
    "tasksel/first",
    "pkgsel/include",
    "pkgsel/upgrade",
    "popularity-contest/participate",
    "grub-installer/only_debian",
    "grub-installer/with_other_os",
    "grub-installer/bootdev",
    "preseed/early_command",
    "partman/early_command",
    "preseed/late_command",
    "finish-install/reboot_in_progress",
}
COMMANDS = ("preseed/early_command", "partman/early_command", "preseed/late_command")
DEBCONF_CONF = """Config: configdb
Templates: templatedb

Name: configdb
Driver: File
Filename: {dir}/config.dat

Name: templatedb
Driver: File
Filename: {dir}/templates.dat
"""


def need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"Debian package {package} is not installed")


def helper(text: str) -> str:
    """The reporting script, extracted exactly as preseed/early_command does it."""
    r = subprocess.run(
        ["sed", "-n", "s/^#bf //p"], input=text, capture_output=True, text=True, check=True
    )
    return r.stdout


def selections(text: str, tmp_path: Path) -> dict[str, str]:
    """question -> value, as debconf-set-selections loads the file into a debconf database."""
    need("debconf-set-selections", "debconf")
    db = tmp_path / "debconf"
    db.mkdir()
    (db / "debconf.conf").write_text(DEBCONF_CONF.format(dir=db))
    (db / "preseed.cfg").write_text(text)
    subprocess.run(
        ["debconf-set-selections", str(db / "preseed.cfg")],
        env={**os.environ, "DEBCONF_SYSTEMRC": str(db / "debconf.conf")},
        check=True,
    )
    out: dict[str, str] = {}
    for stanza in (db / "config.dat").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
        if "Name" in fields:
            out[fields["Name"]] = fields.get("Value", "")
    return out


@pytest.mark.parametrize("extra", VARIANTS)
def test_debconf_accepts_the_served_file(serve: Serve, tmp_path: Path, extra: dict) -> None:
    need("debconf-set-selections", "debconf")
    path = tmp_path / "preseed.cfg"
    path.write_text(serve("debian-preseed", **{**VARS, **extra}))
    r = subprocess.run(
        ["debconf-set-selections", "--checkonly", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBCONF_NOWARNINGS": "no"},
    )
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr.lower(), r.stderr


def test_debconf_reads_every_answer(serve: Serve, tmp_path: Path) -> None:
    """--checkonly cannot see two answers run into one line; the loaded database can."""
    sel = selections(serve("debian-preseed", **VARS), tmp_path)
    assert set(sel) == QUESTIONS
    assert sel["pkgsel/include"] == "openssh-server efibootmgr vim"
    assert sel["pkgsel/upgrade"] == "full-upgrade"


def test_values_reach_their_questions(serve: Serve, tmp_path: Path) -> None:
    text = serve("debian-preseed", **VARS, disk="/dev/vda", mirror="https://m.example/debian")
    sel = selections(text, tmp_path)
    assert sel["netcfg/get_hostname"] == "web01"
    assert sel["netcfg/get_domain"] == "localdomain"
    assert sel["passwd/root-password-crypted"] == SHA512_HASH
    assert sel["partman-auto/disk"] == "/dev/vda"
    assert sel["grub-installer/bootdev"] == "/dev/vda"
    assert sel["mirror/protocol"] == "https"
    assert sel["mirror/https/hostname"] == "m.example"
    assert sel["mirror/https/directory"] == "/debian"
    assert sel["pkgsel/include"].split() == ["openssh-server", "efibootmgr", "vim"]
    assert SSH_KEY in sel["preseed/late_command"]


def test_hooks_carry_the_install_url(serve: Serve, tmp_path: Path) -> None:
    text = serve("debian-preseed", **VARS)
    sel = selections(text, tmp_path)
    assert f"'{INSTALL_URL}/answer'" in sel["preseed/early_command"]
    assert "bootfleet.sh start" in sel["preseed/early_command"]
    assert "bootfleet.sh progress" in sel["partman/early_command"]
    late = sel["preseed/late_command"]
    assert late.index("bootfleet.sh netfirst") < late.index("bootfleet.sh done")
    script = helper(text)
    assert f"U='{INSTALL_URL}'" in script
    for endpoint in ("progress", "done", "failed"):
        assert f'"$U/{endpoint}"' in script


def test_network_first_can_be_turned_off(serve: Serve, tmp_path: Path) -> None:
    sel = selections(serve("debian-preseed", **VARS, network_boot_first=False), tmp_path)
    assert "netfirst" not in sel["preseed/late_command"]


SHELLS = [["dash", "-n"], ["busybox", "ash", "-n"]]


@pytest.mark.parametrize("shell", SHELLS, ids=["dash", "busybox-ash"])
@pytest.mark.parametrize("extra", VARIANTS)
def test_shell_parses(serve: Serve, tmp_path: Path, shell: list[str], extra: dict) -> None:
    """The helper and the three commands d-i runs, as served, parse in dash and busybox ash."""
    need(shell[0], shell[0])
    text = serve("debian-preseed", **{**VARS, **extra})
    sel = selections(text, tmp_path)
    for name, script in [("#bf helper", helper(text)), *((c, sel[c]) for c in COMMANDS)]:
        r = subprocess.run(shell, input=script, capture_output=True, text=True)
        assert r.returncode == 0, f"{name}: {r.stderr}"


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
    serve: Serve, d_i_root: Path, recorder: Recorder
) -> None:
    url, posts = recorder
    script = helper(serve("debian-preseed", **VARS)).replace(INSTALL_URL, url)
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


def test_netfirst_order_in_busybox_awk(serve: Serve, d_i_root: Path) -> None:
    (d_i_root / "tmp/bootfleet.sh").write_text(helper(serve("debian-preseed", **VARS)))
    r = subprocess.run(
        ["chroot", str(d_i_root), "/bin/sh", "/tmp/bootfleet.sh", "netfirst-order"],
        input=EFIBOOTMGR,
        capture_output=True,
        text=True,
        check=True,
    )
    assert r.stdout.strip() == EFIBOOTMGR_NETFIRST


def test_watcher_reports_a_failed_step(serve: Serve, d_i_root: Path, recorder: Recorder) -> None:
    """`start` leaves a watcher that posts the syslog once main-menu logs a failed step."""
    url, posts = recorder
    failure = "main-menu[312]: WARNING **: Configuring 'partman-base' failed with error code 1\n"
    (d_i_root / "var/log/syslog").write_text("kernel: boot\n" + failure)
    start_watcher(serve, d_i_root, url)
    # The watcher runs detached; wait for its report (it sleeps 5 s before sending the log).
    wait_posts(posts, 2)
    assert [p[0] for p in posts] == [
        "/api/v1/installs/tok/progress",
        "/api/v1/installs/tok/failed",
    ]
    assert json.loads(posts[0][2]) == {"percent": 5, "message": "installer started"}
    assert failure in json.loads(posts[1][2])["log"]


def start_watcher(serve: Serve, d_i_root: Path, url: str, ask_limit: int = 60) -> None:
    """`bootfleet.sh start` in the installer, its output a pipe, as log-output runs it."""
    script = helper(serve("debian-preseed", **VARS)).replace(INSTALL_URL, url)
    (d_i_root / "tmp/bootfleet.sh").write_text(script)
    (d_i_root / "tmp/bootfleet.done").unlink(missing_ok=True)
    env = {**os.environ, "BOOTFLEET_ASK_LIMIT": str(ask_limit)}
    # capture_output waits for EOF on the pipes: a watcher holding them hangs d-i the same way.
    subprocess.run(
        ["chroot", str(d_i_root), "/bin/sh", "/tmp/bootfleet.sh", "start"],
        check=True,
        capture_output=True,
        timeout=30,
        env=env,
    )


def wait_posts(posts: list, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(posts) < count and time.monotonic() < deadline:
        time.sleep(0.2)


def test_start_returns_while_the_watcher_runs(
    serve: Serve, d_i_root: Path, recorder: Recorder
) -> None:
    """d-i waits for early_command's output pipe to close; the watcher must not hold it."""
    url, posts = recorder
    (d_i_root / "var/log/syslog").write_text("kernel: boot\n")
    started = time.monotonic()
    start_watcher(serve, d_i_root, url)
    assert time.monotonic() - started < 25
    (d_i_root / "tmp/bootfleet.done").touch()  # the watcher ends within its 5 s poll
    assert [p[0] for p in posts] == ["/api/v1/installs/tok/progress"]


@pytest.fixture
def d_i_proc(d_i_root: Path) -> Iterator[Path]:
    """The host's /proc inside the unpacked installer (the watcher reads it)."""
    proc = d_i_root / "proc"
    proc.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        yield proc
    finally:
        subprocess.run(["umount", "-l", str(proc)], check=False)


@contextmanager
def stand_in_frontend(d_i_root: Path, perl: str, stdin: int = subprocess.DEVNULL) -> Iterator[None]:
    """A process that looks like d-i's text frontend (its command line), running `perl`; at
    the end it is killed and the watcher told to stop."""
    if shutil.which("perl") is None:
        pytest.skip("needs perl for the stand-in frontend")
    rename = '$0 = "debconf -o d-i /usr/bin/main-menu"; '
    with subprocess.Popen(["perl", "-e", rename + perl], stdin=stdin) as frontend:
        try:
            yield
        finally:
            frontend.kill()
            (d_i_root / "tmp/bootfleet.done").touch()


def test_watcher_reports_a_question_nobody_answers(
    serve: Serve, d_i_root: Path, d_i_proc: Path, recorder: Recorder
) -> None:
    """A process that looks like d-i's text frontend sits in select(): a dialog is shown.

    perl renames itself to the frontend's command line and blocks in select(2), as cdebconf's
    newt frontend does while a question waits on the terminal."""
    url, posts = recorder
    (d_i_root / "var/log/syslog").write_text("choose-mirror[9]: the mirror is bad\n")
    with stand_in_frontend(d_i_root, "select(undef, undef, undef, 60)"):
        start_watcher(serve, d_i_root, url, ask_limit=10)
        wait_posts(posts, 2, timeout=60)
    assert [p[0] for p in posts] == [
        "/api/v1/installs/tok/progress",
        "/api/v1/installs/tok/failed",
    ]
    log = json.loads(posts[1][2])["log"]
    assert log.startswith("bootfleet: the installer has waited 10 s for an answer")
    assert "choose-mirror[9]: the mirror is bad" in log


def test_watcher_ignores_a_busy_installer(
    serve: Serve, d_i_root: Path, d_i_proc: Path, recorder: Recorder
) -> None:
    """The frontend reading its confmodule pipe (a progress bar, work) is not a question."""
    url, posts = recorder
    (d_i_root / "var/log/syslog").write_text("kernel: boot\n")
    with stand_in_frontend(d_i_root, "my $line = <STDIN>;", stdin=subprocess.PIPE):
        start_watcher(serve, d_i_root, url, ask_limit=10)
        time.sleep(20)
    assert [p[0] for p in posts] == ["/api/v1/installs/tok/progress"]

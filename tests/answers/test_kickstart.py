"""kickstart: pykickstart's ksvalidator accepts it; %pre/%post/%onerror report to Bootfleet."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
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
    awk_program,
)
from pykickstart.constants import (
    DISPLAY_MODE_TEXT,
    KS_SCRIPT_ONERROR,
    KS_SCRIPT_POST,
    KS_SCRIPT_PRE,
)
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion

KSVALIDATOR = Path(sys.executable).parent / "ksvalidator"
VARS = SAMPLES["kickstart"]
VARIANTS = [
    {},
    {"packages": ["vim", "@^x"], "network_boot_first": False},
    {"disk": "/dev/vda", "proxy": "http://proxy.example:3128", "ssh_keys": []},
    {"appstream_mirror": "https://m.example/9/AppStream/x86_64/os/", "selinux": "permissive"},
]


@pytest.mark.parametrize("version", ["RHEL9", "F40"])
@pytest.mark.parametrize("extra", VARIANTS)
def test_ksvalidator_accepts_the_served_file(
    serve: Serve, tmp_path: Path, version: str, extra: dict
) -> None:
    path = tmp_path / "ks.cfg"
    path.write_text(serve("kickstart", **{**VARS, **extra}))
    r = subprocess.run([KSVALIDATOR, "-e", "-v", version, path], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ksvalidator_can_fail(tmp_path: Path) -> None:
    path = tmp_path / "ks.cfg"
    path.write_text("rootpw --iscrypted\nbogus-command --x\n")
    r = subprocess.run([KSVALIDATOR, "-v", "RHEL9", path], capture_output=True)
    assert r.returncode != 0


def parse(text: str):
    parser = KickstartParser(makeVersion("RHEL9"))
    parser.readKickstartFromString(text)
    return parser.handler


def test_values_and_scripts(serve: Serve) -> None:
    ks = parse(serve("kickstart", **VARS, disk="/dev/vda"))
    # Non-interactive: a question Anaconda would ask is a fatal error, so %onerror reports it.
    assert ks.displaymode.displayMode == DISPLAY_MODE_TEXT and ks.displaymode.nonInteractive
    assert ks.rootpw.password == SHA512_HASH and ks.rootpw.isCrypted
    assert ks.sshkey.sshUserList[0].key == SSH_KEY
    assert ks.network.network[0].hostname == "web01.example.org"
    assert ks.ignoredisk.onlyuse == ["/dev/vda"]
    assert "vim" in ks.packages.packageList
    kinds = [(s.type, s.inChroot, s.errorOnFail) for s in ks.scripts]
    assert kinds == [
        (KS_SCRIPT_PRE, False, False),
        (KS_SCRIPT_POST, True, True),
        (KS_SCRIPT_POST, False, False),
        (KS_SCRIPT_ONERROR, False, False),
    ]
    pre, _check, last, onerror = ks.scripts
    assert f"U='{INSTALL_URL}'" in pre.script
    for endpoint in ("progress", "done", "failed"):
        assert f'"$U/{endpoint}"' in pre.script
    assert last.script.strip().splitlines()[-1] == "sh /tmp/bootfleet.sh done"
    assert "sh /tmp/bootfleet.sh netfirst" in last.script
    assert onerror.script.strip() == "sh /tmp/bootfleet.sh failed"


def test_pre_helper_posts_with_curl(serve: Serve, tmp_path: Path, recorder: Recorder) -> None:
    if shutil.which("curl") is None:
        pytest.skip("Debian package curl is not installed")
    url, posts = recorder
    pre = parse(serve("kickstart", **VARS)).scripts[0].script
    pre = pre.replace("/tmp/bootfleet", str(tmp_path / "bootfleet")).replace(INSTALL_URL, url)
    subprocess.run(["sh", "-c", pre], check=True)
    log = tmp_path / "bootfleet-pre.log"
    log.write_text('anaconda: "error" \\ \u00e9\n')
    subprocess.run(["sh", str(tmp_path / "bootfleet.sh"), "failed"], check=True)
    assert [p[0] for p in posts] == ["/api/v1/installs/tok/progress", "/api/v1/installs/tok/failed"]
    assert json.loads(posts[0][2])["percent"] == 5
    assert 'anaconda: "error" \\ \u00e9' in json.loads(posts[1][2])["log"]


def test_netfirst_awk(serve: Serve) -> None:
    pre = parse(serve("kickstart", **VARS)).scripts[0].script
    r = subprocess.run(
        ["awk", awk_program(pre)], input=EFIBOOTMGR, capture_output=True, text=True, check=True
    )
    assert r.stdout.strip() == EFIBOOTMGR_NETFIRST

"""The release as an admin installs it: `python -m build` makes an sdist and, from it, a wheel;
the wheel goes into a fresh venv outside the checkout, and `bootfleet serve` runs from
another folder. It starts, serves a boot config over TFTP and HTTP and an answer file, shows
its version, and stops cleanly on SIGTERM.

The wheel's size and file list are written to tests/artifacts/wheel-contents.txt."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.helpers import install_path
from tests.tftp.helpers import download

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
ARTIFACTS = REPO / "tests" / "artifacts"
MAC = "52:54:00:19:00:01"
ROOT_HASH = "$6$saltsalt$" + "b" * 86
STEP_TIMEOUT = 900  # building and installing fetch from PyPI (cached) on a busy machine


@dataclass(frozen=True)
class Release:
    wheel: Path
    sdist: Path
    venv: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def outside_env() -> dict[str, str]:
    """The environment without anything that would point Python or Bootfleet at the checkout."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV"} and not k.startswith("BOOTFLEET_")
    }


def run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=outside_env(), capture_output=True, text=True, timeout=STEP_TIMEOUT
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """Build from the checkout into a temp folder; install the wheel into a fresh venv."""
    root = tmp_path_factory.mktemp("release")
    dist = root / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], cwd=root)
    (wheel,) = dist.glob("bootfleet-*.whl")
    (sdist,) = dist.glob("bootfleet-*.tar.gz")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", str(wheel)], root)
    return Release(wheel, sdist, venv)


def test_the_wheel_carries_code_templates_pages_unit_and_docs(release: Release) -> None:
    names = set(zipfile.ZipFile(release.wheel).namelist())
    ARTIFACTS.mkdir(exist_ok=True)
    listing = sorted(names)
    (ARTIFACTS / "wheel-contents.txt").write_text(
        f"{release.wheel.name}: {release.wheel.stat().st_size} bytes, {len(listing)} files\n"
        + "".join(f"{n}\n" for n in listing)
    )
    shipped = {
        *(f"server/{p.relative_to(REPO / 'server')}" for p in (REPO / "server").rglob("*.py")),
        *(
            f"server/pxe_templates/{p.relative_to(REPO / 'pxe_templates')}"
            for p in (REPO / "pxe_templates").rglob("*")
            if p.is_file()
        ),
        *(
            f"server/web/{p.relative_to(REPO / 'server' / 'web')}"
            for d in ("templates", "static")
            for p in (REPO / "server" / "web" / d).rglob("*")
            if p.is_file()
        ),
    }
    assert shipped - names == set()
    data = f"bootfleet-{VERSION}.data/data/share"
    assert f"{data}/bootfleet/bootfleet.service" in names
    for doc in ("README.md", "CHANGELOG.md", "SECURITY.md", "profiles.md"):
        assert f"{data}/doc/bootfleet/{doc}" in names
    assert not any(n.startswith(("tests/", "pxe_templates/")) or "__pycache__" in n for n in names)


def test_the_sdist_rebuilds_the_same_layout(release: Release) -> None:
    with tarfile.open(release.sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("setup.py", "pyproject.toml", "CHANGELOG.md", "contrib/bootfleet.service"):
        assert needed in names
    assert "pxe_templates/boot/ipxe.j2" in names and "server/web/static/ui.css" in names


def test_version_and_templates_come_from_the_installed_package(
    release: Release, tmp_path: Path
) -> None:
    assert run([release.bin("bootfleet"), "--version"], tmp_path) == (
        f"bootfleet, version {VERSION}\n"
    )
    code = "import server.config as c; print(c.__file__); print(c.DEFAULT_TEMPLATES_DIR)"
    module, templates = run([release.bin("python"), "-c", code], tmp_path).splitlines()
    site = str(release.venv)
    assert module.startswith(site) and templates.startswith(site), (module, templates)
    assert templates.endswith("server/pxe_templates")


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(release: Release, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """`bootfleet serve` from the venv, started in a folder that is not the checkout."""
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "images" / "debian").mkdir(parents=True)
    (tmp_path / "images" / "debian" / "linux").write_bytes(b"kernel")
    (tmp_path / "images" / "debian" / "initrd.gz").write_bytes(b"initrd")
    elsewhere.mkdir()
    http, tftp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    log = (tmp_path / "serve.log").open("w")
    argv = [release.bin("bootfleet"), "serve", "--data-dir", str(tmp_path / "data")]
    argv += ["--images-dir", str(tmp_path / "images"), "--bind", "127.0.0.1"]
    argv += ["--http-port", str(http), "--tftp-port", str(tftp)]
    proc = subprocess.Popen(
        argv, cwd=elsewhere, env=outside_env(), stdout=log, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                r = requests.get(f"{url}/healthz", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        assert r.text == f"ok\nbootfleet {VERSION}\n"
        yield proc, url, tftp
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def test_serve_from_the_wheel_boots_a_client_and_stops_cleanly(
    release: Release, served: tuple[subprocess.Popen[str], str, int], tmp_path: Path
) -> None:
    proc, url, tftp = served
    token = run(
        [release.bin("bootfleet"), "token", "create", "--data-dir", str(tmp_path / "data")],
        tmp_path,
    ).strip()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    profile = {
        "name": "debian12",
        "kernel": "debian/linux",
        "initrd": ["debian/initrd.gz"],
        "cmdline": "auto=true priority=critical",
        "answer_template": "debian-preseed",
        "variables": {"root_password_hash": ROOT_HASH},
    }
    for path, body in (
        ("/api/v1/profiles", profile),
        ("/api/v1/clients", {"mac": MAC, "hostname": "pc19", "profile": "debian12"}),
        (f"/api/v1/clients/{MAC}/reinstall", None),
    ):
        r = api.post(f"{url}{path}", json=body, timeout=30)
        assert r.status_code in (200, 201), r.text

    # a boot config over TFTP with a real client, then the same installer over HTTP
    out = tmp_path / "pxelinux.cfg"
    got = download("tftp-hpa", tftp, f"pxelinux.cfg/01-{MAC.replace(':', '-')}", out)
    assert got.returncode == 0, got.stderr
    answer_url = f"{url}{install_path(out.read_text())}/answer"
    r = requests.get(f"{url}/ipxe", params={"mac": MAC, "arch": "x86_64"}, timeout=30)
    assert r.status_code == 200 and "bootfleet.install=" in r.text, r.text
    r = requests.get(answer_url, timeout=30)
    assert r.status_code == 200, r.text
    assert "d-i passwd/root-password-crypted password " + ROOT_HASH in r.text

    # the web UI's pages and assets came with the wheel too
    r = requests.get(f"{url}/ui/login", timeout=30)
    assert r.status_code == 200 and f"Bootfleet {VERSION}</footer>" in r.text, r.text
    assert requests.get(f"{url}/ui/static/ui.css", timeout=30).status_code == 200
    metrics = requests.get(f"{url}/metrics", timeout=30).text
    assert f'bootfleet_build_info{{version="{VERSION}"}} 1' in metrics

    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    log = (tmp_path / "serve.log").read_text()
    assert "stopped" in log and "Traceback" not in log, log

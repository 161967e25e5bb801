import os
from importlib import metadata
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from server.config import Settings


def test_boot_ipxe_chains_by_mac(client: FlaskClient) -> None:
    r = client.get("/boot.ipxe")
    assert r.status_code == 200 and r.text.startswith("#!ipxe\n")
    assert "chain http://198.18.0.1:8080/ipxe?mac=${mac}&arch=${buildarch}" in r.text
    assert "|| exit" in r.text


def test_ipxe_script_for_pending_client(client: FlaskClient, auth: dict, registered: str) -> None:
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    r = client.get(f"/ipxe?mac={registered.upper()}&arch=x86_64&platform=efi")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    assert "kernel http://198.18.0.1:8080/images/debian/linux initrd=initrd.gz" in r.text
    c = client.get(f"/api/v1/clients/{registered}", headers=auth).json
    assert c["state"] == "booting" and c["last_arch"] == "x86_64" and c["last_ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    "query", ["", "mac=", "mac=garbage", "mac=ff:ff:ff:ff:ff:ff", "mac=%00%ff", "arch=x86_64"]
)
def test_ipxe_bad_or_missing_mac_boots_local(client: FlaskClient, query: str) -> None:
    r = client.get(f"/ipxe?{query}")
    assert r.status_code == 200 and r.text.startswith("#!ipxe")
    assert "kernel" not in r.text and "exit" in r.text


def test_images_are_served_with_length_and_ranges(client: FlaskClient) -> None:
    with client.get("/images/debian/linux") as r:
        assert r.status_code == 200 and r.data == b"kernel" and r.headers["Content-Length"] == "6"
    with client.get("/images/debian/linux", headers={"Range": "bytes=1-2"}) as r:
        assert r.status_code == 206 and r.data == b"er"


@pytest.mark.parametrize(
    "path",
    [
        "../data/site.key",
        "..%2fdata%2fsite.key",
        "debian/../../data/site.key",
        "%2e%2e/data/site.key",
        "debian",
        "missing",
        "debian/linux/x",
        "/etc/passwd",
    ],
)
def test_images_refuse_traversal_and_non_files(client: FlaskClient, path: str) -> None:
    # werkzeug folds "//" and redirects (308) inside /images/ first; follow it
    r = client.get(f"/images/{path}", follow_redirects=True)
    assert r.status_code == 404, r.text
    assert b"site" not in r.data or r.is_json


def test_images_refuse_symlink_out_of_root(
    client: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, settings.images / "escape")
    assert client.get("/images/escape").status_code == 404


def test_healthz_and_metrics(client: FlaskClient, auth: dict, registered: str) -> None:
    assert client.get("/healthz").text == f"ok\nbootfleet {metadata.version('bootfleet')}\n"
    text = client.get("/metrics").text
    assert f'bootfleet_build_info{{version="{metadata.version("bootfleet")}"}} 1\n' in text
    assert 'bootfleet_clients{state="idle"} 1' in text

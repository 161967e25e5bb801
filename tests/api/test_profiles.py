import pytest
from flask.testing import FlaskClient

from tests.conftest import PROFILE


def test_crud(client: FlaskClient, auth: dict) -> None:
    r = client.post("/api/v1/profiles", json=PROFILE, headers=auth)
    assert r.status_code == 201, r.text
    assert {k: r.json[k] for k in PROFILE} == PROFILE
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 409
    r = client.patch("/api/v1/profiles/debian12", json={"cmdline": "quiet"}, headers=auth)
    assert (
        r.status_code == 200 and r.json["cmdline"] == "quiet" and r.json["kernel"] == "debian/linux"
    )
    assert (
        client.patch("/api/v1/profiles/debian12", json={"kernel": None}, headers=auth).status_code
        == 400
    )
    names = [p["name"] for p in client.get("/api/v1/profiles", headers=auth).json["items"]]
    assert names == ["debian12"]
    assert client.delete("/api/v1/profiles/debian12", headers=auth).status_code == 204
    assert client.get("/api/v1/profiles/debian12", headers=auth).status_code == 404


def test_profile_in_use_cannot_be_deleted(client: FlaskClient, auth: dict, registered: str) -> None:
    r = client.delete("/api/v1/profiles/debian12", headers=auth)
    assert r.status_code == 409 and "1 client" in r.json["error"]["message"]


def test_url_kernels_are_accepted(client: FlaskClient, auth: dict) -> None:
    body = {
        "name": "remote",
        "kernel": "http://mirror.example/linux",
        "initrd": ["https://m.example/i.gz"],
    }
    assert client.post("/api/v1/profiles", json=body, headers=auth).status_code == 201


@pytest.mark.parametrize(
    ("field", "value", "where", "message"),
    [
        ("kernel", "debian 12/linux", "kernel", "without blanks"),
        ("kernel", "debian/lin%75x", "kernel", "use letters, digits"),
        ("kernel", "http://m.example/${net0/ip}/linux", "kernel", "iPXE expands"),
        ("initrd", ["debian/a,b.gz"], "initrd.0", "commas"),
        ("initrd", ['http://m.example/i "x".gz'], "initrd.0", "quotes"),
    ],
)
def test_image_paths_every_boot_loader_takes_as_one_word(
    client: FlaskClient, auth: dict, field: str, value: object, where: str, message: str
) -> None:
    body = {"name": "odd", "kernel": "debian/linux", field: value}
    r = client.post("/api/v1/profiles", json=body, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == where, r.text
    assert message in r.json["error"]["message"]


def test_running_install_keeps_its_snapshot(
    client: FlaskClient, auth: dict, registered: str
) -> None:
    """Editing a profile does not change an install that was already requested."""
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    client.patch("/api/v1/profiles/debian12", json={"cmdline": "changed=1"}, headers=auth)
    script = client.get(f"/ipxe?mac={registered}").text
    assert "hostname=pc01" in script and "changed=1" not in script

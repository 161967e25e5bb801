from flask.testing import FlaskClient

from server.fleet import Fleet


def test_lists_the_catalog(client: FlaskClient, auth: dict, fleet: Fleet) -> None:
    r = client.get("/api/v1/templates", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json == {"items": fleet.catalog.describe()}
    names = {t["name"] for t in r.json["items"]}
    assert {"debian-preseed", "ubuntu-autoinstall", "kickstart", "windows-unattend"} <= names


def test_needs_an_admin_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/templates").status_code == 401

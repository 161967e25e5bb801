from flask.testing import FlaskClient

from server.fleet import Fleet
from server.registry import assignments, clients
from server.registry.database import session_scope
from tests.conftest import PROFILE


def test_crud_and_members(client: FlaskClient, auth: dict, registered: str) -> None:
    g = client.get("/api/v1/groups/lab", headers=auth).json  # created by the client's assignment
    assert g["members"] == 1
    r = client.post(
        "/api/v1/groups", json={"name": "room2", "variables": {"timezone": "UTC"}}, headers=auth
    )
    assert r.status_code == 201 and r.json["members"] == 0
    assert client.post("/api/v1/groups", json={"name": "room2"}, headers=auth).status_code == 409
    r = client.patch("/api/v1/groups/room2", json={"description": "second floor"}, headers=auth)
    assert r.json["description"] == "second floor" and r.json["variables"] == {"timezone": "UTC"}
    assert client.delete("/api/v1/groups/lab", headers=auth).status_code == 204
    assert client.get(f"/api/v1/clients/{registered}", headers=auth).json["groups"] == []


def test_variables_precedence_profile_group_client(
    client: FlaskClient, auth: dict, fleet: Fleet
) -> None:
    profile = dict(PROFILE, variables={"locale": "en_US", "timezone": "UTC", "disk": "/dev/sda"})
    client.post("/api/v1/profiles", json=profile, headers=auth)
    client.post(
        "/api/v1/groups",
        json={"name": "a-room", "variables": {"timezone": "Europe/Berlin", "disk": "/dev/vda"}},
        headers=auth,
    )
    client.post(
        "/api/v1/groups",
        json={"name": "b-room", "variables": {"disk": "/dev/nvme0n1"}},
        headers=auth,
    )
    client.post(
        "/api/v1/clients",
        json={
            "mac": "52:54:00:00:08:01",
            "profile": "debian12",
            "groups": ["a-room", "b-room"],
            "variables": {"locale": "de_DE"},
        },
        headers=auth,
    )
    with session_scope(fleet.engine) as s:
        c = clients.get(s, "52:54:00:00:08:01")
        from server.registry import profiles

        merged = assignments.merged_variables(s, c, profiles.get(s, "debian12"))
    assert merged == {"locale": "de_DE", "timezone": "Europe/Berlin", "disk": "/dev/nvme0n1"}


def test_group_reinstall(client: FlaskClient, auth: dict, registered: str) -> None:
    client.post(
        "/api/v1/clients", json={"mac": "52:54:00:00:09:01", "groups": ["lab"]}, headers=auth
    )
    client.post(
        "/api/v1/clients",
        json={"mac": "52:54:00:00:09:02", "profile": "debian12", "groups": ["lab"]},
        headers=auth,
    )
    client.post("/api/v1/clients/52:54:00:00:09:02/reinstall", headers=auth)
    r = client.post("/api/v1/groups/lab/reinstall", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json["requested"] == [registered]
    skipped = {s["mac"]: s["reason"] for s in r.json["skipped"]}
    assert "no profile" in skipped["52:54:00:00:09:01"]
    assert "cannot reinstall" in skipped["52:54:00:00:09:02"]
    assert client.post("/api/v1/groups/none/reinstall", headers=auth).status_code == 404
